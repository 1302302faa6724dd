"""``fbtool flex``: every Flex and custom op, decoded, placed in the graph and judged against the catalog.

The document's JSON Schema is schemas/flex.schema.json.
"""
from __future__ import annotations

import os
from collections import Counter

from .. import __version__
from ..graph import build_graph, find_islands, layer_of, partitions, unused_ops
from ..reader.model import Model, open_model
from .catalog import TensorInfo, load_catalog
from .decode import decode_ops


def analyze_flex(path: str | os.PathLike, verify: bool = True) -> dict:
    """Decode and assess the Flex and custom ops of the model at ``path``."""
    with open_model(os.fspath(path), verify=verify) as model:
        return describe_flex(model)


def _tensor_ref(sg, ti: int) -> dict:
    if ti < 0:
        return {"tensor": -1}
    t = sg.tensors[ti]
    return {"tensor": ti, "name": t.name, "dtype": t.dtype, "shape": list(t.shape_signature)}


def describe_flex(model: Model) -> dict:
    catalog = load_catalog()
    mg = build_graph(model)
    islands = {sg.index: find_islands(mg.subgraphs[sg.index]) for sg in model.subgraphs}
    island_of = {(si, i): isl.index for si, isls in islands.items() for isl in isls for i in isl.ops}
    ops = []
    for d in decode_ops(model):
        sg = model.subgraphs[d.subgraph]
        op = sg.operators[d.index]
        layer, scope = layer_of(sg.tensors[op.outputs[0]].name) if op.outputs else (None, None)
        entry = {
            "kind": d.kind, "custom_code": d.custom_code, "tf_op": d.tf_op, "attrs": d.attrs,
            "subgraph": d.subgraph, "index": d.index,
            "inputs": [_tensor_ref(sg, ti) for ti in op.inputs],
            "outputs": [_tensor_ref(sg, ti) for ti in op.outputs],
            "layer": layer, "scope": scope, "island": island_of.get((d.subgraph, d.index)),
            "on_allowlist": catalog.on_allowlist(d.tf_op),
        }
        if d.error:
            entry.update(rewritable=False, builtin=None, version=None, min_runtime=None,
                         reason=f"cannot judge: {d.error}", error=d.error)
        elif d.kind == "custom":
            why = (catalog.entry(d.tf_op) or {}).get("why_not")
            entry.update(rewritable=False, builtin=None, version=None, min_runtime=None,
                         reason=f"custom op: needs a kernel registered as {d.custom_code!r}" + (f"; {why}" if why else ""))
        else:
            infos = [TensorInfo(sg.tensors[ti].dtype, tuple(sg.tensors[ti].shape_signature),
                                model.is_constant(sg.tensors[ti])) for ti in op.inputs if ti >= 0]
            v = catalog.assess(d.tf_op, d.attrs, infos)
            entry.update(rewritable=v.rewritable, builtin=v.builtin, version=v.version,
                         min_runtime=v.min_runtime, reason=v.reason)
        ops.append(entry)
    by_op = Counter((o["kind"], o["tf_op"], o["rewritable"]) for o in ops)
    return {
        "fbtool_version": __version__,
        "file": model.path,
        "summary": {
            "flex_ops": sum(o["kind"] == "flex" for o in ops),
            "custom_ops": sum(o["kind"] == "custom" for o in ops),
            "rewritable": sum(o["rewritable"] for o in ops),
            "must_stay": sum(not o["rewritable"] for o in ops),
            "undecodable": sum("error" in o for o in ops),
            "islands": sum(len(v) for v in islands.values()),
            "partitions": sum(partitions(g) for g in mg.subgraphs),
            "by_op": [{"kind": k, "tf_op": t, "rewritable": r, "count": n}
                      for (k, t, r), n in sorted(by_op.items(), key=lambda kv: (-kv[1], kv[0][1]))],
        },
        "ops": ops,
        "islands": [
            {"subgraph": si, "index": isl.index, "ops": isl.ops, "inputs": isl.inputs, "outputs": isl.outputs,
             "input_bytes": isl.input_bytes, "output_bytes": isl.output_bytes, "dynamic": isl.dynamic}
            for si, isls in islands.items() for isl in isls
        ],
        "subgraphs": [
            {"index": g.graph["index"], "operators": sum(1 for _, k in g.nodes(data="kind") if k != "tensor"),
             "partitions": partitions(g), "islands": len(islands[g.graph["index"]]), "unused_ops": unused_ops(g)}
            for g in mg.subgraphs
        ],
    }
