"""Turn an :class:`~.edit.Edit` into editor operations: new copies of the changed tables and of
their parents up to a new root Model, in-place scalar writes where a field already exists.

Op codes are compacted: the codes no op uses any more (the rewritten Flex ones) are left out,
since a runtime resolves every listed code and loads the Flex delegate for any Flex one; new
builtin codes reuse an identical existing entry when there is one.
"""
from __future__ import annotations

import struct

from ..reader.model import SCHEMA, Model
from .edit import Edit, NewTensor, Op
from .writer import Editor, Orig, SharedBytes, data_span, table_span, vector_span

_CODES = SCHEMA.enums["BuiltinOperator"]
_TYPES = SCHEMA.enums["TensorType"]
_UNIONS = {union: {name: code for code, name in SCHEMA.unions[union].items()}
           for union in ("BuiltinOptions", "BuiltinOptions2")}
PLACEHOLDER_FOR_GREATER_OP_CODES = 127


def _entries(ed: Editor, vec: Orig | None) -> list[Orig]:
    """Where each offset of an original vector of tables points."""
    if vec is None:
        return []
    buf = ed.model.buf
    (n,) = struct.unpack_from("<I", buf, vec)
    return [Orig(vec + 4 + 4 * i + v) for i, v in enumerate(struct.unpack_from(f"<{n}I", buf, vec + 4))]


class _Codes:
    """The new operator_codes list: original codes still used, then new builtin ones."""

    def __init__(self, model: Model, edit: Edit):
        used, wanted = set(), []
        for sg in range(len(model.subgraphs)):
            for op in (edit.subgraphs[sg].flat() if sg in edit.subgraphs else model.subgraphs[sg].operators):
                code = op.opcode if isinstance(op, Op) else op.opcode_index
                if isinstance(code, tuple):
                    wanted.append(code)
                else:
                    used.add(code)
        existing = {(c.name, c.version): c.index for c in model.operator_codes if c.kind == "builtin"}
        for key in wanted:
            if key in existing:
                used.add(existing[key])
        self.kept = sorted(used)
        self.index = {old: new for new, old in enumerate(self.kept)}
        self.added = list(dict.fromkeys(k for k in wanted if k not in existing))
        for key in wanted:
            self.index[key] = self.index[existing[key]] if key in existing else len(self.kept) + self.added.index(key)

    def identity(self, model: Model) -> bool:
        return not self.added and self.kept == list(range(len(model.operator_codes)))


def emit(model: Model, edit: Edit) -> Editor:
    ed = Editor(model)
    codes = _Codes(model, edit)
    for sg, tensor, shape, data in edit.weights:
        _edit_weight(ed, sg, tensor, shape, data)
    n_buffers = len(model.buffers)
    new_buffers = [t.data for g in edit.subgraphs.values() for t in g.tensors if t.data is not None]

    root = model.root
    changes = {"subgraphs": None}
    if not codes.identity(model):
        changes["operator_codes"] = None
    if new_buffers:
        changes["buffers"] = None
    ed.root, refs = ed.clone(root, changes)

    subgraph_tables = _entries(ed, ed.target(root, "subgraphs"))
    targets = list(subgraph_tables)
    plans = {}
    for sg in range(len(model.subgraphs)):
        plans[sg] = _operator_entries(ed, model, edit, codes, sg)
        g = edit.subgraphs.get(sg)
        if plans[sg] is not None or (g and g.tensors):
            targets[sg] = None
    vec = ed.offsets_vector(targets)
    ed.point(refs["subgraphs"], vec)
    next_buffer = n_buffers
    for sg, target in enumerate(targets):
        if target is None:
            ed.point(vec + 4 + 4 * sg, _subgraph(ed, model, edit, sg, plans[sg], next_buffer, codes))
            g = edit.subgraphs.get(sg)
            next_buffer += sum(t.data is not None for t in g.tensors) if g else 0

    if "operator_codes" in changes:
        kept = _entries(ed, ed.target(root, "operator_codes"))
        vec = ed.offsets_vector([kept[i] for i in codes.kept] + [None] * len(codes.added))
        ed.point(refs["operator_codes"], vec)
        for i, (builtin, version) in enumerate(codes.added):
            ed.point(vec + 4 + 4 * (len(codes.kept) + i), _opcode(ed, builtin, version))
    if new_buffers:
        vec = ed.offsets_vector(_entries(ed, ed.target(root, "buffers")) + [None] * len(new_buffers))
        ed.point(refs["buffers"], vec)
        for i, data in enumerate(new_buffers):
            at, brefs = ed.new_table("Buffer", {"data": None})
            ed.point(vec + 4 + 4 * (n_buffers + i), at)
            ed.point(brefs["data"], ed.bytes_vector(data))
    return ed


def _operator_entries(ed: Editor, model: Model, edit: Edit, codes: _Codes, sg: int) -> list | None:
    """Per op of the patched subgraph: an :class:`Orig` table, or the :class:`Op` to write.
    None when the operators vector can stay as it is."""
    originals = model.subgraphs[sg].operators
    ops = edit.subgraphs[sg].flat() if sg in edit.subgraphs else None
    entries, same = [], ops is None or len(ops) == len(originals)
    for i, op in enumerate(ops if ops is not None else originals):
        if not isinstance(op, Op):     # an untouched subgraph: only its op codes may move
            op = Op(op.index, op.opcode_index, op.inputs, op.outputs)
        entry = _in_place(ed, model, sg, op, codes.index[op.opcode])
        entries.append(entry if entry is not None else op)
        same = same and entry is not None and op.original == i
    return None if same else entries


def _in_place(ed: Editor, model: Model, sg: int, op: Op, opcode_index: int) -> Orig | None:
    """The original table, made right by an in-place write of its opcode index, when the op keeps
    its inputs, outputs and options; None when it needs a new table. A Flex op that becomes a
    builtin always needs one: a builtin with a custom_options field, even an empty one, makes the
    runtime log "Found builtin operator X with custom options" (interpreter_builder.cc)."""
    if op.original is None or op.options is not None:
        return None
    orig = model.subgraphs[sg].operators[op.original]
    if op.inputs != orig.inputs or op.outputs != orig.outputs:
        return None
    if op.builtin and (orig.t.has("custom_options") or orig.t.get("large_custom_options_size")):
        return None
    if opcode_index != orig.opcode_index:
        at = orig.t.field_pos("opcode_index")
        if at is None:
            return None
        try:
            ed.put(at, "I", opcode_index, table_span(orig.t))
        except SharedBytes:     # another op points at this table, or something overlaps it
            return None
    return Orig(orig.t.pos)


def _subgraph(ed: Editor, model: Model, edit: Edit, sg: int, entries, next_buffer: int, codes: _Codes) -> int:
    s = model.subgraphs[sg]
    g = edit.graph(sg)
    changes = {"operators": None}
    if g.tensors:
        changes["tensors"] = None
    at, refs = ed.clone(s.t, changes)
    entries = _entries(ed, ed.target(s.t, "operators")) if entries is None else entries   # [] when all went
    vec = ed.offsets_vector([e if isinstance(e, Orig) else None for e in entries])
    ed.point(refs["operators"], vec)
    for i, e in enumerate(entries):
        if not isinstance(e, Orig):
            ed.point(vec + 4 + 4 * i, _operator(ed, model, sg, e, codes.index[e.opcode]))
    if g.tensors:
        vec = ed.offsets_vector(_entries(ed, ed.target(s.t, "tensors")) + [None] * len(g.tensors))
        ed.point(refs["tensors"], vec)
        for i, t in enumerate(g.tensors):
            buffer = 0
            if t.data is not None:
                buffer, next_buffer = next_buffer, next_buffer + 1
            ed.point(vec + 4 + 4 * (g.n_tensors + i), _tensor(ed, t, buffer))
    return at


def _operator(ed: Editor, model: Model, sg: int, op: Op, opcode_index: int) -> int:
    if op.builtin is None:        # an original op with new inputs or outputs
        orig = model.subgraphs[sg].operators[op.original]
        if orig.t.get("large_custom_options_size"):
            raise ValueError("fbtool cannot move an op whose custom options are stored outside the flatbuffer")
        at, refs = ed.clone(orig.t, {"opcode_index": opcode_index, "inputs": None, "outputs": None})
    else:
        changes = {"opcode_index": opcode_index, "inputs": None, "outputs": None}
        union = None
        if op.options:
            union = next(u for u, names in _UNIONS.items() if op.options[0] in names)
            suffix = "" if union == "BuiltinOptions" else "_2"
            changes[f"builtin_options{suffix}_type"] = _UNIONS[union][op.options[0]]
            changes[f"builtin_options{suffix}"] = None
        at, refs = ed.new_table("Operator", changes)
        if union:
            key = "builtin_options" if union == "BuiltinOptions" else "builtin_options_2"
            ed.point(refs[key], _options(ed, *op.options))
    orig = model.subgraphs[sg].operators[op.original] if op.original is not None else None
    for side in ("inputs", "outputs"):    # an unchanged operand list is the original vector, pointed at
        same = orig is not None and getattr(orig, side) == getattr(op, side)
        target = ed.target(orig.t, side) if same else None
        ed.point(refs[side], target if target is not None else ed.vector("i", getattr(op, side)))
    return at


def _options(ed: Editor, table: str, values: dict) -> int:
    tdef = SCHEMA.tables[table].fields
    changes, vectors = {}, {}
    for name, value in values.items():
        if tdef[name].kind == "vector":
            changes[name], vectors[name] = None, value
        else:
            changes[name] = value
    at, refs = ed.new_table(table, changes)
    for name, values in vectors.items():
        ed.point(refs[name], ed.vector(tdef[name].fmt, values))
    return at


def _tensor(ed: Editor, t: NewTensor, buffer: int) -> int:
    """A new tensor; a dynamic dimension (-1) is 1 in ``shape`` and -1 in ``shape_signature``, as
    the converter writes them."""
    fields = {"shape": None, "type": _TYPES[t.dtype.upper()], "buffer": buffer, "name": None}
    if any(d < 0 for d in t.shape):
        fields["shape_signature"] = None
    if t.quantization is not None:
        fields["quantization"] = None
    at, refs = ed.new_table("Tensor", fields)
    if t.quantization is not None:
        scales, zeros, axis = t.quantization
        q, qrefs = ed.new_table("QuantizationParameters", {"scale": None, "zero_point": None,
                                                           "quantized_dimension": axis})
        ed.point(qrefs["scale"], ed.vector("f", scales))
        ed.point(qrefs["zero_point"], ed.vector("q", zeros))
        ed.point(refs["quantization"], q)
    ed.point(refs["shape"], ed.vector("i", [max(d, 1) for d in t.shape]))
    if "shape_signature" in refs:
        ed.point(refs["shape_signature"], ed.vector("i", t.shape))
    ed.point(refs["name"], ed.string(t.name))
    return at


def _opcode(ed: Editor, builtin: str, version: int) -> int:
    code = _CODES[builtin]
    at, _ = ed.new_table("OperatorCode", {"deprecated_builtin_code": min(code, PLACEHOLDER_FOR_GREATER_OP_CODES),
                                          "builtin_code": code, "version": version})
    return at


def _edit_weight(ed: Editor, sg: int, index: int, shape, data) -> None:
    """A re-laid-out weight, in place: the rules checked that only this tensor covers these bytes."""
    tensor = ed.model.subgraphs[sg].tensors[index]
    for name in ("shape", "shape_signature"):
        vec = ed.target(tensor.t, name)
        if vec is not None:
            ed.put_bytes(vec + 4, struct.pack(f"<{len(shape)}i", *shape), vector_span(ed.model.buf, vec, 4))
    if data is not None:
        buf = ed.model.buffers[tensor.buffer]
        ed.put_bytes((buf.data or buf.external).offset, data, data_span(buf.data or buf.external, not buf.data))
