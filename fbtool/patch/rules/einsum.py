"""Einsum with two operands -> BATCH_MATMUL, with TRANSPOSE and RESHAPE around it where needed.

TFLite has no einsum builtin; its converter lowers the equations it can the same way
(tflite/converter/transforms/einsum.cc). Labels sort into four groups: batch (both operands and
the output), contracted (both operands, not the output), and each operand's free labels. Each
operand is laid out as [batch..., free, contracted] (or [batch..., contracted, free], read with
adj_x/adj_y, when that spares a TRANSPOSE), several free or contracted labels are merged by a
RESHAPE, and the product [batch..., free_a, free_b] is reshaped and transposed to the output
order. Multi-head attention's equations (BTNH,BSNH->BNTS and BNTS,BSNH->BTNH) need two
TRANSPOSEs and one BATCH_MATMUL. Dynamic dimensions (-1, a batch) are fine as long as no RESHAPE
would need two of them.
"""
from __future__ import annotations

import numpy as np

from ..api import Const, Graph, Node, NoRule, Rewrite, Step, Temp
from .common import rules


def _parse(equation: str) -> tuple[str, str, str]:
    if "." in equation or "->" not in equation:
        raise NoRule(f"einsum '{equation}': ellipses and implicit outputs are not rewritten")
    lhs, out = equation.replace(" ", "").split("->")
    operands = lhs.split(",")
    if len(operands) != 2:
        raise NoRule(f"einsum '{equation}': only two-operand equations are rewritten")
    a, b = operands
    for labels in (a, b, out):
        if len(set(labels)) != len(labels):
            raise NoRule(f"einsum '{equation}': repeated labels (traces, diagonals) are not rewritten")
    if set(out) - set(a) - set(b) or (set(a) ^ set(b)) - set(out):
        raise NoRule(f"einsum '{equation}': a label summed within one operand is not rewritten")
    return a, b, out


class _Builder:
    """Collects the builtin steps, in order, and the tensors between them."""

    def __init__(self, node: Node, g: Graph):
        self.node, self.g = node, g
        self.steps: list[Step] = []
        self.name = g.name(node.outputs[0])

    def const(self, values: list[int], what: str) -> Const:
        return Const(np.array(values, np.int32), f"{self.name}/{what}")

    def transpose(self, x, shape: list[int], perm: list[int], what: str, out=None):
        if perm == sorted(perm):
            return x, shape
        if len(perm) > 4:   # TRANSPOSE v1 handles up to 4 dims; more needs v5/v6 (op_version.cc)
            raise NoRule("einsum would need a TRANSPOSE of more than 4 dimensions")
        shape = [shape[p] for p in perm]
        y = Temp("float32", tuple(shape), f"{self.name}/{what}") if out is None else out
        self.steps.append(Step("TRANSPOSE", 1, [x, self.const(perm, what + "_perm")], [y]))
        return y, shape

    def reshape(self, x, shape: list[int], new: list[int], what: str, out=None):
        if shape == new and out is None:
            return x, shape
        if sum(d < 0 for d in new) > 1:
            raise NoRule("einsum would need a RESHAPE with two unknown dimensions")
        y = Temp("float32", tuple(new), f"{self.name}/{what}") if out is None else out
        self.steps.append(Step("RESHAPE", 1, [x, self.const(new, what + "_shape")], [y],
                               ("ReshapeOptions", {"new_shape": new})))
        return y, new


def _layout(position: int, labels: str, batch: list, first: list, second: list, build: _Builder, shape):
    """Operand -> [batch..., first, second], or [batch..., second, first] when that needs no
    TRANSPOSE; returns (tensor, swapped), ``swapped`` being BATCH_MATMUL's adj_x/adj_y."""
    dims = dict(zip(labels, shape))
    swapped = [labels.index(c) for c in batch + second + first] == list(range(len(labels)))
    order = batch + second + first if swapped else batch + first + second
    x, cur = build.transpose(build.node.inputs[position], list(shape), [labels.index(c) for c in order],
                             f"in{position}_t")
    groups = (second, first) if swapped else (first, second)
    x, _ = build.reshape(x, cur, [dims[c] for c in batch] + [_prod(dims, g) for g in groups], f"in{position}_r")
    return x, swapped


def _prod(dims: dict, labels: list) -> int:
    """The size of labels merged into one dimension; -1 when one of them is dynamic."""
    n = 1
    for c in labels:
        if dims[c] < 0:
            return -1
        n *= dims[c]
    return n


def einsum(node: Node, g: Graph) -> Rewrite:
    equation = node.attrs.get("equation", "")
    a_labels, b_labels, out = _parse(equation)
    if g.dtype(node.inputs[0]) != "float32" or g.dtype(node.inputs[1]) != "float32":
        raise NoRule("fbtool rewrites Einsum only for float32 operands")
    shapes = [g.shape(node.inputs[0]), g.shape(node.inputs[1])]
    if len(shapes[0]) != len(a_labels) or len(shapes[1]) != len(b_labels):
        raise NoRule(f"einsum '{equation}': operand ranks differ from the equation")
    dims = {**dict(zip(a_labels, shapes[0])), **dict(zip(b_labels, shapes[1]))}
    for labels, shape in zip((a_labels, b_labels), shapes):     # a dynamic dim in one operand, known in the other
        dims.update({c: d for c, d in zip(labels, shape) if d >= 0})
    batch = [c for c in out if c in a_labels and c in b_labels]
    contracted = [c for c in a_labels if c in b_labels and c not in out]
    free_a = [c for c in a_labels if c not in b_labels]
    free_b = [c for c in b_labels if c not in a_labels]
    if not (contracted and free_a and free_b):
        raise NoRule(f"einsum '{equation}': not a matrix product (no contracted or free label)")
    build = _Builder(node, g)
    x, adj_x = _layout(0, a_labels, batch, free_a, contracted, build, shapes[0])
    y, adj_y = _layout(1, b_labels, batch, contracted, free_b, build, shapes[1])
    product = [dims[c] for c in batch] + [_prod(dims, free_a), _prod(dims, free_b)]
    result = batch + free_a + free_b
    full = [dims[c] for c in result]
    perm = [result.index(c) for c in out]
    final = node.outputs[0]
    done = full == product and perm == sorted(perm)
    mm = final if done else Temp("float32", tuple(product), f"{build.name}/matmul")
    build.steps.append(Step("BATCH_MATMUL", 1, [x, y], [mm], ("BatchMatMulOptions", {"adj_x": adj_x, "adj_y": adj_y})))
    main = len(build.steps) - 1
    if not done and perm == sorted(perm):
        build.reshape(mm, product, full, "out", out=final)
    elif not done:
        z, _ = build.reshape(mm, product, full, "unmerged")
        build.transpose(z, full, perm, "out", out=final)
    return Rewrite((node.key,), build.steps, main)


RULES = rules("pattern", Einsum=einsum)
