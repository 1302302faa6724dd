"""Run an original and a patched .tflite and print, as JSON, how far their results are apart.

Executed as a script in its own process (models are programs: a crash here is reported, not
inherited), by a Python that has the runtimes: TensorFlow <= 2.18.1 for models with Flex ops,
ai-edge-litert (or TensorFlow) for the others. Usage: runner.py CONFIG.json, with keys original,
patched, flex [bool, bool], seed, runs, inputs (an .npz or null), shapes ({input name: dims} for
random inputs), groups and constants (the per-op checks of fbtool.verify.groups, or null).
A model that cannot be loaded or run ends the run with {"ok": false, "error", "model"}.

1. Whole model: every signature of both models on ``runs`` seeded random input sets, plus the
   user's inputs; the max absolute and relative difference per output.
2. Per op: the patched model runs once more with all intermediate tensors kept; each group of
   original Flex ops is rebuilt from its own NodeDefs as a TensorFlow graph, fed the values the
   patched model computed for its inputs, and its outputs compared with the builtin's.
"""
import base64
import json
import sys

import numpy as np


def interpreter(path, needs_flex, keep_all=False):
    """An interpreter for ``path``; ``keep_all`` keeps every intermediate tensor readable, which
    needs the default delegate (XNNPACK) off: it keeps the tensors inside its partitions to itself
    (a DEQUANTIZE it runs reads as zeros). The Flex delegate still applies."""
    if not needs_flex:
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
            options = {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if keep_all else {}
            return Interpreter(model_path=path, experimental_preserve_all_tensors=keep_all, **options), "ai-edge-litert"
        except ImportError:
            pass
    import tensorflow as tf
    resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    options = {"experimental_op_resolver_type": resolver} if keep_all else {}
    return (tf.lite.Interpreter(model_path=path, experimental_preserve_all_tensors=keep_all, **options),
            f"tensorflow {tf.__version__}")


class ModelFailed(Exception):
    """One of the two models could not be loaded or run: which one, and the runtime's words."""

    def __init__(self, which, error):
        text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or "no message"
        super().__init__(f"{type(error).__name__}: {text[:400]}")
        self.which = which


class NotComparable(Exception):
    """Both models run, but not on the same inputs: they are not a model and its patched copy."""


def random_input(rng, detail, shape=None):
    """Seeded values for one input: a dynamic dimension takes the size in the model's stored shape
    (the size it was converted or last resized with), or the user's ``shape``."""
    if shape is None:
        stored = list(detail["shape"])
        shape = [d if d >= 0 else (stored[i] if i < len(stored) else 1) for i, d in enumerate(detail["shape_signature"])]
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 8, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    return np.array([str(v) for v in rng.integers(0, 100, int(np.prod(shape)))], dtype=object).reshape(shape)


def signatures(interp):
    """{key: (runner, input details by name)}; a model without signatures gets one, key ''."""
    keys = sorted(interp.get_signature_list())
    if keys:
        return {k: (interp.get_signature_runner(k), interp.get_signature_runner(k).get_input_details()) for k in keys}

    def run(**feeds):
        details = interp.get_input_details()
        for d in details:
            interp.resize_tensor_input(d["index"], feeds[d["name"]].shape)
        interp.allocate_tensors()
        for d in details:
            interp.set_tensor(d["index"], feeds[d["name"]])
        interp.invoke()
        return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    return {"": (run, {d["name"]: d for d in interp.get_input_details()})}


def user_feeds(path, details):
    """The user's arrays for one signature: keyed by input name, or by ``input:<name>``."""
    data = np.load(path)
    feeds = {}
    for name in details:
        for key in (name, f"input:{name}"):
            if key in data:
                feeds[name] = data[key]
    missing = sorted(set(details) - set(feeds))
    if missing:
        raise SystemExit(f"error: {path} has no array for input(s) {', '.join(missing)}")
    return feeds


def compare(entry, x, y):
    x, y = np.asarray(x), np.asarray(y)
    entry["shape_equal"] &= x.shape == y.shape
    entry["dtype_equal"] &= x.dtype == y.dtype
    if x.shape == y.shape and x.dtype.kind in "fiubc":
        wide = np.complex128 if x.dtype.kind == "c" else np.float64    # a complex error is the modulus
        diff = np.abs(x.astype(wide) - y.astype(wide))
        entry["max_abs"] = max(entry["max_abs"], float(diff.max(initial=0)))
        entry["max_ref"] = max(entry.get("max_ref", 0.0), float(np.abs(x.astype(wide)).max(initial=0)))
        scale = np.maximum(np.abs(x.astype(wide)), 1e-12)
        entry["max_rel"] = max(entry["max_rel"], float((diff / scale).max(initial=0)))
    elif x.shape == y.shape:
        entry["max_abs"] = max(entry["max_abs"], float(not np.array_equal(x, y)))


def load(cfg, which, report, keep_all=False):
    position = ("original", "patched").index(which)
    try:
        interp, report["runtimes"][position] = interpreter(cfg[which], cfg["flex"][position], keep_all)
        return signatures(interp), interp
    except Exception as e:  # the runtime's own words, for the one line the user sees
        raise ModelFailed(which, e) from None


def run(which, runner, feeds):
    try:
        return runner(**feeds)
    except Exception as e:
        shapes = ", ".join(f"{n}{list(np.shape(v))}" for n, v in feeds.items())
        raise ModelFailed(which, f"{e} (inputs {shapes})") from None


def whole_model(cfg, report):
    sigs_a, _ = load(cfg, "original", report)
    sigs_b, _ = load(cfg, "patched", report)
    if sorted(sigs_a) != sorted(sigs_b) or any(sorted(sigs_a[k][1]) != sorted(sigs_b[k][1]) for k in sigs_a):
        shown = ["; ".join(f"{k or '(no signature)'}({', '.join(sorted(d))})" for k, (_, d) in sorted(sigs.items()))
                 for sigs in (sigs_a, sigs_b)]
        raise NotComparable(f"the models do not have the same signatures and inputs: {shown[0]} vs {shown[1]}")
    rng = np.random.default_rng(cfg["seed"])
    shapes = cfg.get("shapes") or {}
    first_feeds = None
    for key, (run_a, details) in sigs_a.items():
        sets = [{n: random_input(rng, d, shapes.get(n)) for n, d in details.items()} for _ in range(cfg["runs"])]
        if cfg.get("inputs"):
            sets.append(user_feeds(cfg["inputs"], details))
        first_feeds = first_feeds or (key, sets[-1])
        for feeds in sets:
            out_a, out_b = run("original", run_a, feeds), run("patched", sigs_b[key][0], feeds)
            for name in out_a:
                label = f"{key}/{name}" if len(sigs_a) > 1 else name
                entry = report["outputs"].setdefault(label, {"max_abs": 0.0, "max_rel": 0.0, "shape_equal": True,
                                                             "dtype_equal": True})
                compare(entry, out_a[name], out_b.get(name))
    return first_feeds


def per_op(cfg, feeds, report):
    """Each group's TF ops, rebuilt from their NodeDefs, on the values the patched model computed."""
    try:
        import tensorflow as tf
        from tensorflow.core.framework import graph_pb2, node_def_pb2
    except ImportError:
        report["per_op"] = {"skipped": "per-op checks need TensorFlow (pass --python with TensorFlow 2.18.1)"}
        return
    sigs, interp = load(cfg, "patched", {"runtimes": [None, None]}, keep_all=True)
    key, values = feeds
    run("patched", sigs[key][0], values)
    constants = np.load(cfg["constants"]) if cfg.get("constants") else {}
    results = []
    for group in cfg["groups"]:
        graph = graph_pb2.GraphDef()
        names = {}
        for t in group["inputs"]:
            value = constants[f"c{t}"] if f"c{t}" in constants else interp.get_tensor(t)
            node = graph.node.add(name=f"t{t}", op="Const")
            node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            names[t] = f"t{t}:0"
        for op in group["ops"]:
            node = node_def_pb2.NodeDef.FromString(base64.b64decode(op["nodedef"]))
            node.name, node.device = f"op{op['index']}", ""
            del node.input[:]
            node.input.extend(names[t] for t in op["inputs"] if t >= 0)
            graph.node.append(node)
            names.update({t: f"op{op['index']}:{k}" for k, t in enumerate(op["outputs"])})
        fills = []
        for k, fill in enumerate(group.get("init", ())):     # a table's LookupTableImportV2, run first
            node = node_def_pb2.NodeDef.FromString(base64.b64decode(fill["nodedef"]))
            node.name, node.device = f"init{k}", ""
            del node.input[:]
            node.input.append(names[fill["table"]].split(":")[0])
            for c in fill["constants"]:
                const = graph.node.add(name=c, op="Const")
                const.attr["dtype"].type = tf.as_dtype(constants[c].dtype).as_datatype_enum
                const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(constants[c]))
                node.input.append(f"{c}:0")
            graph.node.append(node)
            fills.append(node.name)
        entry = {"ops": [op["index"] for op in group["ops"]], "builtin": group["builtin"],
                 "patched_index": group["patched_index"], "max_abs": 0.0, "max_rel": 0.0,
                 "shape_equal": True, "dtype_equal": True}
        try:
            with tf.Graph().as_default() as g:
                tf.graph_util.import_graph_def(graph, name="")
                with tf.compat.v1.Session(graph=g) as session:
                    if fills:
                        session.run(fills)
                    got = session.run([names[t] for t in group["outputs"]])
        except Exception as e:  # a NodeDef TensorFlow cannot run here: reported, not fatal
            entry["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            results.append(entry)
            continue
        for t, want in zip(group["outputs"], got):
            compare(entry, want, interp.get_tensor(t))
        results.append(entry)
    report["per_op"] = {"groups": results, "runtime": f"tensorflow {tf.__version__}"}


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    report = {"runtimes": [None, None], "runs": cfg["runs"], "outputs": {}}
    try:
        feeds = whole_model(cfg, report)
        if cfg.get("groups") and feeds:
            per_op(cfg, feeds, report)
    except ModelFailed as e:
        report = {"ok": False, "model": e.which, "error": f"the {e.which} model cannot run: {e}"}
    except NotComparable as e:
        report = {"ok": False, "error": str(e)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
