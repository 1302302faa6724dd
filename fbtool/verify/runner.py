"""Run two .tflite models on the same seeded inputs and print their outputs' differences as JSON.

Executed as a script in its own process (models are programs: a crash here is reported, not
inherited), by a Python that has the runtimes: TensorFlow <= 2.18.1 for models with Flex ops,
ai-edge-litert (or TensorFlow) for the others. Usage: runner.py ORIGINAL PATCHED SEED RUNS
"""
import json
import sys

import numpy as np


def interpreter(path, needs_flex):
    if not needs_flex:
        try:
            from ai_edge_litert.interpreter import Interpreter
            return Interpreter(model_path=path), "ai-edge-litert"
        except ImportError:
            pass
    import tensorflow as tf
    return tf.lite.Interpreter(model_path=path), f"tensorflow {tf.__version__}"


def random_input(rng, detail):
    shape = [d if d > 0 else 2 for d in detail["shape_signature"]]
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 8, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    return np.array([str(v) for v in rng.integers(0, 100, int(np.prod(shape)))], dtype=object).reshape(shape)


def run(interp, feeds):
    signatures = interp.get_signature_list()
    if signatures:
        key = sorted(signatures)[0]
        return interp.get_signature_runner(key)(**feeds)
    for d in interp.get_input_details():
        interp.resize_tensor_input(d["index"], feeds[d["name"]].shape)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], feeds[d["name"]])
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def inputs_of(interp):
    signatures = interp.get_signature_list()
    if signatures:
        runner = interp.get_signature_runner(sorted(signatures)[0])
        return [{**d, "name": n} for n, d in runner.get_input_details().items()]
    return interp.get_input_details()


def main():
    original, patched, seed, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    flex = json.loads(sys.argv[5])
    # The original runs where its Flex ops can (TensorFlow <= 2.18); a patched model without Flex ops
    # runs on ai-edge-litert, which has no Flex delegate: proof that it needs none. Both share
    # LiteRT's builtin kernels, so a difference beyond float rounding is the rewrite's.
    a, runtime_a = interpreter(original, flex[0])
    b, runtime_b = interpreter(patched, flex[1])
    rng = np.random.default_rng(seed)
    report = {"runtimes": [runtime_a, runtime_b], "runs": runs, "outputs": {}}
    for _ in range(runs):
        feeds = {d["name"]: random_input(rng, d) for d in inputs_of(a)}
        out_a, out_b = run(a, feeds), run(b, feeds)
        for name in out_a:
            x, y = np.asarray(out_a[name]), np.asarray(out_b.get(name))
            entry = report["outputs"].setdefault(name, {"max_abs": 0.0, "max_rel": 0.0, "shape_equal": True,
                                                         "dtype_equal": True})
            entry["shape_equal"] &= x.shape == y.shape
            entry["dtype_equal"] &= x.dtype == y.dtype
            if x.shape == y.shape and x.dtype.kind in "fiub":
                diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
                entry["max_abs"] = max(entry["max_abs"], float(diff.max(initial=0)))
                scale = np.maximum(np.abs(x.astype(np.float64)), 1e-12)
                entry["max_rel"] = max(entry["max_rel"], float((diff / scale).max(initial=0)))
            elif x.shape == y.shape:
                entry["max_abs"] = max(entry["max_abs"], float(not np.array_equal(x, y)))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
