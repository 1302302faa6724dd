"""Every per-op rule, by TF op name: the op families of their own modules joined to :mod:`.rules`."""
from .einsum import einsum
from .rules import RULES as _SINGLE_OPS

RULES = {**_SINGLE_OPS, "Einsum": einsum}
