"""Reductions, arg-extrema and pools: the TF attributes become the builtin's options."""
from __future__ import annotations

from ..api import Graph, Node, Rewrite
from .common import PADDING, catalog_builtin, dtype_code, rules, with_options


def pool(node: Node, g: Graph) -> Rewrite:
    a = node.attrs
    return catalog_builtin(node, options=("Pool2DOptions", {
        "padding": PADDING[a["padding"]], "stride_h": a["strides"][1], "stride_w": a["strides"][2],
        "filter_height": a["ksize"][1], "filter_width": a["ksize"][2]}))


_keep_dims = with_options("ReducerOptions", keep_dims=lambda a: bool(a.get("keep_dims")))
RULES = rules(
    "options",
    MaxPool=pool, AvgPool=pool,
    ArgMax=with_options("ArgMaxOptions", output_type=lambda a: dtype_code(a["output_type"])),
    ArgMin=with_options("ArgMinOptions", output_type=lambda a: dtype_code(a["output_type"])),
    **{op: _keep_dims for op in ("Mean", "Sum", "Max", "Min", "Prod", "Any", "All")},
)
