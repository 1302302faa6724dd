"""The linear op family: convolutions and matrix products, whose weights TFLite lays out its own way.

Each takes optional ``scale`` (per output channel, multiplied into the weights) and ``bias`` so the
fusion pattern (:mod:`.patterns`) can fold a following BiasAdd, BatchNorm or per-channel Mul/Add.
Layouts from the kernels (conv.cc, depthwise_conv.cc, fully_connected.cc, transpose_conv.cc) and
versions from op_version.cc.
"""
from __future__ import annotations

import numpy as np

from .edit import NewTensor
from .rules import PADDING, Context, NoRule, Rewrite


def _conv_common(ctx: Context) -> dict:
    a = ctx.attrs
    return {"padding": PADDING[a["padding"]], "stride_h": a["strides"][1], "stride_w": a["strides"][2],
            "dilation_h_factor": a["dilations"][1], "dilation_w_factor": a["dilations"][2]}


def _bias(ctx: Context, bias, channels: int):
    """The bias operand: a tensor index, new constant values, or (None) zeros."""
    if bias is None:
        bias = np.zeros(channels, np.float32)
    if isinstance(bias, np.ndarray):
        name = ctx.graph.tensors[ctx.op.outputs[0]].name
        return NewTensor(f"{name}/bias", "float32", (channels,), bias.astype(np.float32).tobytes())
    return bias


def conv2d(ctx: Context, scale=None, bias=None) -> Rewrite:
    """Conv2D(x, w[H,W,I,O]) -> CONV_2D(x, w[O,H,W,I], bias): CONV_2D needs a bias (conv.cc), zeros
    unless a pattern folds one in; ``scale`` multiplies each output channel (a folded BatchNorm)."""
    w = ctx.array(1)
    if ctx.tensor(0).shape and ctx.tensor(0).shape[-1] != w.shape[2]:
        raise NoRule("grouped convolution (input channels differ from the filter's): not rewritten")
    ohwi = w.transpose(3, 0, 1, 2)
    if scale is not None:
        ohwi = (ohwi * scale[:, None, None, None]).astype(np.float32)
    weights, edits = ctx.relaid(1, ohwi, "ohwi")
    return Rewrite([ctx.op.inputs[0], weights, _bias(ctx, bias, w.shape[3])], "Conv2DOptions",
                   _conv_common(ctx), edits)


def depthwise(ctx: Context, scale=None, bias=None) -> Rewrite:
    """DepthwiseConv2dNative(x, w[H,W,C,M]) -> DEPTHWISE_CONV_2D(x, w[1,H,W,C*M], bias): the same
    bytes in a new shape; TFLite 2.18 crashed without a bias (seen), so zeros are added."""
    w = ctx.array(1)
    h, wd, c, m = w.shape
    flat = w.reshape(1, h, wd, c * m)
    if scale is not None:
        flat = (flat * scale).astype(np.float32)
    weights, edits = ctx.relaid(1, flat, "1hwc")
    fields = {**_conv_common(ctx), "depth_multiplier": m}
    version = 2 if fields["dilation_h_factor"] != 1 or fields["dilation_w_factor"] != 1 else 1
    return Rewrite([ctx.op.inputs[0], weights, _bias(ctx, bias, c * m)], "DepthwiseConv2DOptions",
                   fields, edits, version=version)


def matmul(ctx: Context, scale=None, bias=None) -> Rewrite:
    """MatMul(a, b): a constant b becomes FULLY_CONNECTED weights [out, in]; otherwise BATCH_MATMUL."""
    a = ctx.attrs
    x, w = ctx.tensor(0), ctx.tensor(1)
    if a.get("transpose_a") or len(x.shape) != 2 or x.dtype != "float32":
        raise NoRule("fbtool rewrites MatMul only for float32 2-D operands without transpose_a")
    if not ctx.model.is_constant(w):
        return Rewrite(list(ctx.op.inputs), "BatchMatMulOptions", {"adj_x": False, "adj_y": bool(a.get("transpose_b"))},
                       builtin="BATCH_MATMUL", version=1)
    inputs, edits = _dense(ctx, bool(a.get("transpose_b")), scale, bias)
    return Rewrite(inputs, "FullyConnectedOptions", {}, edits)


def _dense(ctx: Context, transposed: bool, scale, bias) -> tuple[list, list]:
    """FULLY_CONNECTED's inputs from constant weights [in, out] (or [out, in] when ``transposed``):
    weights as [out, in], each output channel times ``scale``, and the bias (-1 for none)."""
    out_in = ctx.array(1) if transposed else ctx.array(1).T
    if scale is not None:
        out_in = (out_in * scale[:, None]).astype(np.float32)
    if scale is None and transposed:
        entry, edits = ctx.op.inputs[1], []
    else:
        entry, edits = ctx.relaid(1, out_in, "oi")
    return [ctx.op.inputs[0], entry, -1 if bias is None else _bias(ctx, bias, out_in.shape[0])], edits


def transpose_conv(ctx: Context) -> Rewrite:
    """Conv2DBackpropInput(sizes, w[H,W,O,I], dy) -> TRANSPOSE_CONV(sizes, w[O,H,W,I], dy, no bias)."""
    w = ctx.array(1)
    weights, edits = ctx.relaid(1, w.transpose(2, 0, 1, 3), "ohwi")
    a = ctx.attrs
    return Rewrite([ctx.op.inputs[0], weights, ctx.op.inputs[2], -1], "TransposeConvOptions",
                   {"padding": PADDING[a["padding"]], "stride_h": a["strides"][1], "stride_w": a["strides"][2]}, edits)


def batch_norm_affine(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """FusedBatchNormV3 in inference mode as y = x * scale + shift, per channel (float64)."""
    a = ctx.attrs
    if a.get("is_training", True) or a.get("data_format", "NHWC") != "NHWC" or ctx.tensor(0).dtype != "float32":
        raise NoRule("FusedBatchNormV3 is rewritten only in inference mode (is_training false), NHWC, float32")
    gamma, beta, mean, var = (ctx.array(i).astype(np.float64) for i in range(1, 5))
    used = {t for op in ctx.graph.operators for t in op.inputs} | set(ctx.graph.outputs)
    if any(t in used for t in ctx.op.outputs[1:]):
        raise NoRule("FusedBatchNormV3's batch statistics are read: only y can be rewritten")
    scale = gamma / np.sqrt(var + a.get("epsilon", 1e-4))
    return scale, beta - mean * scale


def _batch_norm(ctx: Context) -> Rewrite:
    """A FusedBatchNormV3 not after a conv: MUL by the folded scale, then ADD the folded shift."""
    scale, shift = batch_norm_affine(ctx)
    name = ctx.graph.tensors[ctx.op.outputs[0]].name
    channels = scale.shape[0]
    mid = NewTensor(f"{name}/scaled", "float32", tuple(ctx.tensor(0).shape))
    const = lambda v, what: NewTensor(f"{name}/{what}", "float32", (channels,), v.astype(np.float32).tobytes())  # noqa: E731
    return Rewrite([mid, const(shift, "shift")], "AddOptions", {}, builtin="ADD", version=1,
                   outputs=[ctx.op.outputs[0]],
                   before=[("MUL", 1, [ctx.op.inputs[0], const(scale, "scale")], [mid], None)])


def batch_matmul(ctx: Context, scale=None, bias=None) -> Rewrite:
    """BatchMatMulV2/V3(x[..., K], w[K, N]) with a constant 2-D w is a dense layer: FULLY_CONNECTED
    with weights [N, K] and keep_num_dims (version 5, op_version.cc), as the converter makes it;
    otherwise BATCH_MATMUL."""
    a = ctx.attrs
    w = ctx.tensor(1)
    if not ctx.model.is_constant(w) or len(w.shape) != 2 or a.get("adj_x") or w.dtype != "float32" \
            or ctx.tensor(0).dtype != "float32" or len(ctx.tensor(0).shape) < 2:
        if scale is not None or bias is not None:
            raise NoRule("only a BatchMatMul with constant 2-D weights takes a bias")
        return Rewrite(list(ctx.op.inputs), "BatchMatMulOptions", {"adj_x": bool(a.get("adj_x")),
                       "adj_y": bool(a.get("adj_y"))}, builtin="BATCH_MATMUL", version=1)
    inputs, edits = _dense(ctx, bool(a.get("adj_y")), scale, bias)
    return Rewrite(inputs, "FullyConnectedOptions", {"keep_num_dims": True}, edits,
                   builtin="FULLY_CONNECTED", version=5)


RULES = {
    "BatchMatMulV2": batch_matmul, "BatchMatMulV3": batch_matmul,
    "MatMul": matmul, "Conv2D": conv2d, "DepthwiseConv2dNative": depthwise,
    "Conv2DBackpropInput": transpose_conv, "FusedBatchNormV3": _batch_norm,
}
