"""The fusions TFLite's converter makes around a convolution or a dense layer, and around an
elementwise op (optimize_patterns.td, prepare_tf.cc, dilated_conv.h).

``linear_chain`` anchors at a Conv2D, DepthwiseConv2dNative, MatMul, BatchMatMul or
Conv2DBackpropInput and takes, when nothing else reads what it takes:
- before it: a Pad whose padding is exactly SAME's (the conv becomes SAME); a SpaceToBatchND (and
  the ExpandDims of a Conv1D) paired with a BatchToSpaceND after it: a dilated convolution; the
  Reshape that flattens a rank-3 input of a dense layer (FULLY_CONNECTED keep_num_dims instead);
- after it: shape ops that keep channels last (Reshape, Squeeze: they stay, after the fused op),
  then per-channel BiasAdd / Mul / Add / Sub / FusedBatchNormV3 (folded into the weights and bias),
  then Relu or Relu6 (the fused activation).
``elementwise_activation`` fuses Relu/Relu6 into the ADD, SUB or MUL before it (add.cc, sub.cc and
mul.cc clamp like conv does), and a BatchNorm's MUL + ADD.
"""
from __future__ import annotations

import numpy as np

from ..api import Const, Graph, Node, NoRule, Pattern, Rewrite, Step, Temp
from . import linear
from .common import ACTIVATION

FAMILY = {"Conv2D": linear.conv2d_step, "DepthwiseConv2dNative": linear.depthwise_step,
          "MatMul": linear.dense_step, "BatchMatMulV2": linear.dense_step, "BatchMatMulV3": linear.dense_step,
          "Conv2DBackpropInput": linear.transpose_conv_step}
CONVS = ("Conv2D", "DepthwiseConv2dNative")
AFFINE = {"BiasAdd", "AddV2", "Add", "Sub", "Mul", "FusedBatchNormV3"}
ACTIVATIONS = {"Relu": "RELU", "Relu6": "RELU6"}


def _next(g: Graph, tensor: int, tf_ops) -> Node | None:
    """The one op reading ``tensor``, when it is a Flex op of one of ``tf_ops`` no rewrite took yet."""
    node = g.sole_reader(tensor)
    return node if node is not None and node.candidate and node.tf_op in tf_ops else None


def _before(g: Graph, tensor: int, tf_op: str) -> Node | None:
    """The Flex op of kind ``tf_op`` writing ``tensor``, when ``tensor`` is read by nothing else."""
    node = g.producer(tensor)
    if node is None or not node.candidate or node.tf_op != tf_op or g.sole_reader(tensor) is None:
        return None
    return node


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """SAME's (before, after) padding for one spatial dim (TFLite: padding.h ComputePaddingHeightWidth)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_fold(conv: Node, g: Graph, kernel: tuple) -> Node | None:
    """A Pad before a VALID conv whose padding is exactly what SAME would pad: the converter folds it."""
    pad = _before(g, conv.inputs[0], "Pad")
    if pad is None or conv.attrs.get("padding") != "VALID":
        return None
    pads = g.constant(pad.inputs[1])
    shape = g.shape(pad.inputs[0])
    if pads is None or pads.shape != (4, 2) or len(shape) != 4 or any(d < 0 for d in shape[1:3]) \
            or pads[0].any() or pads[3].any():
        return None
    a = conv.attrs
    for axis in (1, 2):
        if tuple(pads[axis]) != _same_pads(shape[axis], kernel[axis - 1], a["strides"][axis], a["dilations"][axis]):
            return None
    return pad


class _Dilation:
    """SpaceToBatchND -> [ExpandDims] -> conv (dilations 1, stride 1) -> [Squeeze] -> BatchToSpaceND:
    how TF writes a dilated convolution (and a dilated Conv1D), one dilated conv in TFLite."""

    def __init__(self, conv: Node, g: Graph, kernel: tuple):
        self.ok = False
        a = conv.attrs
        if a.get("padding") != "VALID" or list(a["strides"]) != [1, 1, 1, 1] or list(a["dilations"]) != [1, 1, 1, 1]:
            return
        x = conv.inputs[0]
        self.expand = _before(g, x, "ExpandDims")
        stb = _before(g, self.expand.inputs[0] if self.expand else x, "SpaceToBatchND")
        if stb is None:
            return
        block, pads = g.constant(stb.inputs[1]), g.constant(stb.inputs[2])
        self.stb, self.x = stb, stb.inputs[0]
        shape = g.shape(self.x)
        if block is None or pads is None or any(d < 0 for d in shape[1:1 + block.size]):
            return
        self.block, self.pads = [int(b) for b in block.ravel()], pads.astype(int).reshape(-1, 2)
        spatial = len(self.block)
        if self.expand is not None:      # Conv1D: [N, L, C] -> [N, 1, L, C]: the block is along W
            axis = self._expand_axis(g)
            if spatial != 1 or axis != 1:
                return
            self.dilation, self.kernels = (1, self.block[0]), [kernel[1]]
        elif spatial == 2:
            self.dilation, self.kernels = tuple(self.block), list(kernel)
        else:
            return
        self.padding = self._padding(shape[1:1 + spatial], self.kernels)
        self.ok = self.padding is not None

    def _expand_axis(self, g: Graph) -> int | None:
        axis = g.constant(self.expand.inputs[1])
        rank = len(g.shape(self.expand.inputs[0]))
        return None if axis is None or axis.size != 1 else int(axis.ravel()[0]) % (rank + 1)

    def _padding(self, sizes, kernels) -> str | None:
        """VALID when SpaceToBatchND pads only to a multiple of the block, SAME when it pads what
        SAME would; the BatchToSpaceND crops must take off exactly the rest (checked at the end)."""
        befores = [int(p[0]) for p in self.pads]
        if all(b == 0 for b in befores):
            return "VALID"
        same = [_same_pads(n, k, 1, d)[0] for n, k, d in zip(sizes, kernels, self.block)]
        return "SAME" if befores == same else None

    def closes(self, bts: Node, g: Graph) -> bool:
        """The BatchToSpaceND that ends it: same block, and its output the size the dilated conv
        gives on the un-padded input (so its crops take off exactly what was padded for the block)."""
        block = g.constant(bts.inputs[1])
        if block is None or [int(b) for b in block.ravel()] != self.block:
            return False
        sizes, out = g.shape(self.x)[1:1 + len(self.block)], g.shape(bts.outputs[0])[1:1 + len(self.block)]
        kernels = self.kernels
        want = [n if self.padding == "SAME" else n - (k - 1) * d for n, k, d in zip(sizes, kernels, self.block)]
        return list(out) == want


def _per_channel(node: Node, g: Graph, x: int, channels: int, split: tuple = ()):
    """(tf op, constant tensor, values[channels]) when ``node`` combines ``x`` with a constant that is
    the same for every position of a channel; None otherwise. ``split``: the trailing dims a Reshape
    split the channels into (a constant of that shape is per channel too)."""
    if node.tf_op == "FusedBatchNormV3" and node.inputs[0] == x:
        try:
            scale, shift = linear.batch_norm_affine(node, g)
        except NoRule:
            return None
        return (node.tf_op, None, (scale, shift)) if scale.shape == (channels,) else None
    if node.tf_op not in AFFINE or len(node.inputs) != 2 or x not in node.inputs or node.inputs[0] == node.inputs[1]:
        return None
    position = 1 - node.inputs.index(x)
    if node.tf_op in ("BiasAdd", "Sub") and position != 1:
        return None
    c = g.constant(node.inputs[position])
    trailing = tuple(c.shape[-len(split):]) if c is not None and split else None
    if c is None or c.dtype != np.float32 or c.size not in (1, channels):
        return None
    if c.size > 1 and c.shape[-1] != channels and not (split and trailing == split):
        return None
    return node.tf_op, node.inputs[position], np.broadcast_to(c.reshape(-1), (channels,)).astype(np.float64)


def _keeps_channels(node: Node, g: Graph, channels: int) -> tuple | None:
    """The channel split of a Reshape or Squeeze that leaves the channels last: () when the last dim
    stays ``channels``, the trailing dims when a Reshape splits them; None otherwise. Per-channel ops
    and activations commute with it, so they fold into the op before it."""
    shape = g.shape(node.outputs[0])
    if node.tf_op == "Squeeze":
        return () if shape and shape[-1] == channels and -1 not in node.attrs.get("squeeze_dims", [-1]) else None
    if shape and shape[-1] == channels:
        return ()
    for k in range(2, len(shape) + 1):
        if all(d > 0 for d in shape[-k:]) and int(np.prod(shape[-k:])) == channels:
            return tuple(shape[-k:])
    return None


def _flattened(dense: Node, g: Graph) -> Node | None:
    """The Reshape that flattens the input of a dense layer to [M, K]: from [..., K] (a Dense on a
    rank-3 input), or from any static shape of M*K elements (a Keras Reshape layer before it)."""
    flat = _before(g, dense.inputs[0], "Reshape")
    if flat is None:
        return None
    source, out = g.shape(flat.inputs[0]), g.shape(flat.outputs[0])
    if len(out) != 2 or out[-1] <= 0 or len(source) < 2:
        return None
    static = all(d > 0 for d in (*source, *out)) and int(np.prod(source)) == int(np.prod(out))
    return flat if static or (source[-1] == out[-1] and len(source) >= 3) else None


def _restores(g: Graph, flatten: Node, restore: Node) -> bool:
    """Whether the Reshape after a dense layer gives back leading dims of as many elements as the
    flattening one took (the same dims, or a Keras Reshape's merged ones: a RESHAPE before keeps them)."""
    lead, rows, back = g.shape(flatten.inputs[0])[:-1], g.shape(flatten.outputs[0])[0], g.shape(restore.outputs[0])[:-1]
    return len(back) >= 2 and (tuple(lead) == tuple(back) or (all(d > 0 for d in back) and rows > 0
                                                              and int(np.prod(back)) == rows))


def linear_chain(anchor: Node, g: Graph) -> Rewrite | None:
    """y = act((conv(x, w) + b0) * s1 + b1 ...) is conv(x, w * s) + b with s and b per channel."""
    tf_op = anchor.tf_op
    if tf_op in ("MatMul", "BatchMatMulV2", "BatchMatMulV3") and not linear.dense_weights(anchor, g):
        return None
    w = g.weight(anchor.inputs[1])
    if w is None:
        return None
    taken, x, extra = [anchor], anchor.inputs[0], {}
    dilation = flatten = None
    if tf_op in CONVS:
        kernel = w.values.shape[:2]
        pad = _pad_fold(anchor, g, kernel)
        if pad is not None:
            taken.append(pad)
            x, extra["padding"] = pad.inputs[0], "SAME"
        else:
            found = _Dilation(anchor, g, kernel)
            dilation = found if found.ok else None
    elif tf_op != "Conv2DBackpropInput":
        flatten = _flattened(anchor, g)

    out = anchor.outputs[0]
    channels = g.shape(out)[-1]
    shapers, split, closed = [], (), dilation is None
    while True:
        nxt = _next(g, out, ("Reshape", "Squeeze", "BatchToSpaceND"))
        if nxt is None:
            break
        if nxt.tf_op == "BatchToSpaceND":
            if closed or not dilation.closes(nxt, g):
                break
            closed = True
        elif flatten is not None and not shapers and nxt.tf_op == "Reshape":
            if not _restores(g, flatten, nxt):
                break
        else:
            found = _keeps_channels(nxt, g, channels)
            if found is None or (dilation is not None and nxt.tf_op == "Reshape"):
                break
            split = found or split
        shapers.append(nxt)
        out = nxt.outputs[0]
    if not closed:
        dilation, shapers = None, [s for s in shapers if s.tf_op != "BatchToSpaceND"]
        out = shapers[-1].outputs[0] if shapers else anchor.outputs[0]
    if flatten is not None and not (shapers and shapers[0].tf_op == "Reshape"):
        flatten = None

    scale, shift, steps = np.ones(channels), np.zeros(channels), []
    nxt = _next(g, out, AFFINE)
    while nxt is not None and (step := _per_channel(nxt, g, out, channels, split)):
        kind, _, c = step
        if kind == "FusedBatchNormV3":
            scale, shift = scale * c[0], shift * c[0] + c[1]
        elif kind == "Mul":
            scale, shift = scale * c, shift * c
        else:
            shift = shift - c if kind == "Sub" else shift + c
        steps.append(step)
        taken.append(nxt)
        out = nxt.outputs[0]
        nxt = _next(g, out, AFFINE)
    activation = "NONE"
    act = _next(g, out, ACTIVATIONS)
    if act is not None and not (tf_op == "Conv2DBackpropInput"):
        activation = ACTIVATIONS[act.tf_op]
        taken.append(act)
        out = act.outputs[0]
    structure = [s for s in (dilation and dilation.stb, dilation and dilation.expand, flatten) if s] + shapers
    if len(taken) + len(structure) == 1:
        return None
    bias = None
    if len(steps) == 1 and steps[0][0] in ("BiasAdd", "AddV2", "Add") and g.shape(steps[0][1]) == (channels,):
        bias = steps[0][1]            # the BiasAdd's own constant, as it is
    elif steps:
        bias = shift.astype(np.float32)
    folded = scale.astype(np.float32) if np.any(scale != 1) else None
    return _assemble(anchor, g, taken + structure, x, extra, dilation, flatten, shapers, out,
                     folded, bias, activation)


def _assemble(anchor, g, taken, x, extra, dilation, flatten, shapers, out, scale, bias, activation):
    """The steps: [EXPAND_DIMS], the fused op, then the shape ops that stay (as builtins)."""
    steps = []
    name = g.name(anchor.outputs[0])
    if dilation is not None:
        extra.update(padding=dilation.padding, dilation=dilation.dilation)
        x = dilation.x
        if dilation.expand is not None:
            shape = list(g.shape(x))
            shape.insert(1, 1)
            expanded = Temp(g.dtype(x), tuple(shape), f"{name}/expanded")
            steps.append(_reshape(x, expanded, name) or Step("EXPAND_DIMS", 1, [x, dilation.expand.inputs[1]],
                                                               [expanded]))
            x = expanded
    if flatten is not None:
        x = flatten.inputs[0]
        back = list(g.shape(shapers[0].outputs[0])[:-1]) + [g.shape(flatten.outputs[0])[-1]]
        if list(g.shape(x)) != back:     # a Keras Reshape merged dims before the dense layer: keep it
            shaped = Temp(g.dtype(x), tuple(back), f"{name}/input")
            steps.append(Step("RESHAPE", 1, [x, Const(np.array(back, np.int32), f"{name}/input_shape")], [shaped],
                              ("ReshapeOptions", {"new_shape": back})))
            x = shaped
    kept = [s for s in shapers if s.tf_op != "BatchToSpaceND" and not (flatten is not None and s is shapers[0])]
    target = out if not kept else Temp(g.dtype(anchor.outputs[0]), _fused_shape(g, anchor, kept, out, dilation),
                                       f"{name}/fused")
    make = FAMILY[anchor.tf_op]
    try:
        step = make(anchor, g, scale, bias, activation, x=x, output=target, **extra) \
            if anchor.tf_op != "Conv2DBackpropInput" else make(anchor, g, scale, bias, activation, output=target)
    except NoRule:
        return None
    steps.append(step)
    main = len(steps) - 1
    current = target
    for i, s in enumerate(kept):
        dest = out if i == len(kept) - 1 else Temp(g.dtype(s.outputs[0]), g.shape(s.outputs[0]), f"{name}/shaped{i}")
        if s.tf_op == "Squeeze":
            steps.append(_reshape(current, dest, name, g) or Step(
                "SQUEEZE", 1, [current], [dest], ("SqueezeOptions", {"squeeze_dims": s.attrs.get("squeeze_dims", [])})))
        else:
            steps.append(Step("RESHAPE", 1, [current, s.inputs[1]], [dest]))
        current = dest
    return Rewrite(tuple(n.key for n in taken), steps, main)


def _reshape(x, out, name: str, g: Graph | None = None) -> Step | None:
    """A RESHAPE to ``out``'s shape, as the converter writes a Conv1D's ExpandDims and Squeeze; None
    when the shape has two dynamic dims (EXPAND_DIMS or SQUEEZE then)."""
    shape = list(out.shape if isinstance(out, Temp) else g.shape(out))
    if sum(d < 0 for d in shape) > 1:
        return None
    return Step("RESHAPE", 1, [x, Const(np.array(shape, np.int32), f"{name}/shape")], [out],
                ("ReshapeOptions", {"new_shape": shape}))


def _fused_shape(g: Graph, anchor: Node, kept: list, out: int, dilation) -> tuple:
    """The fused op's output shape: the linear op's; with a dilation (the batch no longer holds the
    blocks) the final one, with a Conv1D's squeezed dim put back."""
    if dilation is None:
        return g.shape(anchor.outputs[0])
    shape = list(g.shape(out))
    if any(s.tf_op == "Squeeze" for s in kept):
        shape.insert(1, 1)
    return tuple(shape)


# -- an elementwise ADD/SUB/MUL and the Relu/Relu6 after it (a residual connection's Add + Relu) ------
BINARY = {"AddV2": ("ADD", "AddOptions"), "Add": ("ADD", "AddOptions"), "Sub": ("SUB", "SubOptions"),
          "Mul": ("MUL", "MulOptions")}


def elementwise_activation(anchor: Node, g: Graph) -> Rewrite | None:
    verdict = anchor.verdict
    act = _next(g, anchor.outputs[0], ACTIVATIONS)
    if not verdict.rewritable or act is None or not act.verdict.rewritable:
        return None
    builtin, options = BINARY[anchor.tf_op]
    if verdict.builtin != builtin:
        return None
    return Rewrite((anchor.key, act.key), [Step(builtin, verdict.version, list(anchor.inputs), list(act.outputs),
                                                (options, {"fused_activation_function":
                                                           ACTIVATION[ACTIVATIONS[act.tf_op]]}))])


def batch_norm_activation(anchor: Node, g: Graph) -> Rewrite | None:
    """A FusedBatchNormV3 not after a conv, then Relu/Relu6: MUL + ADD with the activation fused."""
    act = _next(g, anchor.outputs[0], ACTIVATIONS)
    if act is None:
        return None
    try:
        steps = linear.batch_norm_steps(anchor, g, ACTIVATIONS[act.tf_op], act.outputs[0])
    except NoRule:
        return None
    return Rewrite((anchor.key, act.key), steps)


PATTERNS = [
    Pattern("fuse_bias_activation", frozenset(FAMILY), linear_chain,
            "conv/dense + bias, BatchNorm, per-channel Mul/Add + Relu/Relu6; PAD folded into SAME; "
            "SpaceToBatchND/BatchToSpaceND into a dilation; a flattening Reshape pair into keep_num_dims"),
    Pattern("fuse_batch_norm_activation", frozenset({"FusedBatchNormV3"}), batch_norm_activation,
            "a standalone BatchNorm + Relu/Relu6: MUL, then ADD with the activation fused"),
    Pattern("fuse_activation", frozenset(BINARY), elementwise_activation,
            "ADD/SUB/MUL + Relu/Relu6 (a residual connection's Add + Relu)"),
]
