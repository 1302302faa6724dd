"""TFLite-level checks of a structurally verified model, held to what the runtime does.

``check_bounds`` guards every index and extent a reader follows: opcode, tensor, buffer and
subgraph indices, data stored outside the flatbuffer, signatures. It always runs.
``check_semantics`` judges what the runtime would do with the model. Each check was held against
ai-edge-litert 2.3 and TF 2.18.1 running a model crafted to break just that check, and against
LiteRT's sources (google-ai-edge/LiteRT @ 19a1585ff, tflite/core/...): TFLite's own
``VerifyModel`` (tools/verifier.cc) is never run by either Python runtime, so it is no guide.

- **errors** (the model is refused): what the runtime refuses (schema version, no subgraphs, a
  CUSTOM code without custom_code, a negative or 64-bit-overflowing dimension in a numeric
  tensor's shape, an unknown tensor type, constant data smaller than its shape, an input no op
  produces, a tensor both input and output of a builtin with options, WHILE's cond = body) and
  what makes running or reading it unsafe (it crashed one runtime or the other: sparsity indices,
  string buffers, an input read before its producer runs, an output that is a constant, -1 as an
  output, control flow that recurses);
- **warnings** (``Model.warnings``, shown by inspect, deniable by audit policies, never fatal):
  what both runtimes load and run (data larger than its shape needs, an element count past 2^31,
  a tensor produced twice, an output that is a variable or an unread subgraph input, ...).

Errors name where they are, e.g. ``subgraph 0 operator 12: input tensor 9999 out of range (87 tensors)``.
"""
from __future__ import annotations

import struct

from ..errors import ModelError
from .model import CUSTOM as CUSTOM_CODE
from .model import SCHEMA, TYPE_BITS, Model
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
    """Raise :class:`ModelError` for what the runtime refuses or what is unsafe; append to
    ``model.warnings`` what it tolerates (see the module docstring)."""
    if model.version != 3:      # interpreter_builder.cc: "Model provided is schema version ..."
        _fail(f"schema version {model.version}, only version 3 is readable", "model")
    if not model.subgraphs:     # interpreter_builder.cc: "No subgraph in the model."
        _fail("no subgraphs", "model")
    for oc in model.operator_codes:
        if oc.code == CUSTOM_CODE and oc.custom_code is None:   # op_resolver.cc resolves every code
            _fail("CUSTOM operator code without a custom_code", f"operator code {oc.index}")
        if oc.code == CUSTOM_CODE and oc.custom_code == "":
            _warn(model, "CUSTOM operator code with an empty custom_code: no kernel can be registered for it",
                  f"operator code {oc.index}")
    for name, bi in model.raw_metadata:
        if bi >= len(model.buffers):    # model_builder_base.h ReadAllMetadata skips such an entry
            _warn(model, f"buffer {bi} out of range ({len(model.buffers)} buffers): the entry is ignored",
                  f"metadata {name!r}")
    for sg in model.subgraphs:
        _check_tensors(model, sg)
        _check_dataflow(model, sg)
    _check_control_flow(model)


def _warn(model: Model, what: str, where: str) -> None:
    model.warnings.append(f"{where}: {what}")


def _check_dataflow(model: Model, sg) -> None:
    constant = {t.index for t in sg.tensors if model.is_constant(t)}
    variable = {t.index for t in sg.tensors if t.is_variable} - constant
    sg_inputs = set(sg.inputs)
    produced_by: dict[int, int] = {}
    for op in sg.operators:
        for ti in op.outputs:
            produced_by.setdefault(ti, op.index)
    produced: set[int] = set()
    read: set[int] = set()
    for op in sg.operators:
        at = f"subgraph {sg.index} operator {op.index} ({op.opcode.name})"
        ins = op.inputs
        both = set(ins) & set(op.outputs) - {-1}
        if both:    # subgraph.cc CheckInputAndOutputForOverlap, only for ops with builtin options (CVE-2020-15210)
            what = f"tensor {min(both)} is both an input and an output"
            if op.opcode.kind == "builtin" and op.options is not None:
                _fail(what, at)
            _warn(model, what, at)
        for position, ti in enumerate(ins):
            if ti == -1 or ti in constant or ti in variable or ti in sg_inputs or ti in produced or ti in both:
                continue
            t = sg.tensors[ti]
            if 0 in t.shape:     # no elements, nothing to produce: tf.signal.frame's int32[0] operands
                continue
            if ti in produced_by:    # op order is run order: TF 2.18.1 crashed reading it here
                _fail(f"input tensor {ti} is read before operator {produced_by[ti]} produces it", at)
            if op.opcode.name == "RESHAPE" and position == 1 and len(t.shape) != 1 and TYPE_BITS.get(t.dtype.upper()):
                # subgraph.cc InvokeImpl lets RESHAPE's shape operand lack data: its shape says it all
                _warn(model, f"input tensor {ti} is never produced (RESHAPE's shape operand: the runtime allows it)", at)
                continue
            # subgraph.cc InvokeImpl: "Input tensor N lacks data"; a string one crashed TF 2.18.1
            _fail(f"input tensor {ti} is used before any operator produces it", at)
        read.update(ins)
        for ti in op.outputs:
            if ti == -1:    # CheckTensorIndices accepts it and kernels crash on it (CVE-2020-15211)
                _fail("output tensor -1 (an omitted optional tensor) cannot be written", at)
            if ti in constant:   # the kernel writes into the read-only file mapping: SIGSEGV in both runtimes
                _fail(f"output tensor {ti} is a constant", at)
            if ti in variable:
                _warn(model, f"output tensor {ti} is a variable", at)
            if ti in sg_inputs:
                if ti in read:   # an op already read the input it overwrites: TF 2.18.1 crashed
                    _fail(f"output tensor {ti} is a subgraph input that an earlier operator reads", at)
                _warn(model, f"output tensor {ti} is a subgraph input", at)
            if ti in produced:
                _warn(model, f"output tensor {ti} is also produced by operator {produced_by[ti]}", at)
            produced.add(ti)


def _check_tensors(model: Model, sg) -> None:
    for t in sg.tensors:
        where = f"subgraph {sg.index} tensor {t.index} ({t.name!r})"
        type_name = SCHEMA.enum_name("TensorType", t.type_code)
        if type_name is None:    # flatbuffer_conversions.cc ConvertTensorType, for every tensor
            _fail(f"unsupported tensor type {t.type_code}", where)
        bits = TYPE_BITS.get(type_name)
        elements = 1
        for d in t.shape:
            if d < 0 and bits:   # util.cc BytesRequired: "number of elements overflowed"
                _fail(f"negative dimension {d} in shape {list(t.shape)} (-1 belongs in shape_signature)", where)
            if d < 0:
                _warn(model, f"negative dimension {d} in shape {list(t.shape)} of a {t.dtype} tensor", where)
            if d > 1:
                elements *= d
        if elements >= 1 << 63:      # util.cc MultiplyAndCheckOverflow
            _fail(f"shape {list(t.shape)} overflows a 64-bit element count", where)
        if elements > 0x7FFFFFFF:
            _warn(model, f"shape {list(t.shape)} has more than 2^31 elements", where)
        if t.sparsity is not None:
            _check_sparsity(t, where)
        if not t.buffer:
            continue
        buf = model.buffers[t.buffer]
        if buf.data is None and buf.external is None:
            continue
        if type_name == "STRING":
            _check_string_buffer(model, buf, where)
            continue
        if bits is None:   # subgraph.cc SetTensorParametersReadOnly skips the size of resource/variant data
            _warn(model, f"constant data of type {t.dtype}", where)
            continue
        if t.sparsity is not None:
            continue  # sparse data is counted by _check_sparsity's rules, not by shape
        need = (elements * bits + 7) // 8 if all(d >= 0 for d in t.shape) else -1
        if 0 in t.shape:
            need = 0
        if buf.size < need:      # subgraph.cc SetTensorParametersReadOnly: required_bytes <= bytes
            _fail(f"shape {list(t.shape)} x {t.dtype} needs {need} bytes, buffer {t.buffer} holds {buf.size}", where)
        if buf.size > need:
            _warn(model, f"shape {list(t.shape)} x {t.dtype} needs {need} bytes, buffer {t.buffer} holds {buf.size}",
                  where)


def _check_string_buffer(model: Model, buf, where: str) -> None:
    """Layout (tflite/string_util.h): count, count+1 offsets, then the bytes. Nothing in the runtime
    checks it at load; TF 2.18.1's GATHER read past a short buffer or an offset past its end (SIGBUS)."""
    size = buf.size
    head = model.buffer_bytes(buf.index, 8)
    if size < 4:
        _fail("string tensor buffer shorter than its header", where)
    count = _U32(head, 0)[0]
    if (count + 2) * 4 > size:
        _fail(f"string tensor claims {count} strings but holds {size} bytes", where)
    span = buf.data or buf.external
    offsets = struct.unpack_from(f"<{count + 1}I", model.buf, span.offset + 4)
    if offsets[-1] > size or any(a > b for a, b in zip(offsets, offsets[1:])):
        _fail("string tensor offsets are not increasing within the buffer", where)
    if offsets[0] != (count + 2) * 4 or offsets[-1] != size:    # strings over the header, or unused bytes
        _warn(model, f"string tensor offsets run from {offsets[0]} to {offsets[-1]}, not from the end of its "
                     f"{(count + 2) * 4}-byte header to the end of its {size} bytes", where)


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


def _check_control_flow(model: Model) -> None:
    """WHILE with cond = body (while.cc refuses it, CVE-2021-29591), and subgraphs that call
    themselves through any chain: IF/WHILE Prepare recurse into their subgraphs without a guard
    (if.cc, while.cc), a SIGSEGV in both runtimes."""
    calls = {}
    for sg in model.subgraphs:
        calls[sg.index] = set()
        for op in sg.operators:
            refs = subgraph_refs(op.options)
            calls[sg.index].update(refs)
            if op.opcode.name == "WHILE" and len(refs) == 2 and refs[0] == refs[1]:
                _fail(f"WHILE's condition and body are the same subgraph {refs[0]}",
                      f"subgraph {sg.index} operator {op.index}")
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
