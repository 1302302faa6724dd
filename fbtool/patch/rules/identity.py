"""Identity and its kin (StopGradient, Snapshot, ...) have no builtin: they disappear, and their
readers read their input. A tensor the outside world names keeps its index (see
:meth:`fbtool.patch.edit.Edit.bypass`); where only a copy can write it, a same-type CAST copies."""
from __future__ import annotations

from ..api import Bypass, Graph, Node, NoRule, Rule
from ..edit import Op
from .common import dtype_code

COPYABLE = ("float32", "int32", "int64", "int16", "int8", "uint8", "bool", "float16")
PASS_THROUGH = ("Identity", "StopGradient", "Snapshot", "PreventGradient", "IdentityN", "CheckNumerics", "NoOp")


def bypass(node: Node, g: Graph) -> Bypass:
    if len(node.inputs) < len(node.outputs):
        raise NoRule(f"{len(node.outputs)} outputs from {len(node.inputs)} inputs: not a pass-through")
    return Bypass(node.key)


def copy_op(g: Graph, src: int, out: int) -> Op:
    """A pinned tensor that must stay a tensor of its own: a CAST to the same type, which copies."""
    dtype = g.dtype(out)
    if dtype not in COPYABLE:
        raise NoRule(f"a model input or output of type {dtype} would need a copy, and CAST does not copy {dtype}")
    options = ("CastOptions", {"in_data_type": dtype_code(dtype), "out_data_type": dtype_code(dtype)})
    return Op(None, ("CAST", 1), (src,), (out,), options)


RULES = {op: Rule(op, bypass, "remove") for op in PASS_THROUGH}
