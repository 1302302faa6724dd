"""Graph patterns: several Flex ops matched on the networkx graph and rewritten as one builtin.
The machinery (:class:`View`, :class:`Match`, :class:`Pattern`) and the conv/MatMul fusion; other
patterns have modules of their own (:mod:`.gelu`), joined in :mod:`.registry`.

A pattern is declared by its name, the TF ops it can start from, and a ``match`` that returns
a :class:`Match` (the ops it takes and how to rewrite them) or None. Matching never changes
anything; a match takes an intermediate tensor only when nothing else reads it and it is not
a model output, so no other op can see the difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from ..reader.model import Model
from . import linear, rules
from .edit import Edit, NewTensor
from .rules import ACTIVATION, Context, NoRule

Key = tuple[int, int]


class View:
    """What patterns look at: the graph of each subgraph and the decoded, rewritable Flex ops."""

    def __init__(self, model: Model, flex: dict[Key, tuple]):   # (tf op, attrs, catalog verdict)
        self.model = model
        self.flex = flex

    @cached_property
    def graphs(self):
        """Built on the first match attempt: a model with no pattern anchor never pays for it."""
        from ..graph.build import build_graph
        return build_graph(self.model).subgraphs

    def tf_op(self, key: Key) -> str | None:
        return self.flex[key][0] if key in self.flex else None

    def verdict(self, key: Key):
        """The catalog's verdict on this Flex op alone (dtypes, attrs, operands, builtin version)."""
        return self.flex[key][2]

    def context(self, key: Key) -> Context:
        sg, i = key
        return Context(self.model, sg, self.model.subgraphs[sg].operators[i], self.flex[key][1])

    def sole_reader(self, sg: int, tensor: int) -> Key | None:
        """The one op reading ``tensor``, when exactly one does and it is not a model output."""
        if tensor in self.model.subgraphs[sg].outputs:
            return None
        readers = list(self.graphs[sg].successors(("t", tensor)))
        return (sg, readers[0][1]) if len(readers) == 1 else None

    def producer(self, sg: int, tensor: int) -> Key | None:
        found = list(self.graphs[sg].predecessors(("t", tensor)))
        return (sg, found[0][1]) if found else None

    def op(self, key: Key):
        return self.model.subgraphs[key[0]].operators[key[1]]

    def constant(self, key: Key, position: int) -> np.ndarray | None:
        try:
            return self.context(key).array(position)
        except NoRule:
            return None

    def constant_index(self, sg: int, tensor: int) -> np.ndarray | None:
        """A constant tensor's values, or None for activations and unreadable types."""
        t = self.model.subgraphs[sg].tensors[tensor]
        if not self.model.is_constant(t) or t.dtype not in rules.NUMPY:
            return None
        return np.frombuffer(self.model.buffer_bytes(t.buffer), rules.NUMPY[t.dtype]).reshape(t.shape)


@dataclass
class Match:
    ops: list[Key]
    apply: Callable[[Edit], dict[Key, dict]]


@dataclass
class Pattern:
    name: str
    anchors: frozenset
    match: Callable[[View, int, int], Match | None]


# -- conv / MatMul, then per-channel adds and multiplies (BiasAdd, a BatchNorm's Mul and AddV2), then Relu|Relu6
FUSED = {"Relu": "RELU", "Relu6": "RELU6"}   # conv.cc and fully_connected.cc clamp only these (not TANH)
LINEAR = {"Conv2D": linear.conv2d, "DepthwiseConv2dNative": linear.depthwise, "MatMul": linear.matmul,
          "BatchMatMulV2": linear.batch_matmul, "BatchMatMulV3": linear.batch_matmul}
AFFINE = {"BiasAdd", "AddV2", "Add", "Sub", "Mul", "FusedBatchNormV3"}


def _per_channel(view: View, key: Key, x: int, channels: int, split: tuple = ()):
    """(tf op, constant tensor, values[channels]) when op ``key`` combines ``x`` with a constant
    that is the same for every position of a channel; None otherwise. ``split``: the trailing
    dims a Reshape split the channels into (a constant of that shape is per channel too)."""
    op, tf_op = view.op(key), view.tf_op(key)
    if tf_op == "FusedBatchNormV3" and op.inputs[0] == x:
        try:
            scale, shift = linear.batch_norm_affine(view.context(key))
        except NoRule:
            return None
        return (tf_op, None, (scale, shift)) if scale.shape == (channels,) else None
    if tf_op not in AFFINE or len(op.inputs) != 2 or x not in op.inputs or op.inputs[0] == op.inputs[1]:
        return None
    position = 1 - op.inputs.index(x)
    if tf_op in ("BiasAdd", "Sub") and position != 1:
        return None
    c = view.constant(key, position)
    trailing = tuple(c.shape[-len(split):]) if c is not None and split else None
    if c is None or c.dtype != np.float32 or c.size not in (1, channels):
        return None
    if c.size > 1 and c.shape[-1] != channels and not (split and trailing == split):
        return None
    return tf_op, op.inputs[position], np.broadcast_to(c.reshape(-1), (channels,)).astype(np.float64)


def _reshape_keeping_channels(view: View, key: Key, x: int, channels: int) -> tuple | None:
    """The channel split of a Reshape of ``x`` that leaves the channels last: () when the last dim
    stays ``channels``, the trailing dims when it splits them; None for any other Reshape. Per-channel
    ops and activations commute with such a Reshape, so they can fold into the op before it."""
    if view.tf_op(key) != "Reshape" or view.op(key).inputs[0] != x:
        return None
    shape = view.model.subgraphs[key[0]].tensors[view.op(key).outputs[0]].shape
    if shape and shape[-1] == channels:
        return ()
    for k in range(2, len(shape) + 1):
        if int(np.prod(shape[-k:])) == channels:
            return tuple(shape[-k:])
    return None


def fused_linear(view: View, sg: int, index: int) -> Match | None:
    """y = act((conv(x, w) + b0) * s1 + b1 ...) is conv(x, w * s) + b with s and b per channel,
    the folding TFLite's converter does for BatchNorm (optimize_patterns.td)."""
    anchor = (sg, index)
    tf_op, ctx = view.tf_op(anchor), view.context(anchor)
    try:
        if LINEAR[tf_op](ctx).builtin == "BATCH_MATMUL":
            return None
    except NoRule:
        return None
    out = linear_out = view.op(anchor).outputs[0]
    channels = view.model.subgraphs[sg].tensors[out].shape[-1]
    taken, steps, reshape, split = [anchor], [], None, ()
    scale, shift = np.ones(channels), np.zeros(channels)
    nxt = view.sole_reader(sg, out)
    if nxt and nxt in view.flex and (found := _reshape_keeping_channels(view, nxt, out, channels)) is not None:
        reshape, split = nxt, found     # the Reshape stays, after the fused op
        out = view.op(nxt).outputs[0]
        nxt = view.sole_reader(sg, out)
    while nxt and nxt in view.flex and (step := _per_channel(view, nxt, out, channels, split)):
        kind, _, c = step
        if kind == "FusedBatchNormV3":
            scale, shift = scale * c[0], shift * c[0] + c[1]
        elif kind == "Mul":
            scale, shift = scale * c, shift * c
        else:
            shift = shift - c if kind == "Sub" else shift + c
        steps.append(step)
        taken.append(nxt)
        out = view.op(nxt).outputs[0]
        nxt = view.sole_reader(sg, out)
    activation = "NONE"
    if nxt and view.tf_op(nxt) in FUSED:
        activation = FUSED[view.tf_op(nxt)]
        taken.append(nxt)
        out = view.op(nxt).outputs[0]
    if len(taken) == 1:
        return None
    if reshape is not None and view.op(reshape).inputs[1] in {t for k in taken for t in view.op(k).outputs}:
        return None
    scaled = bool(np.any(scale != 1))
    bias = None
    if len(steps) == 1 and steps[0][0] in ("BiasAdd", "AddV2", "Add") and \
            view.model.subgraphs[sg].tensors[steps[0][1]].shape == (channels,):
        bias = steps[0][1]            # the BiasAdd's own constant, as it is
    elif steps:
        bias = shift.astype(np.float32)
    try:
        rewrite = LINEAR[tf_op](ctx, scale.astype(np.float32) if scaled else None, bias)
    except NoRule:
        return None
    rewrite.fields["fused_activation_function"] = ACTIVATION[activation]
    if reshape is None:
        rewrite.outputs = [out]
    else:   # a new tensor: the original linear output keeps meaning x @ w, which this is not
        t = view.model.subgraphs[sg].tensors[linear_out]
        rewrite.outputs = [NewTensor(f"{t.name}/fused", t.dtype, tuple(t.shape_signature))]
    builtin = rewrite.builtin or {"Conv2D": "CONV_2D", "DepthwiseConv2dNative": "DEPTHWISE_CONV_2D"}.get(
        tf_op, "FULLY_CONNECTED")

    def apply(edit: Edit) -> dict[Key, dict]:
        version = rewrite.version or 1
        rewrite.apply(edit, sg, index, builtin, version)
        for key in taken[1:]:
            edit.remove(*key)
        records = {anchor: {"builtin": builtin, "version": version},
                   **{k: {"builtin": None, "version": None, "fused_into": index} for k in taken[1:]}}
        if reshape is not None:     # the Reshape reads the fused op's tensor and writes the chain's last
            fused = edit.op(sg, index).outputs[0]
            inputs = [fused if t == linear_out else t for t in edit.op(*reshape).inputs]
            edit.replace(*reshape, "RESHAPE", 1, inputs, [out])
            records[reshape] = {"builtin": "RESHAPE", "version": 1}
        return records
    return Match(taken, apply)


# -- an elementwise ADD/SUB/MUL and the Relu/Relu6 after it (a residual connection's Add + Relu) ------
BINARY = {"AddV2": ("ADD", "AddOptions"), "Add": ("ADD", "AddOptions"), "Sub": ("SUB", "SubOptions"),
          "Mul": ("MUL", "MulOptions")}


def fused_elementwise(view: View, sg: int, index: int) -> Match | None:
    """add.cc, sub.cc and mul.cc clamp their float output by the fused activation like conv does."""
    anchor = (sg, index)
    verdict = view.verdict(anchor)
    out = view.op(anchor).outputs[0]
    nxt = view.sole_reader(sg, out)
    if not verdict.rewritable or nxt is None or view.tf_op(nxt) not in FUSED or not view.verdict(nxt).rewritable:
        return None
    builtin, options = BINARY[view.tf_op(anchor)]
    if verdict.builtin != builtin:
        return None
    activation = ACTIVATION[FUSED[view.tf_op(nxt)]]
    final = view.op(nxt).outputs[0]

    def apply(edit: Edit) -> dict[Key, dict]:
        edit.replace(sg, index, builtin, verdict.version, edit.op(sg, index).inputs, [final],
                     (options, {"fused_activation_function": activation}))
        edit.remove(*nxt)
        return {anchor: {"builtin": builtin, "version": verdict.version},
                nxt: {"builtin": None, "version": None, "fused_into": index}}
    return Match([anchor, nxt], apply)
