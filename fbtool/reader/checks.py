"""TFLite-level checks of a structurally verified model (cf. LiteRT tflite/core/tools/verifier.cc).

``check_bounds`` guards every index and extent a reader follows: opcode,
tensor, buffer and subgraph indices, data stored outside the flatbuffer. It
always runs. ``check_semantics`` adds what the runtime's VerifyModel checks:
tensors consumed before they are produced, outputs that are constants, inputs
or produced twice, -1 as an output, a tensor both input and output of one op,
constant data sizes against shape x dtype, string buffers, sparsity metadata,
and control flow that recurses into itself. Errors name where they are, e.g.
``subgraph 0 operator 12: input tensor 9999 out of range (87 tensors)``.
"""
from __future__ import annotations

import struct

from ..errors import ModelError
from .model import SCHEMA, TYPE_BITS, Model, dtype_name
from .table import Table

_U32 = struct.Struct("<I").unpack_from
_DENSE = SCHEMA.enums["DimensionType"]["DENSE"]
# Options fields naming subgraphs (schema.fbs): WhileOptions.cond_subgraph_index,
# IfOptions.then_subgraph_index, CallOnceOptions.init_subgraph_index, the StableHLO
# ops' *_subgraph_index(es), and CallOptions.subgraph.
SUBGRAPH_FIELDS = {
    tname: tuple(n for n in t.fields if n.endswith(("subgraph_index", "subgraph_indices"))
                 or (tname, n) == ("CallOptions", "subgraph"))
    for tname, t in SCHEMA.tables.items()
}


def _fail(what: str, where: str):
    raise ModelError(what, where)


def subgraph_refs(options: Table | None) -> list[int]:
    """Subgraph indices a control-flow op's options refer to."""
    if options is None:
        return []
    refs = []
    for name in SUBGRAPH_FIELDS.get(options.tdef.name, ()):
        value = options.get(name, ())
        refs.extend(value if isinstance(value, tuple) else (value,))
    return refs


def check_bounds(model: Model) -> None:
    nbuf, nsub, ncodes, size = len(model.buffers), len(model.subgraphs), len(model.operator_codes), model.size
    for b in model.buffers:
        if b.external and (b.external.size > size or b.external.offset > size - b.external.size):
            _fail(f"data at offset {b.external.offset} size {b.external.size} lies outside the {size}-byte file",
                  f"buffer {b.index}")
    for name, bi in model.metadata:
        if bi >= nbuf:
            _fail(f"buffer {bi} out of range ({nbuf} buffers)", f"metadata {name!r}")
    for sg in model.subgraphs:
        n = len(sg.tensors)
        where = f"subgraph {sg.index}"
        for side in ("inputs", "outputs"):
            for ti in getattr(sg, side):
                if not 0 <= ti < n:
                    _fail(f"{side[:-1]} tensor {ti} out of range ({n} tensors)", where)
        for t in sg.tensors:
            if t.buffer >= nbuf:
                _fail(f"buffer {t.buffer} out of range ({nbuf} buffers)", f"{where} tensor {t.index}")
        for op in sg.operators:
            at = f"{where} operator {op.index}"
            if op.opcode is None:
                _fail(f"opcode index {op.opcode_index} out of range ({ncodes} operator codes)", at)
            for side, low in (("inputs", -1), ("outputs", 0), ("intermediates", 0)):
                for ti in getattr(op, side):
                    if not low <= ti < n:
                        _fail(f"{side[:-1]} tensor {ti} out of range ({n} tensors)", at)
            for si in subgraph_refs(op.options):
                if not 0 <= si < nsub:
                    _fail(f"{op.opcode.name} refers to subgraph {si} ({nsub} subgraphs)", at)
            span = op.custom_options
            if span and (span.size > size or span.offset > size - span.size):
                _fail(f"custom options at offset {span.offset} size {span.size} lie outside the file", at)
    for s in model.signatures:
        where = f"signature {s.key!r}"
        if s.subgraph >= nsub:
            _fail(f"subgraph {s.subgraph} out of range ({nsub} subgraphs)", where)
        n = len(model.subgraphs[s.subgraph].tensors)
        for name, ti in {**s.inputs, **s.outputs}.items():
            if ti >= n:
                _fail(f"tensor {ti} of {name!r} out of range ({n} tensors)", where)


def check_semantics(model: Model) -> None:
    if model.version != 3:
        _fail(f"schema version {model.version}, only version 3 is readable", "model")
    if not model.subgraphs:
        _fail("no subgraphs", "model")
    for oc in model.operator_codes:
        if oc.name == "CUSTOM":
            _fail("CUSTOM operator code without a custom_code", f"operator code {oc.index}")
    for sg in model.subgraphs:
        _check_tensors(model, sg)
        _check_dataflow(model, sg)
    _check_recursion(model)


def _check_dataflow(model: Model, sg) -> None:
    constant = {t.index for t in sg.tensors if model.is_constant(t)}
    # a tensor with no elements holds no value to produce: tf.signal.frame's and Keras MelSpectrogram's
    # int32[0] shape operands have empty buffers and no producer, and the runtime runs them
    empty = {t.index for t in sg.tensors if 0 in t.shape}
    variable = {t.index for t in sg.tensors if t.is_variable} - constant
    sg_inputs = set(sg.inputs)
    produced: set[int] = set()
    for op in sg.operators:
        at = f"subgraph {sg.index} operator {op.index} ({op.opcode.name})"
        ins = op.inputs
        for ti in ins:
            if ti != -1 and ti not in constant and ti not in variable and ti not in sg_inputs and ti not in produced \
                    and ti not in empty:
                _fail(f"input tensor {ti} is used before any operator produces it", at)
        for ti in op.outputs:
            if ti in constant:
                _fail(f"output tensor {ti} is a constant", at)
            if ti in variable:
                _fail(f"output tensor {ti} is a variable", at)
            if ti in sg_inputs:
                _fail(f"output tensor {ti} is a subgraph input", at)
            if ti in produced:
                _fail(f"output tensor {ti} is already produced by another operator (cycle)", at)
            if ti in ins:
                _fail(f"tensor {ti} is both an input and an output", at)
            produced.add(ti)


def _check_tensors(model: Model, sg) -> None:
    for t in sg.tensors:
        where = f"subgraph {sg.index} tensor {t.index} ({t.name!r})"
        elements = 1
        for d in t.shape:
            if d < -1:
                _fail(f"invalid dimension {d} in shape {list(t.shape)}", where)
            if d > 1:
                elements *= d
                if elements > 0x7FFFFFFF:
                    _fail(f"shape {list(t.shape)} overflows 32-bit element count", where)
        if t.sparsity is not None:
            _check_sparsity(t, where)
        if not t.buffer:
            continue
        buf = model.buffers[t.buffer]
        if not buf.size:
            continue
        if t.type_code == SCHEMA.enums["TensorType"]["STRING"]:
            _check_string_buffer(model, buf, where)
            continue
        bits = TYPE_BITS.get(SCHEMA.enum_name("TensorType", t.type_code) or "")
        if bits is None:
            _fail(f"constant data of type {dtype_name(t.type_code)} is not allowed", where)
        if t.sparsity is not None:
            continue  # sparse data is counted by _check_sparsity's rules, not by shape
        need = (t.num_elements() * bits + 7) // 8 if all(d >= 0 for d in t.shape) else -1
        if need != buf.size:
            _fail(f"shape {list(t.shape)} x {t.dtype} needs {need} bytes, buffer {t.buffer} holds {buf.size}", where)


def _check_string_buffer(model: Model, buf, where: str) -> None:
    # Layout (tflite/string_util.h): count, count+1 offsets, then the bytes.
    size = buf.size
    head = model.buffer_bytes(buf.index, 8)
    if size < 4:
        _fail("string tensor buffer shorter than its header", where)
    count = _U32(head, 0)[0]
    if (count + 2) * 4 > size:
        _fail(f"string tensor claims {count} strings but holds {size} bytes", where)
    span = buf.data or buf.external
    offsets = struct.unpack_from(f"<{count + 1}I", model.buf, span.offset + 4)
    if offsets[0] != (count + 2) * 4 or offsets[-1] != size or any(a > b for a, b in zip(offsets, offsets[1:])):
        _fail("string tensor offsets are not increasing within the buffer", where)


def _check_sparsity(t, where: str) -> None:
    s = t.sparsity
    order = s.get("traversal_order", ())
    dims = s.get("dim_metadata", [])
    rank = len(t.shape)
    if len(order) < rank or len(dims) != len(order):
        _fail("sparsity traversal order and dimension metadata do not match the rank", where)
    block_map = s.get("block_map", ())
    block_rank = len(order) - rank
    if len(block_map) != block_rank or sorted(order[:rank]) != list(range(rank)) \
            or sorted(order[rank:]) != list(range(rank, len(order))):
        _fail("sparsity traversal order is not a permutation", where)
    sizes = list(t.shape) + [0] * block_rank
    for i in range(block_rank):
        block = dims[rank + i].get("dense_size")
        if block <= 0 or not 0 <= block_map[i] < rank:
            _fail("sparsity block size or block map invalid", where)
        sizes[order[rank + i]] = block
        sizes[block_map[i]] //= block
    count = 1
    for level, dim in zip(order, dims):
        if dim.get("format") == _DENSE:
            if dim.get("dense_size") != sizes[level]:
                _fail("sparsity dense size disagrees with the shape", where)
            count *= dim.get("dense_size")
            continue
        seg, idx = dim.get("array_segments"), dim.get("array_indices")
        seg = seg.ints("values") if seg else None
        idx = idx.ints("values") if idx else None
        if seg is None or idx is None or len(seg) != count + 1 or seg[-1] != len(idx) \
                or any(a < 0 or a > b for a, b in zip(seg, seg[1:])) or any(not 0 <= i < sizes[level] for i in idx):
            _fail("sparse dimension segments or indices out of range", where)
        count = len(idx)


def _check_recursion(model: Model) -> None:
    calls = {sg.index: {si for op in sg.operators for si in subgraph_refs(op.options)} for sg in model.subgraphs}
    state: dict[int, int] = {}  # 1 = on the current path, 2 = done
    for start in calls:
        stack = [(start, iter(calls[start]))]
        if state.get(start):
            continue
        state[start] = 1
        while stack:
            node, children = stack[-1]
            nxt = next(children, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                _fail(f"control flow recurses: subgraph {node} calls subgraph {nxt} which is still running", "model")
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(calls[nxt])))
