"""``fbtool log --model``: which log entries became which Flex/custom ops of a converted model."""
from __future__ import annotations

from ..flex.decode import decode_ops
from ..names import layer_of
from ..reader.model import Model


def join(doc: dict, model: Model) -> dict:
    """Match log ops to model ops by TF op name, then by layer where the log names one."""
    model_ops = []
    for d in decode_ops(model):
        op = model.subgraphs[d.subgraph].operators[d.index]
        name = model.subgraphs[d.subgraph].tensors[op.outputs[0]].name if op.outputs else ""
        layer, scope = layer_of(name)
        model_ops.append({"subgraph": d.subgraph, "index": d.index, "custom_code": d.custom_code,
                          "tf_op": d.tf_op, "kind": d.kind, "layer": layer, "scope": scope})
    matched_model = set()
    matches, unexplained_log = [], []
    for entry in doc["ops"]:
        if entry["category"] not in ("needs_flex", "needs_custom"):
            continue
        same = [m for m in model_ops if m["tf_op"] == entry["name"]]
        layers = {loc["layer"] for loc in entry["locations"] if loc["layer"]}
        layers |= {scope.rsplit("/", 1)[-1] for loc in entry["locations"] for scope in loc["within"]}
        if layers and any(m["layer"] in layers for m in same):
            same = [m for m in same if m["layer"] in layers]
        if same:
            matches.append({"log_op": entry["name"], "category": entry["category"], "model_ops": same})
            matched_model.update((m["subgraph"], m["index"]) for m in same)
        else:
            unexplained_log.append(entry["name"])
    return {
        "model": model.path,
        "matches": matches,
        "unexplained_log_ops": unexplained_log,
        "unexplained_model_ops": [m for m in model_ops if (m["subgraph"], m["index"]) not in matched_model],
    }
