"""Which original Flex ops each builtin of a patched model replaces: the unit of per-op checking.

Found from the two models alone, so it works for any patched file, not just a fresh plan: fbtool
never renumbers tensors, so for a builtin op of the patched model whose outputs a Flex op wrote
in the original, walk the original graph back from those outputs until reaching tensors the
patched model computes too (or constants and inputs). The Flex ops passed are what the builtin
stands for: one op for a plain rewrite, a conv with its BiasAdd, BatchNorm and Relu, the five
ops of a GELU. Their outer inputs are what the runner feeds TensorFlow, taken from the patched
model's own run, so each group is checked on exactly the values it sees there.
"""
from __future__ import annotations

import base64

import numpy as np

from ..flex.decode import decode_op, nodedef_bytes
from ..reader.model import Model

NUMPY = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int8": np.int8, "uint8": np.uint8,
         "int16": np.int16, "int32": np.int32, "int64": np.int64, "bool": np.bool_}


def _fixed(model: Model, tensor) -> bool:
    """A value known from the file: a constant, or a tensor with no elements (which needs no data)."""
    return model.is_constant(tensor) or 0 in tensor.shape


def _dequantized(model: Model, op) -> np.ndarray | None:
    """The float32 values a DEQUANTIZE of a float16 constant gives (exact), or None: how quantized
    models feed their weights, and the patched model may no longer compute them where they were."""
    if op.opcode.name != "DEQUANTIZE" or len(op.inputs) != 1:
        return None
    t = model.subgraphs[0].tensors[op.inputs[0]]
    if t.dtype != "float16" or not model.is_constant(t):
        return None
    return np.frombuffer(model.buffer_bytes(t.buffer), np.float16).reshape(t.shape).astype(np.float32)


def half_weights(model: Model) -> bool:
    """Whether a model stores constants as float16 behind DEQUANTIZE (float16 quantization): its
    results, and a patch's (folded weights are rounded to float16 again), carry ~3 digits."""
    return any(_dequantized(model, op) is not None for sg in model.subgraphs[:1] for op in sg.operators)


def _computed(model: Model) -> set[int]:
    sg = model.subgraphs[0]
    return {t for op in sg.operators for t in op.outputs} | set(sg.inputs)


def rewrite_groups(original: Model, patched: Model) -> tuple[list[dict], dict[str, np.ndarray]]:
    """(groups, constants): per group the Flex ops (NodeDef, inputs, outputs) in order, the outer
    inputs and the outputs to compare; constants of the original the groups read, by "c<index>"."""
    if not original.subgraphs or not patched.subgraphs:
        return [], {}
    before = original.subgraphs[0]
    producer = {t: op for op in before.operators for t in op.outputs}
    available = _computed(patched)
    n_tensors = len(before.tensors)
    groups, constants, seen = [], {}, set()
    for op in patched.subgraphs[0].operators:
        outs = [t for t in op.outputs if 0 <= t < n_tensors and t in producer]
        if op.opcode.kind == "flex" or not outs or any(producer[t].opcode.kind != "flex" for t in outs):
            continue
        members, inputs, stack = {}, set(), list(outs)
        while stack:
            t = stack.pop()
            src = producer.get(t)
            if src is None or (t in available and t not in outs) or _fixed(original, before.tensors[t]) \
                    or _dequantized(original, src) is not None:
                inputs.add(t)
                continue
            if src.opcode.kind != "flex":
                break
            if src.index not in members:
                members[src.index] = src
                stack += [i for i in src.inputs if i >= 0]
        else:
            key = tuple(sorted(members))
            if key in seen:
                continue
            seen.add(key)
            ops = []
            for index in key:
                src = members[index]
                raw = nodedef_bytes(original, src)
                if raw is None:
                    break
                ops.append({"index": index, "nodedef": base64.b64encode(raw).decode(), "inputs": list(src.inputs),
                            "outputs": list(src.outputs), "shared_name": _shared_name(original, 0, src)})
            else:
                for t in inputs:
                    tensor = before.tensors[t]
                    if _fixed(original, tensor) and tensor.dtype in NUMPY:
                        constants[f"c{t}"] = np.frombuffer(original.buffer_bytes(tensor.buffer),
                                                           NUMPY[tensor.dtype]).reshape(tensor.shape)
                    elif t not in available and producer.get(t) is not None:
                        constants[f"c{t}"] = _dequantized(original, producer[t])
                group = {"ops": ops, "inputs": sorted(inputs), "outputs": outs, "builtin": op.opcode.name,
                         "patched_index": op.index}
                group["init"] = _table_imports(original, ops, constants)
                groups.append(group)
    return groups, constants


def _shared_name(model: Model, sg: int, op) -> str | None:
    """The table a FlexHashTableV2 opens (None for any other op)."""
    if op is None or op.opcode.custom_code != "FlexHashTableV2":
        return None
    d = decode_op(model, sg, op, {})
    return None if d.error else d.attrs.get("shared_name") or None


def _table_imports(model: Model, ops: list[dict], constants: dict) -> list[dict]:
    """For a group that opens a hash table (HashTableV2): the LookupTableImportV2 ops that fill the
    same table (same shared_name) in the session-initializer subgraph, with their constant keys and
    values, so that TensorFlow finds the table filled as the model does. Their table input is the
    group's own handle; their constants are "s<subgraph>_<tensor>"."""
    tables = {op["shared_name"]: op for op in ops if op.get("shared_name")}
    found = []
    for sg in model.subgraphs if tables else ():
        producer = {t: o for o in sg.operators for t in o.outputs}
        for node in sg.operators:
            if node.opcode.custom_code != "FlexLookupTableImportV2" or not node.inputs:
                continue
            name = _shared_name(model, sg.index, producer.get(node.inputs[0]))
            raw = nodedef_bytes(model, node)
            if name not in tables or raw is None or any(not _fixed(model, sg.tensors[t]) for t in node.inputs[1:]):
                continue
            names = [f"s{sg.index}_{t}" for t in node.inputs[1:]]
            for t, key in zip(node.inputs[1:], names):
                tensor = sg.tensors[t]
                constants[key] = np.frombuffer(model.buffer_bytes(tensor.buffer),
                                               NUMPY[tensor.dtype]).reshape(tensor.shape)
            found.append({"nodedef": base64.b64encode(raw).decode(), "table": tables[name]["outputs"][0],
                          "constants": names})
    return found
