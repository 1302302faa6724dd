"""Every rule and pattern: the op families and patterns of their own modules joined to :mod:`.rules`
and :mod:`.patterns`. Patterns are tried in this order, before the per-op rules."""
from . import linear, rules
from .einsum import einsum
from .gelu import gelu
from .patterns import BINARY, LINEAR, Pattern, fused_elementwise, fused_linear

RULES = {**rules.RULES, **linear.RULES, "Einsum": einsum}
PATTERNS = [
    Pattern("fuse_bias_activation", frozenset(LINEAR), fused_linear),
    Pattern("gelu", frozenset({"Erf", "Tanh"}), gelu),
    Pattern("fuse_activation", frozenset(BINARY), fused_elementwise),
]
