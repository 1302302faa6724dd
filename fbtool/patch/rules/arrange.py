"""Roll and Cumprod: data moved or accumulated along an axis, by SLICE, CONCATENATION and MUL.

Roll (manip_ops.cc): ``roll(x, s, a)`` moves element i to (i + s) mod n along axis a; several
(shift, axis) pairs apply one after the other. With a static dimension and a constant shift it is
the converter's own lowering, two SLICEs and a CONCATENATION; otherwise (the dimension is dynamic,
or the shift is a tensor) the SLICE bounds are computed in the graph from SHAPE and FLOOR_MOD.

Cumprod (scan_ops.h) multiplies in order along the axis: UNPACK, a running MUL, PACK, so every
product is formed exactly as TensorFlow forms it (a log-depth scan would round differently).
"""
from __future__ import annotations

import numpy as np

from ..api import Build, Graph, Node, NoRule, Rewrite
from .common import constant, dtype_code, rules

MAX_CUMPROD = 256       # elements along the axis: one MUL each


def _axes(node: Node, g: Graph, position: int, rank: int) -> list[int]:
    axes = [int(a) for a in constant(node, g, position).ravel()]
    if any(not -rank <= a < rank for a in axes):
        raise NoRule(f"axis out of range for rank {rank}")
    return [a % rank for a in axes]


def _slice(b: Build, x, begin, size, shape):
    return b("SLICE", x, begin, size, shape=shape)


def roll(node: Node, g: Graph) -> Rewrite:
    b = Build(node, g)
    x, shift_t = node.inputs[0], node.inputs[1]
    shape = list(g.shape(x))
    rank = len(shape)
    axes = _axes(node, g, 2, rank)
    shifts = g.constant(shift_t)
    if shifts is not None and shifts.size != len(axes) and shifts.size != 1:
        raise NoRule("Roll's shift and axis differ in length")
    if shifts is None and len(axes) > 1 and len(g.shape(shift_t)) != 1:
        raise NoRule("Roll's shift tensor does not match its axes")
    y = x
    for k, axis in enumerate(axes):
        if shifts is not None and shape[axis] >= 0:
            y = _roll_static(b, y, int(shifts.ravel()[k if shifts.size > 1 else 0]), axis, shape)
        else:
            y = _roll_dynamic(b, y, shift_t, k, axis, shape)
    if y is x:
        raise NoRule("every shift is a multiple of its dimension: an Identity")
    return b.rewrite(y)


def _roll_static(b: Build, x, shift: int, axis: int, shape: list):
    n = shape[axis]
    s = shift % n if n else 0
    if s == 0:
        return x
    rank = len(shape)
    begin_tail, begin_head = [0] * rank, [0] * rank
    begin_tail[axis] = n - s
    size_tail, size_head = [-1] * rank, [-1] * rank
    size_tail[axis], size_head[axis] = s, n - s
    tail = _slice(b, x, b.const(begin_tail, "int32"), b.const(size_tail, "int32"),
                  [s if i == axis else d for i, d in enumerate(shape)])
    head = _slice(b, x, b.const(begin_head, "int32"), b.const(size_head, "int32"),
                  [n - s if i == axis else d for i, d in enumerate(shape)])
    return b("CONCATENATION", tail, head, shape=shape, options=("ConcatenationOptions", {"axis": axis}))


def _roll_dynamic(b: Build, x, shift_t, k: int, axis: int, shape: list):
    """The same two slices with bounds computed at run time: s = shift mod max(n, 1)."""
    rank = len(shape)
    dims = b("SHAPE", x, shape=[rank], dtype="int32", options=("ShapeOptions", {"out_type": dtype_code("int32")}))
    n = b("GATHER", dims, b.const(axis, "int32"), shape=[], options=("GatherOptions", {"axis": 0, "batch_dims": 0}))
    shift = shift_t
    if b.dtype(shift) != "int32":
        shift = b("CAST", shift, dtype="int32")
    if len(b.shape(shift_t)) == 1:
        shift = b("GATHER", shift, b.const(k, "int32"), shape=[],
                  options=("GatherOptions", {"axis": 0, "batch_dims": 0}))
    s = b("FLOOR_MOD", shift, b("MAXIMUM", n, b.const(1, "int32")))
    rest = b("SUB", n, s)
    one_hot = b.const(np.eye(rank, dtype=np.int32)[axis], "int32")
    minus_one = b.const(-1, "int32")
    begin_tail = b("MUL", one_hot, rest)
    size_tail = b("ADD", b("MUL", one_hot, b("ADD", s, b.const(1, "int32"))), minus_one)
    size_head = b("ADD", b("MUL", one_hot, b("ADD", rest, b.const(1, "int32"))), minus_one)
    zeros = b.const(np.zeros(rank, np.int32), "int32")
    unknown = [-1 if i == axis else d for i, d in enumerate(shape)]
    tail = _slice(b, x, begin_tail, size_tail, unknown)
    head = _slice(b, x, zeros, size_head, unknown)
    return b("CONCATENATION", tail, head, shape=shape, options=("ConcatenationOptions", {"axis": axis}))


def cumprod(node: Node, g: Graph) -> Rewrite:
    b = Build(node, g)
    x = node.inputs[0]
    shape = list(g.shape(x))
    (axis,) = _axes(node, g, 1, len(shape))
    n = shape[axis]
    if n < 0:
        raise NoRule("Cumprod along a dynamic dimension is not decomposed")
    if n > MAX_CUMPROD:
        raise NoRule(f"Cumprod along {n} elements would take {n} MULs; fbtool decomposes at most {MAX_CUMPROD}")
    part = [d for i, d in enumerate(shape) if i != axis]
    pieces = b.several("UNPACK", [x], [(b.dtype(x), part)] * n, ("UnpackOptions", {"num": n, "axis": axis}))
    order = pieces[::-1] if node.attrs.get("reverse") else pieces
    if node.attrs.get("exclusive"):
        ones = b("FILL", b("SHAPE", order[0], shape=[len(part)], dtype="int32",
                               options=("ShapeOptions", {"out_type": dtype_code("int32")})), b.const(1, like=x), shape=part)
        order = [ones] + order[:-1]
    running = [order[0]]
    for p in order[1:]:
        running.append(b("MUL", running[-1], p))
    if node.attrs.get("reverse"):
        running = running[::-1]
    return b.rewrite(b("PACK", *running, shape=shape, options=("PackOptions", {"values_count": n, "axis": axis})))


RULES = rules("decompose", Roll=roll, Cumprod=cumprod)
