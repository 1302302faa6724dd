"""The linear op family: convolutions and matrix products, whose weights TFLite lays out its own way.

Each ``*_step`` builds the builtin for one TF op, taking what a fusion (:mod:`.fusion`) may fold
into it: ``scale`` (per output channel, multiplied into the weights), ``bias``, a fused
``activation``, and for convolutions the ``x``, ``padding`` and ``dilation`` a folded PAD or
SpaceToBatchND/BatchToSpaceND pair gives. Weights are :class:`~..api.Relaid`: the engine re-lays
them out in place when nothing else covers their bytes, also when they are float16 or int8 behind
a DEQUANTIZE (which then stays). Layouts from the kernels (conv.cc, depthwise_conv.cc,
fully_connected.cc, transpose_conv.cc), versions from op_version.cc.
"""
from __future__ import annotations

import numpy as np

from ..api import Const, Graph, Node, NoRule, Relaid, Rewrite, Step, Temp
from .common import ACTIVATION, PADDING, rules

FUSABLE = ("NONE", "RELU", "RELU6")   # conv.cc, depthwise_conv.cc, fully_connected.cc clamp only these


def _filter(node: Node, g: Graph) -> np.ndarray:
    w = g.weight(node.inputs[1])
    if w is None:
        raise NoRule("input 1 is not a constant fbtool can read (stored, or dequantized)")
    return w.values


def _bias(node: Node, g: Graph, bias, channels: int):
    """The bias operand: a tensor index, new constant values, or (None) zeros."""
    if bias is None:
        bias = np.zeros(channels, np.float32)
    if isinstance(bias, np.ndarray):
        return Const(bias.astype(np.float32), f"{g.name(node.outputs[0])}/bias")
    return bias


def _conv_options(node: Node, padding, dilation, activation: str) -> dict:
    a = node.attrs
    dh, dw = dilation or (a["dilations"][1], a["dilations"][2])
    return {"padding": PADDING[padding or a["padding"]], "stride_h": a["strides"][1], "stride_w": a["strides"][2],
            "dilation_h_factor": dh, "dilation_w_factor": dw,
            "fused_activation_function": ACTIVATION[activation]}


def conv2d_step(node: Node, g: Graph, scale=None, bias=None, activation="NONE", x=None, padding=None,
                dilation=None, output=None) -> Step:
    """Conv2D(x, w[H,W,I,O]) -> CONV_2D(x, w[O,H,W,I], bias): CONV_2D needs a bias (conv.cc), zeros
    unless a fusion folds one in."""
    w = _filter(node, g)
    x = node.inputs[0] if x is None else x
    if g.shape(x) and g.shape(x)[-1] not in (w.shape[2], -1):
        raise NoRule("grouped convolution (input channels differ from the filter's): not rewritten")
    weights = Relaid(node.inputs[1], lambda a: a.transpose(3, 0, 1, 2), "ohwi", scale, 0)
    return Step("CONV_2D", 1, [x, weights, _bias(node, g, bias, w.shape[3])],
                [node.outputs[0] if output is None else output],
                ("Conv2DOptions", _conv_options(node, padding, dilation, activation)))


def depthwise_step(node: Node, g: Graph, scale=None, bias=None, activation="NONE", x=None, padding=None,
                   dilation=None, output=None) -> Step:
    """DepthwiseConv2dNative(x, w[H,W,C,M]) -> DEPTHWISE_CONV_2D(x, w[1,H,W,C*M], bias): the same
    bytes in a new shape; TFLite 2.18 crashed without a bias (seen), so zeros are added."""
    h, wd, c, m = _filter(node, g).shape
    weights = Relaid(node.inputs[1], lambda a: a.reshape(1, h, wd, c * m), "1hwc", scale, 3)
    fields = {**_conv_options(node, padding, dilation, activation), "depth_multiplier": m}
    version = 2 if fields["dilation_h_factor"] != 1 or fields["dilation_w_factor"] != 1 else 1
    return Step("DEPTHWISE_CONV_2D", version, [node.inputs[0] if x is None else x, weights,
                                               _bias(node, g, bias, c * m)],
                [node.outputs[0] if output is None else output], ("DepthwiseConv2DOptions", fields))


def dense_step(node: Node, g: Graph, scale=None, bias=None, activation="NONE", x=None, output=None,
               keep_num_dims: bool | None = None) -> Step:
    """MatMul / BatchMatMulV2/V3 by constant 2-D weights [in, out] (or [out, in] when transposed):
    FULLY_CONNECTED with weights [out, in], each output channel times ``scale``, and the bias
    (-1 for none); keep_num_dims (version 5, op_version.cc) for a rank-3 input, as the converter does."""
    transposed = bool(node.attrs.get("transpose_b") or node.attrs.get("adj_y"))
    w = _filter(node, g)
    if w.ndim != 2:
        raise NoRule("only 2-D constant weights make a FULLY_CONNECTED")
    x = node.inputs[0] if x is None else x
    if keep_num_dims is None:
        keep_num_dims = len(g.shape(x)) > 2
    if scale is None and transposed:
        weights = node.inputs[1]
    else:
        weights = Relaid(node.inputs[1], (lambda a: a) if transposed else (lambda a: a.T), "oi", scale, 0)
    out_channels = w.shape[0] if transposed else w.shape[1]
    options = {"fused_activation_function": ACTIVATION[activation]}
    if keep_num_dims:
        options["keep_num_dims"] = True
    return Step("FULLY_CONNECTED", 5 if keep_num_dims else 1,
                [x, weights, -1 if bias is None else _bias(node, g, bias, out_channels)],
                [node.outputs[0] if output is None else output], ("FullyConnectedOptions", options))


def transpose_conv_step(node: Node, g: Graph, scale=None, bias=None, activation="NONE", output=None) -> Step:
    """Conv2DBackpropInput(sizes, w[H,W,O,I], dy) -> TRANSPOSE_CONV(sizes, w[O,H,W,I], dy, bias): the
    bias input makes it version 3 (op_version.cc); no fused activation (version 4 only)."""
    if activation != "NONE":
        raise NoRule("TRANSPOSE_CONV takes its fused activation from version 4 on: not fused")
    _filter(node, g)
    a = node.attrs
    weights = Relaid(node.inputs[1], lambda w: w.transpose(2, 0, 1, 3), "ohwi", scale, 0)
    channels = g.weight(node.inputs[1]).values.shape[2]
    return Step("TRANSPOSE_CONV", 1 if bias is None else 3,
                [node.inputs[0], weights, node.inputs[2], -1 if bias is None else _bias(node, g, bias, channels)],
                [node.outputs[0] if output is None else output],
                ("TransposeConvOptions", {"padding": PADDING[a["padding"]], "stride_h": a["strides"][1],
                                          "stride_w": a["strides"][2]}))


def matmul(node: Node, g: Graph) -> Rewrite:
    """MatMul(a, b): a constant b makes FULLY_CONNECTED; two activations BATCH_MATMUL."""
    a = node.attrs
    x = node.inputs[0]
    if a.get("transpose_a") or len(g.shape(x)) != 2 or g.dtype(x) != "float32":
        raise NoRule("fbtool rewrites MatMul only for float32 2-D operands without transpose_a")
    if g.weight(node.inputs[1]) is None:
        return Rewrite.one(node, "BATCH_MATMUL", 1, node.inputs, options=(
            "BatchMatMulOptions", {"adj_x": False, "adj_y": bool(a.get("transpose_b"))}))
    return Rewrite((node.key,), [dense_step(node, g)])


def batch_matmul(node: Node, g: Graph) -> Rewrite:
    """BatchMatMulV2/V3(x[..., K], w[K, N]) with constant 2-D w is a dense layer (FULLY_CONNECTED
    keep_num_dims); otherwise BATCH_MATMUL."""
    if dense_weights(node, g):
        return Rewrite((node.key,), [dense_step(node, g)])
    a = node.attrs
    return Rewrite.one(node, "BATCH_MATMUL", 1, node.inputs, options=(
        "BatchMatMulOptions", {"adj_x": bool(a.get("adj_x")), "adj_y": bool(a.get("adj_y"))}))


def dense_weights(node: Node, g: Graph) -> bool:
    """Whether a MatMul/BatchMatMul is a dense layer: constant 2-D float weights, float input."""
    w = g.weight(node.inputs[1])
    x = node.inputs[0]
    if node.tf_op == "MatMul":
        return w is not None and w.values.ndim == 2 and not node.attrs.get("transpose_a") \
            and len(g.shape(x)) == 2 and g.dtype(x) == "float32"
    return w is not None and w.values.ndim == 2 and not node.attrs.get("adj_x") \
        and g.dtype(x) == "float32" and len(g.shape(x)) >= 2


def batch_norm_affine(node: Node, g: Graph) -> tuple[np.ndarray, np.ndarray]:
    """FusedBatchNormV3 in inference mode as y = x * scale + shift, per channel (float64)."""
    a = node.attrs
    if a.get("is_training", True) or a.get("data_format", "NHWC") != "NHWC" or g.dtype(node.inputs[0]) != "float32":
        raise NoRule("FusedBatchNormV3 is rewritten only in inference mode (is_training false), NHWC, float32")
    consts = [g.constant(node.inputs[i]) for i in range(1, 5)]
    if any(c is None for c in consts):
        raise NoRule("FusedBatchNormV3's scale, offset, mean and variance must be constants")
    gamma, beta, mean, var = (c.astype(np.float64) for c in consts)
    if any(g.readers(t) or g.pinned(t) for t in node.outputs[1:]):
        raise NoRule("FusedBatchNormV3's batch statistics are read: only y can be rewritten")
    scale = gamma / np.sqrt(var + a.get("epsilon", 1e-4))
    return scale, beta - mean * scale


def batch_norm_steps(node: Node, g: Graph, activation: str = "NONE", output=None) -> list[Step]:
    """A FusedBatchNormV3 not after a conv: MUL by the folded scale, then ADD the folded shift (with
    a fused activation: add.cc clamps like conv)."""
    scale, shift = batch_norm_affine(node, g)
    name = g.name(node.outputs[0])
    mid = Temp("float32", g.shape(node.inputs[0]), f"{name}/scaled")
    return [Step("MUL", 1, [node.inputs[0], Const(scale.astype(np.float32), f"{name}/scale")], [mid], None),
            Step("ADD", 1, [mid, Const(shift.astype(np.float32), f"{name}/shift")],
                 [node.outputs[0] if output is None else output],
                 ("AddOptions", {"fused_activation_function": ACTIVATION[activation]}))]


RULES = rules(
    "weights",
    Conv2D=lambda node, g: Rewrite((node.key,), [conv2d_step(node, g)]),
    DepthwiseConv2dNative=lambda node, g: Rewrite((node.key,), [depthwise_step(node, g)]),
    Conv2DBackpropInput=lambda node, g: Rewrite((node.key,), [transpose_conv_step(node, g)]),
    MatMul=matmul,
)
RULES.update(rules("options", BatchMatMulV2=batch_matmul, BatchMatMulV3=batch_matmul))
RULES.update(rules("decompose", FusedBatchNormV3=lambda node, g: Rewrite((node.key,), batch_norm_steps(node, g))))
