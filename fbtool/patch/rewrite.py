"""``fbtool patch``: Flex ops whose TF op has a TFLite builtin become that builtin.

Two kinds of rule so far: the catalog's ``code`` rewrites (the builtin takes the same inputs
with default options: ADD, MUL, RELU, RSQRT, RESHAPE, ...), where each op's custom options
are emptied in place; and the per-op rules of :mod:`.rules` (options, dropped constant
operands, weights re-laid out in place), which get a new Operator table that the operators
vector is re-pointed at. A Flex op code is rewritten when every op that uses it can be: its
OperatorCode entry is then pointed at a new builtin OperatorCode. Nothing else in the file
moves, except data stored after the flatbuffer, which shifts by the size of the new tables
(its offsets are updated).
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import replace

from ..flex.catalog import TensorInfo, load_catalog, version_tuple
from ..flex.decode import decode_ops
from ..reader.model import SCHEMA, Model, open_model
from .rules import RULES, Context, NoRule, Rewrite
from .writer import Editor, write_patched

_OPCODE = SCHEMA.tables["OperatorCode"].fields
_CODES = SCHEMA.enums["BuiltinOperator"]
PLACEHOLDER_FOR_GREATER_OP_CODES = 127
PENDING = {"options": "attributes and constant operands moved into builtin options",
           "weights": "weights re-laid out into new buffers",
           "remove": "the op deleted and its consumers rewired",
           "pattern": "several ops matched as one"}


def _inputs(model: Model, sg: int, op) -> list[TensorInfo]:
    tensors = model.subgraphs[sg].tensors
    return [TensorInfo(tensors[i].dtype, tuple(tensors[i].shape_signature), model.is_constant(tensors[i]))
            for i in op.inputs if i >= 0]


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
        elif rule == "code":
            by_code[op.opcode_index].append(({**entry, "rule": rule}, verdict))
        elif d.tf_op in RULES:
            try:
                rewrite = RULES[d.tf_op](Context(model, d.subgraph, op, {**(catalog.entry(d.tf_op).get("attr_defaults") or {}), **d.attrs}))
            except NoRule as e:
                kept.append({**entry, "reason": str(e)})
                continue
            if rewrite.builtin:
                version = rewrite.version or 1
                verdict = replace(verdict, builtin=rewrite.builtin, version=version,
                                  min_runtime=catalog.min_runtime(rewrite.builtin, version))
            by_code[op.opcode_index].append(({**entry, "rule": rule, "_rewrite": rewrite}, verdict))
        else:
            target = f"builtin {verdict.builtin}" if verdict.builtin else "a rewrite"
            kept.append({**entry, "reason": f"{target} exists, but fbtool does not yet do this '{rule}' rewrite "
                                            f"({PENDING[rule]})"})
    users = Counter(op.opcode_index for sg in model.subgraphs for op in sg.operators)
    rewrites = []
    for code, items in sorted(by_code.items()):
        using = users[code]
        builtins = {v.builtin for _, v in items}
        if len(items) != using or len(builtins) != 1:
            why = "other ops of the same Flex code cannot be rewritten: fbtool rewrites a Flex code only as a whole"
            kept += [{k: v for k, v in e.items() if k not in ("rule", "_rewrite")} | {"reason": why} for e, _ in items]
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


def apply(model: Model, rewrites: list[dict]) -> Editor:
    """The edits that make the patched file (``.render()`` for bytes, ``.chunks()`` to stream)."""
    editor = Editor(model)
    vector_at = editor.target(model.root, "operator_codes")
    for index in sorted({r["opcode_index"] for r in rewrites}):
        r = next(r for r in rewrites if r["opcode_index"] == index)
        editor.point(vector_at + 4 + 4 * index, _new_opcode(editor, r["builtin"], r["version"]))
    for r in rewrites:
        op = model.subgraphs[r["subgraph"]].operators[r["index"]]
        if "_rewrite" in r:
            _new_operator(model, editor, r["subgraph"], op, r["_rewrite"])
            continue
        options = editor.target(op.t, "custom_options")
        if options is not None:   # an empty vector: the NodeDef bytes stay behind, unreferenced
            editor.put(options, "I", 0)
    _update_min_runtime(model, editor, rewrites)
    return editor


_OPERATOR = SCHEMA.tables["Operator"].fields
_UNION_CODE = {name: code for code, name in SCHEMA.unions["BuiltinOptions"].items()}


def _new_operator(model: Model, editor: Editor, sg: int, op, rewrite: Rewrite) -> None:
    """A new Operator table (same opcode, the rule's inputs and options) in place of the Flex one."""
    fields = {_OPERATOR["opcode_index"].slot: ("I", op.opcode_index),
              _OPERATOR["inputs"].slot: ("I", None), _OPERATOR["outputs"].slot: ("I", None)}
    if rewrite.options:
        fields[_OPERATOR["builtin_options_type"].slot] = ("B", _UNION_CODE[rewrite.options])
        fields[_OPERATOR["builtin_options"].slot] = ("I", None)
    at, refs = editor.table(fields)
    editor.point(refs[_OPERATOR["inputs"].slot], editor.vector("i", rewrite.inputs))
    editor.point(refs[_OPERATOR["outputs"].slot], editor.vector("i", list(op.outputs)))
    if rewrite.options:
        editor.point(refs[_OPERATOR["builtin_options"].slot], _options_table(editor, rewrite))
    operators = editor.target(model.subgraphs[sg].t, "operators")
    editor.point(operators + 4 + 4 * op.index, at)
    for tensor_index, shape, data in rewrite.weight_edits:
        _edit_weight(model, editor, sg, tensor_index, shape, data)


def _options_table(editor: Editor, rewrite: Rewrite) -> int:
    tdef = SCHEMA.tables[rewrite.options].fields
    fields, vectors = {}, {}
    for name, value in rewrite.fields.items():
        f = tdef[name]
        if f.kind == "vector":
            fields[f.slot] = ("I", None)
            vectors[f.slot] = (f.fmt, value)
        else:
            fields[f.slot] = (f.fmt, value)
    at, refs = editor.table(fields)
    for slot, (fmt, values) in vectors.items():
        editor.point(refs[slot], editor.vector(fmt, values))
    return at


def _edit_weight(model: Model, editor: Editor, sg: int, index: int, shape, data) -> None:
    """Overwrite a constant's shape (same rank) and, when given, its bytes (same size) in place."""
    tensor = model.subgraphs[sg].tensors[index]
    for name in ("shape", "shape_signature"):
        vec = editor.target(tensor.t, name)
        if vec is not None:
            for i, dim in enumerate(shape):
                editor.put(vec + 4 + 4 * i, "i", dim)
    if data is not None:
        span = model.buffers[tensor.buffer].data or model.buffers[tensor.buffer].external
        editor.put_bytes(span.offset, data)


def _update_min_runtime(model: Model, editor: Editor, rewrites: list[dict]) -> None:
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
        public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rewrites]
        doc = {"model": path, "output": None, "dry_run": dry_run, "flex_before": flex_before,
               "flex_after": flex_before - len(rewrites), "rewrites": public, "kept": kept, "verification": None}
        if out is None or dry_run:
            return doc

        def check(candidate: str) -> None:
            if verify is not None and rewrites:
                doc["verification"] = verify(path, candidate)
                if not doc["verification"]["ok"]:
                    raise VerificationFailed(doc)

        write_patched(path, apply(model, rewrites) if rewrites else None, os.fspath(out), check)
    doc["output"] = os.fspath(out)
    return doc


class VerificationFailed(Exception):
    """The patched model did not compute what the original did; nothing was written."""

    def __init__(self, doc: dict):
        super().__init__("verification failed")
        self.doc = doc
