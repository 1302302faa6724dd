"""Elementwise math with no builtin of its own, computed by a few exact builtins: the NaN and
finiteness tests, division that gives 0 for 0, reciprocals, int Relu and Softsign, each the way
TensorFlow's kernel computes it (the transcendental functions are in :mod:`.transcendental`).

Each decomposition's formula, builtins and numerical contract are data, in the op's catalog
entry (``decomposition``); tests/test_decompose.py holds every contract against TensorFlow.
"""
from __future__ import annotations

import numpy as np

from ..api import Build, Graph, Node, Rewrite
from .common import catalog_builtin, rules

INF = np.float32(np.inf)


def is_nan(node: Node, g: Graph) -> Rewrite:
    b = Build(node, g)
    x = node.inputs[0]
    return b.rewrite(b.test("NOT_EQUAL", x, x))


def is_finite(node: Node, g: Graph) -> Rewrite:
    b = Build(node, g)      # NaN < inf is false, as IsFinite(NaN) is
    return b.rewrite(b.test("LESS", b("ABS", node.inputs[0]), b.const(INF)))


def div_no_nan(node: Node, g: Graph) -> Rewrite:
    """x / y, and 0 wherever y == 0 whatever x is (math_ops.cc DivNoNan)."""
    b = Build(node, g)
    x, y = node.inputs[:2]
    zero = b.const(0)
    return b.rewrite(b.where(b.test("EQUAL", y, zero), zero, b("DIV", x, y)), main=1)


def reciprocal(node: Node, g: Graph) -> Rewrite:
    b = Build(node, g)
    return b.rewrite(b("DIV", b.const(1), node.inputs[0]))


def relu(node: Node, g: Graph) -> Rewrite:
    """RELU for float32; MAXIMUM(x, 0) for the integer types RELU refuses, as legalize_patterns.td."""
    if node.verdict.builtin:
        return catalog_builtin(node)
    b = Build(node, g)
    return b.rewrite(b("MAXIMUM", node.inputs[0], b.const(0)))


def softsign(node: Node, g: Graph) -> Rewrite:
    """x / (|x| + 1), TensorFlow's own formula (softsign_op.h)."""
    b = Build(node, g)
    x = node.inputs[0]
    return b.rewrite(b("DIV", x, b("ADD", b("ABS", x), b.const(1))))


RULES = {
    **rules("decompose", IsNan=is_nan, IsFinite=is_finite, DivNoNan=div_no_nan,
            Reciprocal=reciprocal, Inv=reciprocal, Softsign=softsign),
    **rules("code", Relu=relu),
}
