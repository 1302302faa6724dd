"""``fbtool patch``: Flex ops whose TF op is a plain TFLite builtin become that builtin.

This first set of rules covers the catalog's ``code`` rewrites (the builtin takes the same
inputs, and its options keep their defaults: ADD, MUL, RELU, RSQRT, RESHAPE, ...). A Flex
op code is rewritten when every op that uses it can be: the OperatorCode entry is then
pointed at a new builtin OperatorCode, and each op's custom options are emptied in place.
Nothing else in the file moves, except data stored after the flatbuffer, which shifts by
the size of the new tables (its offsets are updated).
"""
from __future__ import annotations

import os
from collections import defaultdict

from ..flex.catalog import TensorInfo, load_catalog
from ..flex.decode import decode_ops
from ..reader.model import SCHEMA, Model, open_model
from .writer import Editor, write_verified

_OPCODE = SCHEMA.tables["OperatorCode"].fields
_CODES = SCHEMA.enums["BuiltinOperator"]
PLACEHOLDER_FOR_GREATER_OP_CODES = 127
PENDING = {"options": "attributes and constant operands moved into builtin options",
           "weights": "weights re-laid out into new buffers",
           "remove": "the op deleted and its consumers rewired",
           "pattern": "several ops matched as one"}


def _inputs(model: Model, sg: int, op) -> list[TensorInfo]:
    tensors = model.subgraphs[sg].tensors
    return [TensorInfo(tensors[i].dtype, tuple(tensors[i].shape_signature),
                       bool(tensors[i].buffer and model.buffers[tensors[i].buffer].size)) for i in op.inputs if i >= 0]


def plan(model: Model) -> tuple[list[dict], list[dict]]:
    """(rewrites, kept): what would change, and every Flex/custom op left with the reason."""
    catalog = load_catalog()
    by_code: dict[int, list] = defaultdict(list)
    kept = []
    for d in decode_ops(model):
        op = model.subgraphs[d.subgraph].operators[d.index]
        entry = {"subgraph": d.subgraph, "index": d.index, "custom_code": d.custom_code, "tf_op": d.tf_op}
        if d.kind != "flex" or d.error:
            kept.append({**entry, "reason": d.error or "custom op: no rule rewrites custom ops"})
            continue
        verdict = catalog.assess(d.tf_op, d.attrs, _inputs(model, d.subgraph, op))
        rule = (catalog.entry(d.tf_op) or {}).get("rewrite")
        if not verdict.rewritable:
            kept.append({**entry, "reason": verdict.reason})
        elif rule != "code":
            target = f"builtin {verdict.builtin}" if verdict.builtin else "a rewrite"
            kept.append({**entry, "reason": f"{target} exists, but fbtool does not yet do '{rule}' rewrites "
                                            f"({PENDING[rule]})"})
        else:
            by_code[op.opcode_index].append((entry, verdict))
    rewrites = []
    for code, items in sorted(by_code.items()):
        using = sum(1 for sg in model.subgraphs for op in sg.operators if op.opcode_index == code)
        builtins = {v.builtin for _, v in items}
        if len(items) != using or len(builtins) != 1:
            why = "other ops of the same Flex code cannot be rewritten: fbtool rewrites a Flex code only as a whole"
            kept += [{**e, "reason": why} for e, _ in items]
            continue
        version = max(v.version for _, v in items)
        rewrites += [{**e, "builtin": v.builtin, "version": version, "opcode_index": code,
                      "min_runtime": catalog.min_runtime(v.builtin, version)} for e, v in items]
    order = lambda r: (r["subgraph"], r["index"])  # noqa: E731
    return sorted(rewrites, key=order), sorted(kept, key=order)


def _new_opcode(editor: Editor, builtin: str, version: int) -> int:
    code = _CODES[builtin]
    fields = {
        _OPCODE["deprecated_builtin_code"].slot: ("b", min(code, PLACEHOLDER_FOR_GREATER_OP_CODES)),
        _OPCODE["builtin_code"].slot: ("i", code),
    }
    if version != 1:
        fields[_OPCODE["version"].slot] = ("i", version)
    at, _ = editor.table(fields)
    return at


def apply(model: Model, rewrites: list[dict]) -> bytes:
    """The patched file's bytes."""
    editor = Editor(model)
    vector_at = editor.field_pos(model.root, "operator_codes")
    vector_at += int.from_bytes(model.buf[vector_at:vector_at + 4], "little")
    for index in sorted({r["opcode_index"] for r in rewrites}):
        r = next(r for r in rewrites if r["opcode_index"] == index)
        editor.point(vector_at + 4 + 4 * index, _new_opcode(editor, r["builtin"], r["version"]))
    for r in rewrites:
        op = model.subgraphs[r["subgraph"]].operators[r["index"]]
        at = editor.field_pos(op.t, "custom_options")
        if at is not None:   # an empty vector: the NodeDef bytes stay behind, unreferenced
            target = at + int.from_bytes(model.buf[at:at + 4], "little")
            editor.put(target, "I", 0)
    _update_min_runtime(model, editor, rewrites)
    return editor.render()


def _update_min_runtime(model: Model, editor: Editor, rewrites: list[dict]) -> None:
    from ..audit.record import version_tuple

    catalog = load_catalog()
    needs = [catalog.min_runtime(r["builtin"], r["version"]) for r in rewrites]
    needs = [n for n in needs if n]
    for name, index in model.metadata:
        buf = model.buffers[index]
        if name != "min_runtime_version" or not buf.data:
            continue
        current = model.buffer_bytes(index).split(b"\0", 1)[0].decode("ascii", "replace")
        newest = max([current, *needs], key=version_tuple)
        if newest != current and len(newest) < buf.data.size:
            for i, byte in enumerate(newest.encode().ljust(buf.data.size, b"\0")):
                editor.put(buf.data.offset + i, "B", byte)
        break


def patch_model(path: str | os.PathLike, out: str | os.PathLike | None, dry_run: bool = False,
                verify=None) -> dict:
    """Plan and (unless ``dry_run``) write the patched model; the document of schemas/patch.schema.json.

    ``verify(original, candidate) -> dict`` runs before the output is renamed into place; when
    its report is not ``ok`` nothing is written and the report says why.
    """
    path = os.fspath(path)
    with open_model(path) as model:
        rewrites, kept = plan(model)
        flex_before = sum(op.opcode.kind == "flex" for sg in model.subgraphs for op in sg.operators)
        data = apply(model, rewrites) if rewrites and not dry_run else None
    doc = {"model": path, "output": None, "dry_run": dry_run, "flex_before": flex_before,
           "flex_after": flex_before - len(rewrites), "rewrites": rewrites, "kept": kept, "verification": None}
    if out is None or dry_run:
        return doc

    def check(candidate: str) -> None:
        if verify is not None and rewrites:
            doc["verification"] = verify(path, candidate)
            if not doc["verification"]["ok"]:
                raise VerificationFailed(doc)

    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    write_verified(data, os.fspath(out), check)
    doc["output"] = os.fspath(out)
    return doc


class VerificationFailed(Exception):
    """The patched model did not compute what the original did; nothing was written."""

    def __init__(self, doc: dict):
        super().__init__("verification failed")
        self.doc = doc
