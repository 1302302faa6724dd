"""Every rule and pattern ``fbtool patch`` knows, registered here and nowhere else.

- ``RULES``: TF op -> :class:`~..api.Rule`, one per op family module (elementwise, math,
  transcendental, shapes, reduce, linear, identity, einsum); a later module's rule for an op
  replaces an earlier one's.
- ``PATTERNS``: tried in this order, at every anchor op, before the per-op rules; a pattern that
  takes more ops comes before one that takes fewer of them (a conv's Relu6 belongs to the conv
  before HARD_SWISH may look at it).
See docs/rewrites.md for how to add one.
"""
from ..api import Pattern, Rule
from . import activations, einsum, elementwise, fusion, identity, linear, math, reduce, shapes, transcendental

RULES: dict[str, Rule] = {**elementwise.RULES, **math.RULES, **transcendental.RULES, **shapes.RULES, **reduce.RULES, **linear.RULES,
                          **identity.RULES, **einsum.RULES}
PATTERNS: list[Pattern] = [*fusion.PATTERNS[:1], *activations.PATTERNS, *fusion.PATTERNS[1:]]
