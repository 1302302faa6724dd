"""``fbtool inspect``: the human rendering of :func:`fbtool.inspect.describe`."""
from __future__ import annotations

import json

from ..errors import ModelError
from ..untrusted import deep

from ..inspect import inspect_model
from .style import Style, error


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="what is in a model, without TensorFlow",
                       description="Summarize a .tflite model: ops, tensors, signatures, weights, metadata.")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--json", action="store_true", help="print the full JSON document (schemas/inspect.schema.json); "
                                                       "one line per model")
    p.add_argument("--ops", action="store_true", help="list every operator")
    p.add_argument("--tensors", action="store_true", help="list every tensor")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the semantic checks (the bounds checks always run)")
    p.add_argument("--sha256", action="store_true",
                   help="also hash the file: the one step that reads every weight byte")
    p.set_defaults(run=run)


def run(args, out) -> int:
    """Each model in turn; a bad one is reported on stderr and the rest are still inspected (exit 2)."""
    status = 0
    for i, path in enumerate(args.models):
        try:
            doc = inspect_model(path, verify=not args.no_verify, sha256=args.sha256)
        except ModelError as e:
            if len(args.models) == 1:
                raise
            out.flush()
            error(f"{e.path or path}: {e}")
            status = 2
            continue
        if args.json:
            # json.dumps without indent is the C encoder; json.dump and indent fall back to pure Python.
            out.write(json.dumps(doc) + "\n")
        else:
            out.write(("\n" if i else "") + "\n".join(render(deep(doc), Style(out), args.ops, args.tensors)) + "\n")
    return status


def _shape(t: dict) -> str:
    dims = t["shape_signature"] if t["shape_signature"] else t["shape"]
    return "[" + ",".join(str(d) for d in dims) + "]"


def _tensor_ref(sg: dict, i: int) -> str:
    if i < 0:
        return "-"
    t = sg["tensors"][i]
    return f"{t['name'] or '#' + str(i)} {t['dtype']}{_shape(t)}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def render(doc: dict, s: Style, ops: bool = False, tensors: bool = False) -> list[str]:
    f = doc["file"]
    lines = [s(f["path"], "bold") + f"  {_size(f['size'])} ({f['size']} bytes)"]
    if f["sha256"]:
        lines.append(f"  sha256 {f['sha256']}")
    head = f"  schema v{doc['schema_version']}"
    if doc["description"]:
        head += f", {doc['description']!r}"
    if doc["min_runtime_version"]:
        head += f", min runtime {doc['min_runtime_version']}"
    lines.append(head)
    conv = doc["conversion"]
    if conv and "environment" in conv:
        env, opts = conv["environment"], conv.get("options", {})
        flags = [k for k in ("allow_custom_ops", "enable_select_tf_ops", "force_select_tf_ops") if opts.get(k)]
        modes = opts.get("model_optimization_modes") or []
        lines.append(f"  converted by TensorFlow {env.get('tensorflow_version', '?')} from {env.get('model_type', '?')}"
                     + (f", {', '.join(flags + modes)}" if flags or modes else ""))
    c = doc["op_counts"]
    lines.append("")
    lines.append(s("Operators", "bold") + f": {c['total']} ({c['builtin']} builtin, "
                 + s(f"{c['flex']} flex", "yellow" if c["flex"] else "") + ", "
                 + s(f"{c['custom']} custom", "red" if c["custom"] else "") + ")")
    if c["flex"]:
        lines.append(s("  needs the Flex delegate (TF Select ops): not available in TF >= 2.19 or ai-edge-litert", "yellow"))
    if c["custom"]:
        names = sorted({h["opcode"] for h in doc["op_histogram"] if h["kind"] == "custom"})
        lines.append(s(f"  needs custom kernels registered for: {', '.join(names)}", "red"))
    width = max((len(h["opcode"]) for h in doc["op_histogram"]), default=0)
    for h in doc["op_histogram"]:
        tag = "" if h["kind"] == "builtin" else f"  ({h['kind']})"
        lines.append(f"  {h['count']:>6}  " + s.kind(f"{h['opcode']:<{width}}", h["kind"]) + f"  v{h['version']}{tag}")
    for sg in doc["subgraphs"]:
        lines.append("")
        title = f"Subgraph {sg['index']}" + (f" {sg['name']!r}" if sg["name"] else "")
        lines.append(s(title, "bold") + f": {len(sg['operators'])} operators, {len(sg['tensors'])} tensors")
        for label, key in (("in ", "inputs"), ("out", "outputs")):
            for i in sg[key]:
                lines.append(f"  {label} {i:>4}  {_tensor_ref(sg, i)}")
        if ops:
            for op in sg["operators"]:
                ins = ",".join(map(str, op["inputs"]))
                outs = ",".join(map(str, op["outputs"]))
                calls = f"  calls subgraph {','.join(map(str, op['calls']))}" if "calls" in op else ""
                lines.append(f"  {op['index']:>5}  " + s.kind(f"{op['opcode']}(v{op['version']})", op["kind"])
                             + f"  [{ins}] -> [{outs}]{calls}")
        if tensors:
            for t in sg["tensors"]:
                extra = f"  {t['bytes']} bytes in buffer {t['buffer']}" if t["bytes"] else ""
                if "quantization" in t:
                    q = t["quantization"]
                    extra += f"  q(scale {q['scale'][:1]}{'...' if len(q['scale']) > 1 else ''}, zp {q['zero_point'][:1]})"
                lines.append(f"  {t['index']:>5}  {t['name']}  {t['dtype']}{_shape(t)}{extra}")
    if doc["signatures"]:
        lines.append("")
        lines.append(s("Signatures", "bold"))
        for sig in doc["signatures"]:
            sg = doc["subgraphs"][sig["subgraph"]]
            lines.append(f"  {sig['key']} (subgraph {sig['subgraph']})")
            for side in ("inputs", "outputs"):
                for io in sig[side]:
                    lines.append(f"    {side[:-1]:<6} {io['name']}: {_tensor_ref(sg, io['tensor'])}")
    b = doc["buffers"]
    lines.append("")
    weights = b["inline_bytes"] + b["external_bytes"]
    lines.append(s("Bytes", "bold") + f": weights {_size(weights)}"
                 + (f" ({_size(b['external_bytes'])} outside the flatbuffer)" if b["external_bytes"] else "")
                 + f", graph {_size(b['graph_bytes'])}, {b['count']} buffers"
                 + (f", trailing {_size(f['trailing_bytes'])}" if f["trailing_bytes"] else ""))
    if f["trailing_zip"]:
        lines.append(f"  trailing zip (associated files): {', '.join(f['trailing_zip'])}")
    if doc["largest_constants"]:
        lines.append("  largest constants:")
        for t in doc["largest_constants"]:
            sparse = "  (sparse)" if t.get("sparse") else ""
            lines.append(f"  {_size(t['bytes']):>10}  {t['name']}  {t['dtype']}{_shape({'shape_signature': [], **t})}{sparse}")
    if doc["metadata"]:
        lines.append("")
        lines.append(s("Metadata", "bold"))
        for m in doc["metadata"]:
            ident = f"  ({m['identifier']})" if "identifier" in m else ""
            lines.append(f"  {m['name']}  {m['bytes']} bytes in buffer {m['buffer']}{ident}")
    if doc["warnings"]:
        lines.append("")
        lines.append(s(f"Warnings ({len(doc['warnings'])}): the runtime runs this, but it is not right", "yellow"))
        lines += [f"  {w}" for w in doc["warnings"]]
    return lines
