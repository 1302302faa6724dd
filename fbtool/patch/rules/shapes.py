"""Ops that move data around: shape, pack, split, concat, gather, slice, squeeze, resize, space and
depth. Constant operands that TFLite takes as options (ConcatV2's axis, GatherV2's axis) move there."""
from __future__ import annotations

from ...reader.model import SCHEMA
from ..api import Build, Graph, Node, NoRule, Rewrite
from .common import catalog_builtin, constant_list, dtype_code, rules, with_options


def concat(node: Node, g: Graph) -> Rewrite:
    (axis,) = constant_list(node, g, len(node.inputs) - 1)
    return catalog_builtin(node, node.inputs[:-1], ("ConcatenationOptions", {"axis": axis}))


def gather(node: Node, g: Graph) -> Rewrite:
    (axis,) = constant_list(node, g, 2)
    return catalog_builtin(node, node.inputs[:2], ("GatherOptions", {"axis": axis,
                                                                      "batch_dims": node.attrs.get("batch_dims", 0)}))


def _resize(table: str):
    return with_options(table, align_corners=lambda a: bool(a.get("align_corners")),
                        half_pixel_centers=lambda a: bool(a.get("half_pixel_centers")))


def size(node: Node, g: Graph) -> Rewrite:
    """Size(x) -> REDUCE_PROD(SHAPE(x)), as the converter lowers it."""
    b = Build(node, g)
    out_type = node.attrs.get("out_type", "int32")
    dims = b("SHAPE", node.inputs[0], dtype=out_type, shape=[len(g.shape(node.inputs[0]))],
             options=("ShapeOptions", {"out_type": dtype_code(out_type)}))
    return b.rewrite(b("REDUCE_PROD", dims, b.const([0], "int32"), shape=[], options=("ReducerOptions", {"keep_dims": False})))


def rfft(node: Node, g: Graph) -> Rewrite:
    """RFFT on the last axis as RFFT2D over [1, n], as the converter does (prepare_tf.cc)."""
    x = node.inputs[0]
    shape = list(g.shape(x))
    (n,) = constant_list(node, g, 1) if g.constant(node.inputs[1]) is not None and \
        g.constant(node.inputs[1]).size == 1 else (None,)
    if not shape or n is None or n < 2 or n & (n - 1) or shape[-1] < n:
        raise NoRule("RFFT is rewritten for a constant power-of-two fft_length within the last dimension")
    if sum(d < 0 for d in shape) > 1:
        raise NoRule("RFFT: more than one dynamic dimension")
    b = Build(node, g)
    tall = shape[:-1] + [1, shape[-1]]
    y = b("RESHAPE", x, b.const(tall, "int32"), shape=tall, options=("ReshapeOptions", {"new_shape": tall}))
    spectrum = shape[:-1] + [1, n // 2 + 1]
    y = b("RFFT2D", y, b.const([1, n], "int32"), dtype="complex64", shape=spectrum)
    out = shape[:-1] + [n // 2 + 1]
    return b.rewrite(b("RESHAPE", y, b.const(out, "int32"), shape=out, options=("ReshapeOptions", {"new_shape": out})),
                     main=1)


RULES = rules(
    "options",
    Shape=with_options("ShapeOptions", out_type=lambda a: dtype_code(a["out_type"])),
    Pack=with_options("PackOptions", values_count="N", axis="axis"),
    Unpack=with_options("UnpackOptions", num="num", axis="axis"),
    Squeeze=with_options("SqueezeOptions", squeeze_dims=lambda a: a.get("squeeze_dims", [])),
    DepthToSpace=with_options("DepthToSpaceOptions", block_size="block_size"),
    SpaceToDepth=with_options("SpaceToDepthOptions", block_size="block_size"),
    MirrorPad=with_options("MirrorPadOptions", mode=lambda a: SCHEMA.enums["MirrorPadMode"][a["mode"]]),
    OneHot=with_options("OneHotOptions", axis="axis"),
    Split=with_options("SplitOptions", num_splits="num_split"),
    SplitV=with_options("SplitVOptions", num_splits="num_split"),
    ResizeBilinear=_resize("ResizeBilinearOptions"),
    ResizeNearestNeighbor=_resize("ResizeNearestNeighborOptions"),
    StridedSlice=with_options("StridedSliceOptions", **{m: m for m in (
        "begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}),
    ConcatV2=concat,
    GatherV2=gather,
)
RULES.update(rules("decompose", Size=size, RFFT=rfft))
