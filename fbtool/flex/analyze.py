"""``fbtool flex``: every Flex and custom op, decoded, placed in the graph and judged against the catalog.

The document's JSON Schema is schemas/flex.schema.json.
"""
from __future__ import annotations

import os
from collections import Counter

from .. import __version__
from ..graph import build_graph, find_islands, layer_of, partitions, unused_ops
from ..reader.model import Model, open_model
from .catalog import load_catalog
from .decode import decode_ops
from .custom import stock
from .custom import verdict as custom_verdict


def analyze_flex(path: str | os.PathLike, verify: bool = True) -> dict:
    """Decode and assess the Flex and custom ops of the model at ``path``."""
    with open_model(os.fspath(path), verify=verify) as model:
        return describe_flex(model)


def _tensor_ref(sg, ti: int) -> dict:
    if ti < 0:
        return {"tensor": -1}
    t = sg.tensors[ti]
    return {"tensor": ti, "name": t.name, "dtype": t.dtype, "shape": list(t.shape_signature)}


def _verdicts(model: Model, decoded) -> dict:
    """Per (subgraph, op) the patch planner's outcome as flex reports it: what ``fbtool patch`` will do,
    from the same plan, so "rewritable" means patch rewrites it."""
    from ..patch.api import inserted_text
    from ..patch.rewrite import plan

    p = plan(model, decoded=decoded)
    done = {(r["subgraph"], r["index"]): r for r in p.rewrites}
    out = {}
    for key, r in done.items():
        rule = {"rule": r["rule"]}
        if "fused_into" in r:
            into = done[(r["subgraph"], r["fused_into"])]
            out[key] = dict(rewritable=True, builtin=into["builtin"], version=into["version"],
                            min_runtime=into["min_runtime"], fused_into=r["fused_into"], **rule,
                            reason=f"fused into op {r['fused_into']}'s {into['builtin']} ({r['rule']})")
        elif r.get("unread"):
            out[key] = dict(rewritable=True, builtin=None, version=None, min_runtime=None, **rule,
                            reason="removed: nothing reads it once the ops reading it are rewritten")
        elif r.get("removed"):
            copies = f"; {', '.join(r['inserted'])} copies it into a model output" if r.get("inserted") else ""
            out[key] = dict(rewritable=True, builtin=None, version=None, min_runtime=r["min_runtime"], **rule,
                            reason=f"removed: its readers read its input{copies}")
        else:
            extra = f", after {inserted_text(r['inserted'])}" if r.get("inserted") else ""
            out[key] = dict(rewritable=True, builtin=r["builtin"], version=r["version"], min_runtime=r["min_runtime"],
                            **rule, reason=f"{r['tf_op']} -> {r['builtin']} v{r['version']}{extra} ({r['rule']})")
    for k in p.kept:
        out[(k["subgraph"], k["index"])] = dict(rewritable=False, builtin=None, version=None, min_runtime=None,
                                                reason=k["reason"])
    return out


def remedy(catalog, tf_op: str, layer: str | None) -> str | None:
    """What would remove a Flex op no rewrite removes (the catalog's advice, naming the layer)."""
    entry = catalog.entry(tf_op)
    if entry is None:
        return (f"fbtool knows no builtin form of {tf_op}: keep the Flex delegate (TensorFlow <= 2.18.1, or the "
                "select-tf-ops library on device), or build the model without it")
    if not entry.get("remedy"):
        return None
    return entry["remedy"].replace("{layer}", f"the layer '{layer}'" if layer else "the layer it comes from")


def describe_flex(model: Model) -> dict:
    mg = build_graph(model)
    islands = {sg.index: find_islands(mg.subgraphs[sg.index]) for sg in model.subgraphs}
    island_of = {(si, i): isl.index for si, isls in islands.items() for isl in isls for i in isl.ops}
    decoded = decode_ops(model)
    verdicts = _verdicts(model, decoded)
    catalog = load_catalog()
    ops = []
    for d in decoded:
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
            **verdicts[(d.subgraph, d.index)],
        }
        if d.error:
            entry.update(reason=f"cannot judge: {d.error}", error=d.error)
        elif d.kind == "flex" and not entry["rewritable"] and (fix := remedy(catalog, d.tf_op, layer)):
            entry["remedy"] = fix
        elif d.kind == "custom":
            version = op.opcode.version
            entry["stock"] = stock(d.custom_code, version)
            why = (catalog.entry(d.tf_op) or {}).get("why_not")
            entry["reason"] = custom_verdict(d.custom_code, version) + (f"; {why}" if why and not entry["stock"] else "")
        ops.append(entry)
    by_op = Counter((o["kind"], o["tf_op"], o["rewritable"], o.get("stock")) for o in ops)
    return {
        "fbtool_version": __version__,
        "file": model.path,
        "summary": {
            "flex_ops": sum(o["kind"] == "flex" for o in ops),
            "custom_ops": sum(o["kind"] == "custom" for o in ops),
            "stock_custom_ops": sum(bool(o.get("stock")) for o in ops),
            "rewritable": sum(o["rewritable"] for o in ops),
            "must_stay": sum(not o["rewritable"] and not o.get("stock") for o in ops),
            "undecodable": sum("error" in o for o in ops),
            "islands": sum(len(v) for v in islands.values()),
            "partitions": sum(partitions(g) for g in mg.subgraphs),
            "by_op": [{"kind": k, "tf_op": t, "rewritable": r, "count": n, **({"stock": st} if st else {})}
                      for (k, t, r, st), n in sorted(by_op.items(), key=lambda kv: (-kv[1], kv[0][1]))],
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
