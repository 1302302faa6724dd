"""Every rule and pattern ``fbtool patch`` knows, registered here and nowhere else.

- ``RULES``: TF op -> :class:`~..api.Rule`, one per op family module (elementwise, math,
  transcendental, shapes, arrange, reduce, linear, linalg, identity, einsum, preprocessing); a
  later module's rule for an op replaces an earlier one's.
- ``PATTERNS``: tried in this order, at every anchor op, before the per-op rules; a pattern that
  takes more ops comes before one that takes fewer of them (a conv's Relu6 belongs to the conv
  before HARD_SWISH may look at it).
See docs/rewrites.md for how to add one.
"""
from ..api import Pattern, Rule
from . import (activations, arrange, einsum, elementwise, fusion, identity, linalg, linear, math, preprocessing, reduce,
               shapes, transcendental)

RULES: dict[str, Rule] = {**elementwise.RULES, **math.RULES, **transcendental.RULES, **shapes.RULES, **arrange.RULES,
                          **reduce.RULES, **linear.RULES, **linalg.RULES, **identity.RULES, **einsum.RULES,
                          **preprocessing.RULES}
PATTERNS: list[Pattern] = [*fusion.PATTERNS[:1], *activations.PATTERNS, *fusion.PATTERNS[1:]]
