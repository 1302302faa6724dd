"""Softplus, Selu, Erf, Sinh and Cosh from builtins, in forms that neither overflow nor cancel
where TensorFlow's kernels do not.

Only exactly rounded builtins (ADD, MUL, DIV, comparisons, SELECT_V2) carry the delicate parts:
near 0 the functions are polynomials, and EXP/LOG appear only where their relative error passes
through unamplified. That matters because XNNPACK, LiteRT's default delegate, evaluates EXP and
LOG by approximations of a few ulp: a trick that divides two nearly equal logarithms (Kahan's
expm1 and log1p) is exact on LiteRT's reference kernels and off by a third under XNNPACK.
XNNPACK's EXP also turns NaN into infinity, so each function passes NaN through explicitly.

Formulas, builtins and the numerical contract of each are in its catalog entry (``decomposition``);
tests/test_decompose.py holds them against TensorFlow on both kernel sets.
"""
from __future__ import annotations

from math import factorial

import numpy as np

from ..api import Build, Graph, Node, Rewrite
from .common import rules

F32 = np.float32
# Eigen's generic_fast_erf_float, which TensorFlow 2.18.1's Erf kernel runs for float32:
# x * P(x^2) / Q(x^2) for |x| < ERF_CLAMP, sign(x) beyond (coefficients highest power first).
ERF_CLAMP = F32(3.832506856900711)
ERF_P = [F32(v) for v in (0.00022905065861350646, 0.0034082910107109506, 0.050955695062380861,
                          0.18520832239976145, 1.128379143519084)]
ERF_Q = [F32(v) for v in (-1.1791602954361697e-7, 0.000023547966471313185, 0.0010179625278914885,
                          0.014070470171167667, 0.11098505178285362, 0.49746925110067538, 1.0)]
SELU_SCALE = F32(1.0507009873554804934193349852946)            # relu_op_functor.h
SELU_SCALE_ALPHA = F32(1.7580993408473768599402175208123)
SOFTPLUS_T = np.log(np.finfo(F32).eps, dtype=F32) + F32(2)     # softplus_op.h: log(epsilon) + 2
# Taylor coefficients, highest power first; truncation below 1e-9 relative on the ranges used
SINH_SMALL = [F32(1 / factorial(n)) for n in (11, 9, 7, 5, 3, 1)]        # x * P(x^2), |x| < 0.5
EXPM1_SMALL = [F32(1 / factorial(n)) for n in range(10, 0, -1)]          # x * P(x), |x| < 0.5
LOG1P_ODD = [F32(2 / n) for n in range(15, 0, -2)]      # log1p(v) = s * P(s^2), s = v / (2 + v) <= 1/3


def polynomial(b: Build, v, coefficients):
    """Horner's rule in v, highest power first."""
    acc = b.const(coefficients[0])
    for c in coefficients[1:]:
        acc = b("ADD", b("MUL", acc, v), b.const(c))
    return acc


def nan_through(b: Build, x, result):
    """NaN where x is NaN, whatever the approximations made of it."""
    return b.where(b.test("NOT_EQUAL", x, x), x, result)


def expm1(b: Build, x):
    """exp(x) - 1 for x <= 0: a polynomial above -0.5, where EXP(x) - 1 cancels, EXP below."""
    near = b("MUL", x, polynomial(b, x, EXPM1_SMALL))
    far = b("SUB", b("EXP", x), b.const(1))
    return b.where(b.test("GREATER", x, b.const(-0.5)), near, far)


def log1p(b: Build, v):
    """log(1 + v) for 0 <= v <= 1 by the series of 2 atanh(v / (2 + v)): no LOG at all."""
    s = b("DIV", v, b("ADD", v, b.const(2)))
    return b("MUL", s, polynomial(b, b("MUL", s, s), LOG1P_ODD))


def half_exp(b: Build, a):
    """exp(a) / 2 as (exp(a/2) / 2) * exp(a/2): finite up to a = 89.4, where exp(a) overflows at 88.7."""
    t = b("EXP", b("MUL", a, b.const(0.5)))
    return b("MUL", b("MUL", t, b.const(0.5)), t)


def softplus(node: Node, g: Graph) -> Rewrite:
    """TensorFlow's branches (softplus_op.h): x above -t, exp(x) below t, and between them
    max(x, 0) + log1p(exp(-|x|)), t = log(float32 epsilon) + 2. Nothing overflows (the converter's
    own LOG(EXP(x) + 1) is inf from x = 89 on and 0 below x = -104)."""
    b = Build(node, g)
    x = node.inputs[0]
    middle = b("ADD", b("MAXIMUM", x, b.const(0)), log1p(b, b("EXP", b("NEG", b("ABS", x)))))
    low = b.where(b.test("LESS", x, b.const(SOFTPLUS_T)), b("EXP", x), middle)
    return b.rewrite(nan_through(b, x, b.where(b.test("GREATER", x, b.const(-SOFTPLUS_T)), x, low)))


def selu(node: Node, g: Graph) -> Rewrite:
    """scale * x for x >= 0, scale * alpha * expm1(x) below, TensorFlow's constants."""
    b = Build(node, g)
    x = node.inputs[0]
    negative = b("MUL", expm1(b, b("MINIMUM", x, b.const(0))), b.const(SELU_SCALE_ALPHA))
    result = b.where(b.test("LESS", x, b.const(0)), negative, b("MUL", x, b.const(SELU_SCALE)))
    return b.rewrite(nan_through(b, x, result))


def erf(node: Node, g: Graph) -> Rewrite:
    """Erf on its own (inside GELU the pattern takes it first), as TensorFlow computes it."""
    b = Build(node, g)
    x = node.inputs[0]
    x2 = b("MUL", x, x)
    ratio = b("DIV", b("MUL", x, polynomial(b, x2, ERF_P)), polynomial(b, x2, ERF_Q))
    beyond = b.test("GREATER_EQUAL", b("ABS", x), b.const(ERF_CLAMP))
    return b.rewrite(b.where(beyond, b("RELU_N1_TO_1", x), ratio))


def sinh(node: Node, g: Graph) -> Rewrite:
    """An odd polynomial below |x| = 0.5, (e - 1/e) / 2 with e = exp(|x|) up to 9, exp(|x|) / 2
    beyond (exp(-|x|) is below half an ulp there); the sign of x."""
    b = Build(node, g)
    x = node.inputs[0]
    a = b("ABS", x)
    e = b("EXP", a)
    middle = b("MUL", b("SUB", e, b("DIV", b.const(1), e)), b.const(0.5))
    big = b.where(b.test("GREATER", a, b.const(9)), half_exp(b, a), middle)
    signed = b.where(b.test("LESS", x, b.const(0)), b("NEG", big), big)
    small = b("MUL", x, polynomial(b, b("MUL", x, x), SINH_SMALL))
    return b.rewrite(nan_through(b, x, b.where(b.test("LESS", a, b.const(0.5)), small, signed)))


def cosh(node: Node, g: Graph) -> Rewrite:
    """(e + 1/e) / 2 with e = exp(|x|) up to |x| = 9 (no cancellation: both terms are positive),
    exp(|x|) / 2 beyond."""
    b = Build(node, g)
    x = node.inputs[0]
    a = b("ABS", x)
    e = b("EXP", a)
    near = b("MUL", b("ADD", e, b("DIV", b.const(1), e)), b.const(0.5))
    return b.rewrite(nan_through(b, x, b.where(b.test("GREATER", a, b.const(9)), half_exp(b, a), near)))


RULES = rules("decompose", Softplus=softplus, Selu=selu, Erf=erf, Sinh=sinh, Cosh=cosh)
