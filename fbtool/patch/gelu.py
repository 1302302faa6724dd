"""GELU, exact ``0.5*x*(1+erf(x/sqrt(2)))`` or tanh-approximated
``0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))``, as TF writes them in whatever order.

The anchor is the Erf or Tanh. The region is found on the graph: backwards, the elementwise ops
with scalar constants between a tensor x and the anchor; forwards, up to three such ops (with a
side branch like ``0.5*x``) to an output y. A region is accepted only when evaluating it on sample
points reproduces GELU (so any association order or folding of constants matches, and nothing
else does), and when no tensor inside it is read outside it.
"""
from __future__ import annotations

from math import erf, pi, sqrt

import numpy as np

from .edit import Edit
from .patterns import Key, Match, View

ELEMENTWISE = {"Mul": np.multiply, "RealDiv": np.divide, "AddV2": np.add, "Add": np.add, "Sub": np.subtract,
               "Pow": np.power}
UNARY = {"Erf": np.vectorize(erf), "Tanh": np.tanh}
FORMULAS = {   # approximate flag -> GELU
    False: lambda v: 0.5 * v * (1 + np.vectorize(erf)(v / sqrt(2))),
    True: lambda v: 0.5 * v * (1 + np.tanh(sqrt(2 / pi) * (v + 0.044715 * v ** 3))),
}
SAMPLES = np.linspace(-4, 4, 33)


def _scalar(view: View, sg: int, t: int) -> float | None:
    c = view.constant_index(sg, t)
    return float(c.ravel()[0]) if c is not None and c.size == 1 else None


def _simple(view: View, sg: int, key: Key) -> bool:
    """An elementwise Flex op whose constant operands are scalars."""
    return view.tf_op(key) in ELEMENTWISE and all(
        view.constant_index(sg, t) is None or _scalar(view, sg, t) is not None for t in view.op(key).inputs)


def _cone(view: View, sg: int, t: int, depth: int = 5) -> tuple[set, list]:
    """Simple ops that compute ``t``, and the tensors they read (nearest first): candidates for x."""
    ops, tensors, queue = set(), [], [(t, depth)]
    while queue:
        t, d = queue.pop(0)
        if t not in tensors:
            tensors.append(t)
        src = view.producer(sg, t)
        if d == 0 or src is None or src in ops or not _simple(view, sg, src):
            continue
        ops.add(src)
        queue += [(i, d - 1) for i in view.op(src).inputs if _scalar(view, sg, i) is None]
    return ops, tensors


def _between(view: View, sg: int, x: int, cone: set) -> set:
    """The ops of ``cone`` that x reaches, when every activation they read is x or comes from them."""
    region, grew = set(), True
    while grew:
        grew = False
        for key in cone - region:
            ins = [t for t in view.op(key).inputs if _scalar(view, sg, t) is None]
            produced = {o for k in region for o in view.op(k).outputs}
            if ins and all(t == x or t in produced for t in ins):
                region.add(key)
                grew = True
    return region


def _evaluate(view: View, sg: int, region: set, x: int) -> dict[int, np.ndarray]:
    values, pending = {x: SAMPLES}, sorted(region)
    for _ in range(len(pending)):
        for key in list(pending):
            op = view.op(key)
            args = [values.get(t, _scalar(view, sg, t)) for t in op.inputs]
            if any(a is None for a in args):
                continue
            fn = UNARY.get(view.tf_op(key)) or ELEMENTWISE[view.tf_op(key)]
            with np.errstate(all="ignore"):
                values[op.outputs[0]] = fn(*args)
            pending.remove(key)
    return values


def _which_gelu(values: dict, y: int) -> bool | None:
    for approximate, formula in FORMULAS.items():
        if y in values and np.allclose(values[y], formula(SAMPLES), rtol=1e-6, atol=1e-7):
            return approximate
    return None


def gelu(view: View, sg: int, index: int) -> Match | None:
    anchor = (sg, index)
    cone, candidates = _cone(view, sg, view.op(anchor).inputs[0])
    for x in candidates:
        if view.model.subgraphs[sg].tensors[x].dtype != "float32":
            continue
        region = _between(view, sg, x, cone) | {anchor}
        if not (region - {anchor}) and view.op(anchor).inputs[0] != x:
            continue
        found = _forward(view, sg, region, x, view.op(anchor).outputs[0])
        if found:
            return found
    return None


def _forward(view: View, sg: int, region: set, x: int, frontier: int) -> Match | None:
    region = set(region)
    for _ in range(3):      # (1 + erf) -> * x -> * 0.5, in some order
        nxt = view.sole_reader(sg, frontier)
        if nxt is None or not _simple(view, sg, nxt):
            return None
        region.add(nxt)
        for t in view.op(nxt).inputs:     # a side branch such as 0.5 * x
            side = view.producer(sg, t) if t not in (frontier, x) else None
            if side and _simple(view, sg, side) and all(
                    i == x or _scalar(view, sg, i) is not None for i in view.op(side).inputs):
                region.add(side)
        frontier = view.op(nxt).outputs[0]
        approximate = _which_gelu(_evaluate(view, sg, region, x), frontier)
        if approximate is not None:
            return _match(view, sg, region, x, frontier, approximate)
    return None


def _match(view: View, sg: int, region: set, x: int, y: int, approximate: bool) -> Match | None:
    inner = {t for k in region for t in view.op(k).outputs} - {y}
    if any(view.sole_reader(sg, t) not in region for t in inner):
        return None
    ordered = sorted(region)

    def apply(edit: Edit) -> dict[Key, dict]:
        first = ordered[0]
        edit.replace(sg, first[1], "GELU", 1, [x], [y], ("GeluOptions", {"approximate": approximate}))
        for key in ordered[1:]:
            edit.remove(*key)
        return {first: {"builtin": "GELU", "version": 1},
                **{k: {"builtin": None, "version": None, "fused_into": first[1]} for k in ordered[1:]}}
    return Match(ordered, apply)
