"""Ops that move data around: shape, pack, split, concat, gather, slice, squeeze, resize, space and
depth. Constant operands that TFLite takes as options (ConcatV2's axis, GatherV2's axis) move there."""
from __future__ import annotations

from ...reader.model import SCHEMA
from ..api import Graph, Node, Rewrite
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
