"""Activations TF writes as several elementwise ops and TFLite runs as one builtin.

GELU (exact ``0.5*x*(1+erf(x/sqrt(2)))`` or tanh-approximated) and HARD_SWISH
(``x*relu6(x+3)/6``) are found as a *region*: backwards from the anchor (Erf, Tanh, Relu6) the
elementwise ops with scalar constants between a tensor x and it, forwards up to three more (with a
side branch such as ``0.5*x``) to an output y. A region is accepted only when evaluating it on
sample points reproduces the builtin's formula (within float32 rounding, or float16's when its
constants are stored as float16), so any association order or folding of constants matches and
nothing else does, and when no tensor inside it is read outside it.

PRELU is ``relu(x) - alpha * relu(-x)`` (Keras: Neg, Relu, Mul by -alpha, Relu, AddV2);
LEAKY_RELU also comes as ``max(x, alpha * x)``.
"""
from __future__ import annotations

from math import erf, pi, sqrt

import numpy as np

from ..api import Const, Graph, Node, Pattern, Rewrite, Step

ELEMENTWISE = {"Mul": np.multiply, "RealDiv": np.divide, "AddV2": np.add, "Add": np.add, "Sub": np.subtract,
               "Pow": np.power}
UNARY = {"Erf": np.vectorize(erf), "Tanh": np.tanh, "Relu6": lambda v: np.clip(v, 0, 6)}
SAMPLES = np.linspace(-8, 8, 65)
FORMULAS = {     # anchor -> [(builtin, options, formula)]
    "Erf": [("GELU", ("GeluOptions", {"approximate": False}), lambda v: 0.5 * v * (1 + UNARY["Erf"](v / sqrt(2))))],
    "Tanh": [("GELU", ("GeluOptions", {"approximate": True}),
              lambda v: 0.5 * v * (1 + np.tanh(sqrt(2 / pi) * (v + 0.044715 * v ** 3))))],
    "Relu6": [("HARD_SWISH", None, lambda v: v * np.clip(v + 3, 0, 6) / 6)],
}


def _simple(g: Graph, node: Node | None) -> bool:
    """An elementwise Flex op no rewrite took, whose constant operands are scalars."""
    return node is not None and node.candidate and node.tf_op in ELEMENTWISE and all(
        g.constant(t) is None or g.scalar(t) is not None for t in node.inputs)


def _cone(g: Graph, t: int, depth: int = 5) -> tuple[set, list]:
    """Simple ops that compute ``t``, and the tensors they read (nearest first): candidates for x."""
    ops, tensors, queue = set(), [], [(t, depth)]
    while queue:
        t, d = queue.pop(0)
        if t not in tensors:
            tensors.append(t)
        src = g.producer(t)
        if d == 0 or not _simple(g, src) or src.key in ops:
            continue
        ops.add(src.key)
        queue += [(i, d - 1) for i in src.inputs if g.scalar(i) is None]
    return ops, tensors


def _between(g: Graph, x: int, cone: set) -> set:
    """The ops of ``cone`` that x reaches, when every activation they read is x or comes from them."""
    region, grew = set(), True
    while grew:
        grew = False
        for key in cone - region:
            node = g.at(key[1])
            ins = [t for t in node.inputs if g.scalar(t) is None]
            produced = {o for k in region for o in g.at(k[1]).outputs}
            if ins and all(t == x or t in produced for t in ins):
                region.add(key)
                grew = True
    return region


def _evaluate(g: Graph, region: set, x: int) -> dict[int, np.ndarray]:
    values, pending = {x: SAMPLES}, sorted(region)
    for _ in range(len(pending)):
        for key in list(pending):
            node = g.at(key[1])
            args = [values.get(t, g.scalar(t)) for t in node.inputs]
            if any(a is None for a in args):
                continue
            fn = UNARY.get(node.tf_op) or ELEMENTWISE[node.tf_op]
            with np.errstate(all="ignore"):
                values[node.outputs[0]] = fn(*args)
            pending.remove(key)
    return values


def region_activation(anchor: Node, g: Graph) -> Rewrite | None:
    cone, candidates = _cone(g, anchor.inputs[0])
    for x in candidates:
        if g.dtype(x) != "float32":
            continue
        region = _between(g, x, cone) | {anchor.key}
        if not (region - {anchor.key}) and anchor.inputs[0] != x:
            continue
        found = _forward(g, anchor, region, x, anchor.outputs[0])
        if found:
            return found
    return None


def _forward(g: Graph, anchor: Node, region: set, x: int, frontier: int) -> Rewrite | None:
    region = set(region)
    for _ in range(3):      # (1 + erf) -> * x -> * 0.5, in some order
        nxt = g.sole_reader(frontier)
        if not _simple(g, nxt):
            return None
        region.add(nxt.key)
        for t in nxt.inputs:     # a side branch such as 0.5 * x
            side = g.producer(t) if t not in (frontier, x) else None
            if _simple(g, side) and all(i == x or g.scalar(i) is not None for i in side.inputs):
                region.add(side.key)
        frontier = nxt.outputs[0]
        values = _evaluate(g, region, x)
        # float16 constants (a quantized model's 0.7071 is 0.70703125) match within their precision
        half = any(g.half(t) for k in region for t in g.at(k[1]).inputs)
        rtol, atol = (2e-3, 2e-3) if half else (1e-6, 1e-7)
        for builtin, options, formula in FORMULAS[anchor.tf_op]:
            if frontier in values and np.allclose(values[frontier], formula(SAMPLES), rtol=rtol, atol=atol):
                inner = {t for k in region for t in g.at(k[1]).outputs} - {frontier}
                if not g.only_within(inner, region):
                    return None
                ordered = sorted(region)
                return Rewrite(tuple(ordered), [Step(builtin, 1, [x], [frontier], options)])
    return None


def prelu(anchor: Node, g: Graph) -> Rewrite | None:
    """Neg(x) -> Relu -> Mul(c) -> Add(., Relu(x)): PRELU(x, alpha = -c) (or Sub and alpha = c)."""
    x = anchor.inputs[0]
    relu_neg = g.sole_reader(anchor.outputs[0])
    if relu_neg is None or not relu_neg.candidate or relu_neg.tf_op != "Relu":
        return None
    mul = g.sole_reader(relu_neg.outputs[0])
    if mul is None or not mul.candidate or mul.tf_op != "Mul":
        return None
    c = next((g.constant(t) for t in mul.inputs if t != relu_neg.outputs[0]), None)
    combine = g.sole_reader(mul.outputs[0])
    if c is None or combine is None or not combine.candidate or combine.tf_op not in ("AddV2", "Add", "Sub"):
        return None
    other = next((t for t in combine.inputs if t != mul.outputs[0]), None)
    relu_x = g.producer(other) if other is not None else None
    if relu_x is None or not relu_x.candidate or relu_x.tf_op != "Relu" or relu_x.inputs[0] != x \
            or g.sole_reader(relu_x.outputs[0]) is None:
        return None
    if combine.tf_op == "Sub" and combine.inputs[0] != other:
        return None
    alpha = (c if combine.tf_op == "Sub" else -c).astype(np.float32)
    shape = g.shape(x)
    if alpha.ndim > len(shape) or (alpha.size > 1 and alpha.shape[-1] != shape[-1]):
        return None
    ops = (anchor.key, relu_neg.key, mul.key, relu_x.key, combine.key)
    return Rewrite(ops, [Step("PRELU", 1, [x, Const(alpha, f"{g.name(combine.outputs[0])}/alpha")],
                              list(combine.outputs))])


def leaky_maximum(anchor: Node, g: Graph) -> Rewrite | None:
    """Maximum(x, Mul(x, a)) with 0 <= a <= 1: LEAKY_RELU(alpha = a)."""
    for position in (0, 1):
        x, other = anchor.inputs[position], anchor.inputs[1 - position]
        mul = g.producer(other)
        if mul is None or not mul.candidate or mul.tf_op != "Mul" or x not in mul.inputs \
                or g.sole_reader(other) is None:
            continue
        a = g.scalar(mul.inputs[1 - mul.inputs.index(x)])
        if a is not None and 0 <= a <= 1 and g.dtype(x) == "float32":
            return Rewrite((mul.key, anchor.key), [Step("LEAKY_RELU", 1, [x], list(anchor.outputs),
                                                        ("LeakyReluOptions", {"alpha": a}))], main=0)
    return None


PATTERNS = [
    Pattern("gelu", frozenset({"Erf", "Tanh"}), region_activation, "GELU in either of tf.nn.gelu's forms"),
    Pattern("hard_swish", frozenset({"Relu6"}), region_activation, "x * relu6(x + 3) / 6"),
    Pattern("prelu", frozenset({"Neg"}), prelu, "relu(x) - alpha * relu(-x)"),
    Pattern("leaky_relu", frozenset({"Maximum"}), leaky_maximum, "max(x, alpha * x)"),
]
