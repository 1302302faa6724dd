"""Per-op rules for Flex ops whose builtin needs options, fewer inputs or re-laid-out weights.

Each rule reads the decoded TF attributes and constant operands and says what the builtin op
looks like: its inputs, its options table and any in-place change to a weight tensor. The
catalog has already checked dtypes, attributes and constant operands before a rule runs.
Facts from tflite/converter/transforms/legalize_patterns.td and the kernels' option structs.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..reader.model import SCHEMA

TENSOR_TYPE = SCHEMA.enums["TensorType"]
PADDING = SCHEMA.enums["Padding"]


class NoRule(Exception):
    """The op cannot be rewritten here; the message says why."""


@dataclass
class Rewrite:
    inputs: list[int]
    options: str | None = None                     # builtin options table name
    fields: dict = field(default_factory=dict)     # option field -> value (lists for vector fields)
    weight_edits: list = field(default_factory=list)   # (tensor index, new shape, new data bytes or None)
    builtin: str | None = None                     # when the rule picks the builtin, not the catalog
    version: int | None = None


@dataclass
class Context:
    model: object
    subgraph: int
    op: object
    attrs: dict

    @property
    def tensors(self):
        return self.model.subgraphs[self.subgraph].tensors

    def constant(self, position: int) -> tuple:
        t = self.tensors[self.op.inputs[position]]
        raw = self.model.buffer_bytes(t.buffer)
        fmt = {"int32": "i", "int64": "q", "float32": "f"}.get(t.dtype)
        if fmt is None or not raw:
            raise NoRule(f"input {position} is not a constant int32/int64/float32 tensor")
        return struct.unpack(f"<{len(raw) // struct.calcsize(fmt)}{fmt}", raw)

    def sole_user(self, position: int) -> None:
        """A weight re-laid out in place must belong to this op alone."""
        ti = self.op.inputs[position]
        t = self.tensors[ti]
        users = sum(ti in op.inputs for op in self.model.subgraphs[self.subgraph].operators)
        sharing = sum(x.buffer == t.buffer for sg in self.model.subgraphs for x in sg.tensors)
        if users != 1 or sharing != 1 or ti in self.model.subgraphs[self.subgraph].outputs:
            raise NoRule(f"weight tensor {ti} is shared: fbtool re-lays out weights only for their sole user")


def _dtype(name: str) -> int:
    return TENSOR_TYPE[name.upper()]


def _pool(ctx: Context) -> Rewrite:
    a = ctx.attrs
    return Rewrite(list(ctx.op.inputs), "Pool2DOptions", {
        "padding": PADDING[a["padding"]], "stride_h": a["strides"][1], "stride_w": a["strides"][2],
        "filter_height": a["ksize"][1], "filter_width": a["ksize"][2]})


def _reducer(ctx: Context) -> Rewrite:
    return Rewrite(list(ctx.op.inputs), "ReducerOptions", {"keep_dims": bool(ctx.attrs.get("keep_dims"))})


def _concat(ctx: Context) -> Rewrite:
    (axis,) = ctx.constant(len(ctx.op.inputs) - 1)
    return Rewrite(list(ctx.op.inputs[:-1]), "ConcatenationOptions", {"axis": axis})


def _gather(ctx: Context) -> Rewrite:
    (axis,) = ctx.constant(2)
    return Rewrite(list(ctx.op.inputs[:2]), "GatherOptions",
                   {"axis": axis, "batch_dims": ctx.attrs.get("batch_dims", 0)})


def _strided_slice(ctx: Context) -> Rewrite:
    masks = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
    return Rewrite(list(ctx.op.inputs), "StridedSliceOptions", {m: ctx.attrs.get(m, 0) for m in masks})


def _matmul(ctx: Context) -> Rewrite:
    """MatMul(a, b) -> FULLY_CONNECTED(a, w, no bias): FC weights are [out, in], so a constant b
    of [in, out] (transpose_b false) is transposed in place."""
    x, w = ctx.op.inputs[:2]
    weights = ctx.tensors[w]
    if weights.dtype != "float32" or len(weights.shape) != 2 or len(ctx.tensors[x].shape) != 2:
        raise NoRule("fbtool rewrites MatMul only for float32 2-D operands")
    edits = []
    if not ctx.attrs.get("transpose_b"):
        ctx.sole_user(1)
        rows, cols = weights.shape
        values = struct.unpack(f"<{rows * cols}f", ctx.model.buffer_bytes(weights.buffer))
        transposed = [values[r * cols + c] for c in range(cols) for r in range(rows)]
        edits.append((w, (cols, rows), struct.pack(f"<{rows * cols}f", *transposed)))
    return Rewrite([x, w, -1], "FullyConnectedOptions", {}, edits)


def _copy(ctx: Context) -> Rewrite:
    """Identity, StopGradient, Snapshot: a CAST to the same type, which copies. Deleting the op and
    rewiring its consumers would save the copy, but needs a new operators vector (not yet)."""
    dtype = ctx.tensors[ctx.op.inputs[0]].dtype
    if dtype not in ("float32", "int32", "int64", "int16", "int8", "uint8", "bool", "float16"):
        raise NoRule(f"no same-type CAST for {dtype}")
    code = _dtype(dtype)
    return Rewrite([ctx.op.inputs[0]], "CastOptions", {"in_data_type": code, "out_data_type": code},
                   builtin="CAST", version=1)


def _needs_bias(ctx: Context) -> Rewrite:
    """CONV_2D requires a bias (conv.cc) and TFLite 2.18's DEPTHWISE_CONV_2D crashed without one (seen);
    a model converted from TF carries the bias in a separate BiasAdd, so a new tensor is needed."""
    raise NoRule("the builtin needs a bias tensor, and fbtool cannot add tensors yet")


RULES = {
    "Softmax": lambda ctx: Rewrite(list(ctx.op.inputs), "SoftmaxOptions", {"beta": 1.0}),
    "LeakyRelu": lambda ctx: Rewrite(list(ctx.op.inputs), "LeakyReluOptions", {"alpha": ctx.attrs["alpha"]}),
    "Shape": lambda ctx: Rewrite(list(ctx.op.inputs), "ShapeOptions", {"out_type": _dtype(ctx.attrs["out_type"])}),
    "Pack": lambda ctx: Rewrite(list(ctx.op.inputs), "PackOptions",
                                {"values_count": ctx.attrs["N"], "axis": ctx.attrs.get("axis", 0)}),
    "Squeeze": lambda ctx: Rewrite(list(ctx.op.inputs), "SqueezeOptions", {"squeeze_dims": ctx.attrs.get("squeeze_dims", [])}),
    "Cast": lambda ctx: Rewrite(list(ctx.op.inputs), "CastOptions", {"in_data_type": _dtype(ctx.attrs["SrcT"]),
                                                                     "out_data_type": _dtype(ctx.attrs["DstT"])}),
    "MaxPool": _pool, "AvgPool": _pool,
    "Mean": _reducer, "Sum": _reducer, "Max": _reducer, "Min": _reducer, "Prod": _reducer,
    "Any": _reducer, "All": _reducer,
    "ConcatV2": _concat, "GatherV2": _gather, "StridedSlice": _strided_slice,
    "MatMul": _matmul, "Conv2D": _needs_bias, "DepthwiseConv2dNative": _needs_bias,
    "Identity": _copy, "StopGradient": _copy, "Snapshot": _copy,
}
