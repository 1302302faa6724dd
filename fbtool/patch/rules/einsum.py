"""Einsum with two operands -> BATCH_MATMUL, with TRANSPOSE and RESHAPE around it where needed.

TFLite has no einsum builtin; its converter lowers the equations it can the same way
(tflite/converter/transforms/einsum.cc). Labels sort into four groups: batch (both operands and
the output), contracted (both operands, not the output), and each operand's free labels. Each
operand is laid out as [batch..., free, contracted] (or [batch..., contracted, free], read with
adj_x/adj_y, when that spares a TRANSPOSE), several free or contracted labels are merged by a
RESHAPE, and the product [batch..., free_a, free_b] is reshaped and transposed to the output
order. Multi-head attention's equations (BTNH,BSNH->BNTS and BNTS,BSNH->BTNH) need two
TRANSPOSEs and one BATCH_MATMUL. Dynamic dimensions (-1, a batch) are fine as long as no RESHAPE
would need two of them. One operand (which the converter leaves Flex when it repeats a label):
a diagonal is a GATHER on the two dimensions merged, labels the output lacks are summed (a trace
is both), and a TRANSPOSE gives the output's order.
"""
from __future__ import annotations

import numpy as np

from ..api import Build, Const, Graph, Node, NoRule, Rewrite, Step, Temp
from .common import rules


def _parse(equation: str) -> tuple[list[str], str]:
    if "." in equation or "->" not in equation:
        raise NoRule(f"einsum '{equation}': ellipses and implicit outputs are not rewritten")
    lhs, out = equation.replace(" ", "").split("->")
    operands = lhs.split(",")
    if len(operands) > 2:
        raise NoRule(f"einsum '{equation}': equations of more than two operands are not rewritten")
    if len(set(out)) != len(out) or set(out) - set(lhs):
        raise NoRule(f"einsum '{equation}': not a valid output")
    return operands, out


def _parse_two(equation: str, operands: list[str], out: str) -> tuple[str, str, str]:
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
    operands, out = _parse(equation)
    if any(g.dtype(t) != "float32" for t in node.inputs):
        raise NoRule("fbtool rewrites Einsum only for float32 operands")
    if len(operands) == 1:
        return _one_operand(node, g, operands[0], out, equation)
    a_labels, b_labels, out = _parse_two(equation, operands, out)
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


def _one_operand(node: Node, g: Graph, labels: str, out: str, equation: str) -> Rewrite:
    """A diagonal (a label twice) by GATHER on the two dimensions merged, sums over labels the output
    lacks, and a TRANSPOSE into the output's order."""
    b = Build(node, g)
    x, shape, labels = node.inputs[0], list(g.shape(node.inputs[0])), list(labels)
    if len(shape) != len(labels):
        raise NoRule(f"einsum '{equation}': operand rank differs from the equation")
    while len(set(labels)) < len(labels):
        c = next(c for c in labels if labels.count(c) > 1)
        i, j = [k for k, d in enumerate(labels) if d == c][:2]
        n = shape[i]
        if labels.count(c) > 2 or n < 0 or shape[j] != n or sum(d < 0 for d in shape) > 0:
            raise NoRule(f"einsum '{equation}': a diagonal is taken only of static, square dimensions")
        rest = [k for k in range(len(labels)) if k not in (i, j)]
        x = _transpose(b, x, shape, rest + [i, j])
        x = b("RESHAPE", x, b.const([shape[k] for k in rest] + [n * n], "int32"),
              options=("ReshapeOptions", {"new_shape": [shape[k] for k in rest] + [n * n]}),
              shape=[shape[k] for k in rest] + [n * n])
        shape, labels = [shape[k] for k in rest] + [n], [labels[k] for k in rest] + [c]
        x = b("GATHER", x, b.const(np.arange(n) * (n + 1), "int32"), shape=shape,
              options=("GatherOptions", {"axis": len(shape) - 1, "batch_dims": 0}))
    summed = [k for k, c in enumerate(labels) if c not in out]
    if summed:
        kept = [k for k in range(len(labels)) if k not in summed]
        x = b("SUM", x, b.const(summed, "int32"), options=("ReducerOptions", {"keep_dims": False}),
              shape=[shape[k] for k in kept])
        shape, labels = [shape[k] for k in kept], [labels[k] for k in kept]
    x = _transpose(b, x, shape, [labels.index(c) for c in out])
    if not b.steps:
        raise NoRule(f"einsum '{equation}' changes nothing: an Identity")
    return b.rewrite(x)


def _transpose(b: Build, x, shape: list, perm: list):
    if perm == sorted(perm):
        return x
    if len(perm) > 4:      # TRANSPOSE v1 handles up to 4 dims (op_version.cc)
        raise NoRule("einsum would need a TRANSPOSE of more than 4 dimensions")
    return b("TRANSPOSE", x, b.const(perm, "int32"), shape=[shape[p] for p in perm])


RULES = rules("decompose", Einsum=einsum)
