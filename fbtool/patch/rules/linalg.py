"""MatrixDeterminant of 2x2 and 3x3 matrices (a batch of them too) by its closed form:
ad - bc, and the expansion along the first row for 3x3. The entries come out of one UNPACK of
the matrices flattened to [..., n*n].

TensorFlow computes the determinant by an LU factorisation with partial pivoting
(determinant_op.cc, Eigen PartialPivLU): the closed form rounds differently, both within a few
float32 roundings of the terms' size, which is the contract (``rtol`` of the output's scale).
"""
from __future__ import annotations

from ..api import Build, Graph, Node, NoRule, Rewrite
from .common import rules


def determinant(node: Node, g: Graph) -> Rewrite:
    b = Build(node, g)
    x = node.inputs[0]
    shape = list(g.shape(x))
    if len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] not in (2, 3):
        raise NoRule("MatrixDeterminant is decomposed for static 2x2 and 3x3 matrices")
    n, batch = shape[-1], shape[:-2]
    if sum(d < 0 for d in batch) > 1:
        raise NoRule("MatrixDeterminant: more than one dynamic batch dimension")
    flat = b("RESHAPE", x, b.const(batch + [n * n], "int32"), shape=batch + [n * n],
             options=("ReshapeOptions", {"new_shape": batch + [n * n]}))
    m = b.several("UNPACK", [flat], [(b.dtype(x), batch)] * (n * n),
                  ("UnpackOptions", {"num": n * n, "axis": len(batch)}))
    if n == 2:
        return b.rewrite(b("SUB", b("MUL", m[0], m[3]), b("MUL", m[1], m[2])))
    a, bb, c, d, e, f, gg, h, i = m
    minor = lambda p, q, r, s: b("SUB", b("MUL", p, q), b("MUL", r, s))   # noqa: E731  p*q - r*s
    first = b("MUL", a, minor(e, i, f, h))
    second = b("MUL", bb, minor(d, i, f, gg))
    third = b("MUL", c, minor(d, h, e, gg))
    return b.rewrite(b("ADD", b("SUB", first, second), third))


RULES = rules("decompose", MatrixDeterminant=determinant)
