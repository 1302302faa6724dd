"""Per-op rules for Flex ops whose builtin needs options, fewer inputs or re-laid-out weights.

Each rule reads the decoded TF attributes and constant operands and says what the builtin op
looks like (:class:`Rewrite`). The catalog has already checked dtypes, attributes and
constant operands before a rule runs. Facts from tflite/converter/transforms/
legalize_patterns.td, prepare_tf.cc and the kernels' option structs (schema.fbs).
"""
from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..reader.model import SCHEMA, coverage_of
from .edit import Edit, NewTensor, Op
from .writer import data_span, vector_span

TENSOR_TYPE = SCHEMA.enums["TensorType"]
PADDING = SCHEMA.enums["Padding"]
ACTIVATION = SCHEMA.enums["ActivationFunctionType"]
NUMPY = {"float32": np.float32, "int32": np.int32, "int64": np.int64}


def _target(table, name: str) -> int | None:
    """Where an offset field of an original table points, or None when absent."""
    at = table.field_pos(name)
    return at + int.from_bytes(table.buf[at:at + 4], "little") if at is not None else None


class NoRule(Exception):
    """The op cannot be rewritten here; the message says why."""


@dataclass
class Rewrite:
    inputs: list                                   # tensor indices, -1, or NewTensor constants
    options: str | None = None                     # builtin options table name
    fields: dict = field(default_factory=dict)     # option field -> value (lists for vector fields)
    weight_edits: list = field(default_factory=list)   # (tensor index, new shape, new bytes or None)
    builtin: str | None = None                     # when the rule picks the builtin, not the catalog
    version: int | None = None
    outputs: list | None = None
    bypass: bool = False           # delete a pass-through op (Identity and kin); see Edit.bypass
    before: list = field(default_factory=list)   # (builtin, version, inputs, outputs, options) run first

    def apply(self, edit: Edit, sg: int, index: int, builtin: str, version: int) -> list[str]:
        """Make the change; the builtins it adds besides ``builtin`` ("CAST v1"), for the record."""
        if self.bypass:
            return [f"{op.builtin} v{op.opcode[1]}" for op in edit.bypass(sg, index, lambda src, out: _copy(edit, sg, src, out))]
        for tensor, shape, data in self.weight_edits:
            edit.edit_weight(sg, tensor, shape, data)
        # readers rewired by earlier rewrites (a removed Identity) read the new tensor
        rewired = dict(zip(edit.model.subgraphs[sg].operators[index].inputs, edit.op(sg, index).inputs))
        added: dict[int, int] = {}

        def tensor(t) -> int:
            if isinstance(t, NewTensor):
                if id(t) not in added:
                    added[id(t)] = edit.add_tensor(sg, t)
                return added[id(t)]
            return rewired.get(t, t)
        for b, v, ins, outs, options in self.before:
            edit.insert_before(sg, index, Op(None, (b, v), tuple(map(tensor, ins)), tuple(map(tensor, outs)), options))
        outputs = None if self.outputs is None else list(map(tensor, self.outputs))
        edit.replace(sg, index, builtin, version, list(map(tensor, self.inputs)), outputs,
                     (self.options, self.fields) if self.options else None)
        return [f"{b} v{v}" for b, v, *_ in self.before]


@dataclass
class _Usage:
    readers: list          # per subgraph: Counter of tensor index -> ops reading it
    buffers: Counter       # buffer index -> tensors using it


_USAGE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _usage(model) -> _Usage:
    """Who uses what, counted once per model (a per-weight count would be quadratic)."""
    if model not in _USAGE:
        buffers = Counter(t.buffer for sg in model.subgraphs for t in sg.tensors)
        readers = [Counter(i for op in sg.operators for i in set(op.inputs)) for sg in model.subgraphs]
        _USAGE[model] = _Usage(readers, buffers)
    return _USAGE[model]


@dataclass
class Context:
    model: object
    subgraph: int
    op: object
    attrs: dict

    @property
    def graph(self):
        return self.model.subgraphs[self.subgraph]

    def tensor(self, position: int):
        return self.graph.tensors[self.op.inputs[position]]

    def array(self, position: int) -> np.ndarray:
        """A constant operand as an array of its shape."""
        t = self.tensor(position)
        raw = self.model.buffer_bytes(t.buffer)
        if t.dtype not in NUMPY or not raw:
            raise NoRule(f"input {position} is not a constant int32/int64/float32 tensor")
        return np.frombuffer(raw, NUMPY[t.dtype]).reshape(t.shape)

    def constant(self, position: int) -> tuple:
        return tuple(self.array(position).ravel().tolist())

    def sole_user(self, position: int) -> bool:
        """Whether a weight may be re-laid out in place: this op alone reads the tensor, no other
        tensor uses its buffer, and nothing else covers any byte of its shape vectors or its data:
        FlatBuffers lets them be shared, or overlap another object (a bias inside a filter's bytes)."""
        ti = self.op.inputs[position]
        t = self.graph.tensors[ti]
        use = _usage(self.model)
        if use.readers[self.subgraph][ti] != 1 or use.buffers[t.buffer] != 1 or ti in self.graph.outputs:
            return False
        coverage, buf = coverage_of(self.model), self.model.buffers[t.buffer]
        spans = [vector_span(t.t.buf, vec, 4) for n in ("shape", "shape_signature")
                 if (vec := _target(t.t, n)) is not None]
        spans.append(data_span(buf.data or buf.external, not buf.data))
        return all(coverage.exclusive(*span) for span in spans)

    def relaid(self, position: int, array: np.ndarray, suffix: str) -> tuple[object, list]:
        """A weight with a new layout: edited in place when this op is its sole user (same size),
        else a new constant. Returns (input entry, weight edits)."""
        ti = self.op.inputs[position]
        data = np.ascontiguousarray(array).tobytes()
        if self.sole_user(position):
            return ti, [(ti, array.shape, data)]
        t = self.graph.tensors[ti]
        return NewTensor(f"{t.name}/{suffix}", t.dtype, array.shape, data), []

    def zero_bias(self, channels: int) -> NewTensor:
        name = self.graph.tensors[self.op.outputs[0]].name
        return NewTensor(f"{name}/bias", "float32", (channels,), bytes(4 * channels))


def _dtype(name: str) -> int:
    return TENSOR_TYPE[name.upper()]


def _same(options: str, **fields):
    """A rule that keeps the op's inputs and sets options from attrs: field -> attr name or callable."""
    def rule(ctx: Context) -> Rewrite:
        return Rewrite(list(ctx.op.inputs), options, {
            k: v(ctx.attrs) if callable(v) else ctx.attrs.get(v, 0) for k, v in fields.items()})
    return rule


def _pool(ctx: Context) -> Rewrite:
    a = ctx.attrs
    return Rewrite(list(ctx.op.inputs), "Pool2DOptions", {
        "padding": PADDING[a["padding"]], "stride_h": a["strides"][1], "stride_w": a["strides"][2],
        "filter_height": a["ksize"][1], "filter_width": a["ksize"][2]})


def _concat(ctx: Context) -> Rewrite:
    (axis,) = ctx.constant(len(ctx.op.inputs) - 1)
    return Rewrite(list(ctx.op.inputs[:-1]), "ConcatenationOptions", {"axis": axis})


def _gather(ctx: Context) -> Rewrite:
    (axis,) = ctx.constant(2)
    return Rewrite(list(ctx.op.inputs[:2]), "GatherOptions",
                   {"axis": axis, "batch_dims": ctx.attrs.get("batch_dims", 0)})


def _ones_like(ctx: Context) -> Rewrite:
    """OnesLike(x) -> FILL(SHAPE(x), 1), as TF's own lowering (lower_tf.td)."""
    t = ctx.tensor(0)
    if t.dtype not in NUMPY:
        raise NoRule(f"OnesLike of {t.dtype} is not rewritten")
    name = ctx.graph.tensors[ctx.op.outputs[0]].name
    shape = NewTensor(f"{name}/shape", "int32", (len(t.shape),))
    one = NewTensor(f"{name}/one", t.dtype, (), np.ones((), NUMPY[t.dtype]).tobytes())
    return Rewrite([shape, one], builtin="FILL", version=1,
                   before=[("SHAPE", 1, [ctx.op.inputs[0]], [shape], ("ShapeOptions", {"out_type": _dtype("int32")}))])


def _split_v(ctx: Context) -> Rewrite:
    return Rewrite(list(ctx.op.inputs), "SplitVOptions", {"num_splits": ctx.attrs["num_split"]})


def _remove(ctx: Context) -> Rewrite:
    """Identity-like ops disappear: readers of each output read the input instead; a model output
    keeps its tensor (and name) by being written by the input's producer, or by a copy
    (:meth:`.edit.Edit.bypass`)."""
    if len(ctx.op.inputs) < len(ctx.op.outputs):
        raise NoRule(f"{len(ctx.op.outputs)} outputs from {len(ctx.op.inputs)} inputs: not a pass-through")
    return Rewrite([], bypass=True)


COPYABLE = ("float32", "int32", "int64", "int16", "int8", "uint8", "bool", "float16")


def _copy(edit: Edit, sg: int, src: int, out: int) -> Op:
    """A pinned tensor that must stay a tensor of its own: a CAST to the same type, which copies."""
    dtype = edit.model.subgraphs[sg].tensors[out].dtype if out < edit.graph(sg).n_tensors else None
    if dtype not in COPYABLE:
        raise NoRule(f"a model input or output of type {dtype} would need a copy, and CAST does not copy {dtype}")
    options = ("CastOptions", {"in_data_type": _dtype(dtype), "out_data_type": _dtype(dtype)})
    return Op(None, ("CAST", 1), (src,), (out,), options)


RULES = {
    "Softmax": lambda ctx: Rewrite(list(ctx.op.inputs), "SoftmaxOptions", {"beta": 1.0}),
    "LeakyRelu": _same("LeakyReluOptions", alpha="alpha"),
    "Shape": _same("ShapeOptions", out_type=lambda a: _dtype(a["out_type"])),
    "Pack": _same("PackOptions", values_count="N", axis="axis"),
    "Unpack": _same("UnpackOptions", num="num", axis="axis"),
    "Squeeze": _same("SqueezeOptions", squeeze_dims=lambda a: a.get("squeeze_dims", [])),
    "Cast": _same("CastOptions", in_data_type=lambda a: _dtype(a["SrcT"]), out_data_type=lambda a: _dtype(a["DstT"])),
    "ArgMax": _same("ArgMaxOptions", output_type=lambda a: _dtype(a["output_type"])),
    "ArgMin": _same("ArgMinOptions", output_type=lambda a: _dtype(a["output_type"])),
    "Cumsum": _same("CumsumOptions", exclusive=lambda a: bool(a.get("exclusive")), reverse=lambda a: bool(a.get("reverse"))),
    "DepthToSpace": _same("DepthToSpaceOptions", block_size="block_size"),
    "SpaceToDepth": _same("SpaceToDepthOptions", block_size="block_size"),
    "MirrorPad": _same("MirrorPadOptions", mode=lambda a: SCHEMA.enums["MirrorPadMode"][a["mode"]]),
    "OneHot": _same("OneHotOptions", axis="axis"),
    "Split": _same("SplitOptions", num_splits="num_split"),
    "SplitV": _split_v,
    "ResizeBilinear": _same("ResizeBilinearOptions", align_corners=lambda a: bool(a.get("align_corners")),
                            half_pixel_centers=lambda a: bool(a.get("half_pixel_centers"))),
    "ResizeNearestNeighbor": _same("ResizeNearestNeighborOptions", align_corners=lambda a: bool(a.get("align_corners")),
                                   half_pixel_centers=lambda a: bool(a.get("half_pixel_centers"))),
    "MaxPool": _pool, "AvgPool": _pool,
    **{op: _same("ReducerOptions", keep_dims=lambda a: bool(a.get("keep_dims")))
       for op in ("Mean", "Sum", "Max", "Min", "Prod", "Any", "All")},
    "ConcatV2": _concat, "GatherV2": _gather,
    "StridedSlice": _same("StridedSliceOptions", **{m: m for m in (
        "begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}),
    "OnesLike": _ones_like,
    **{op: _remove for op in ("Identity", "StopGradient", "Snapshot", "PreventGradient", "IdentityN", "CheckNumerics",
                              "NoOp")},
}

