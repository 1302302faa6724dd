"""What rules share: the schema's enums, constant operands, and rules made from a table of options."""
from __future__ import annotations

import numpy as np

from ...reader.model import SCHEMA
from ..api import Graph, Node, NoRule, Rewrite, Rule

TENSOR_TYPE = SCHEMA.enums["TensorType"]
PADDING = SCHEMA.enums["Padding"]
ACTIVATION = SCHEMA.enums["ActivationFunctionType"]


def dtype_code(name: str) -> int:
    return TENSOR_TYPE[name.upper()]


def constant(node: Node, g: Graph, position: int) -> np.ndarray:
    """A constant operand's values, as stored or dequantized (NoRule when it is not one)."""
    values = g.constant(node.inputs[position]) if position < len(node.inputs) else None
    if values is None:
        raise NoRule(f"input {position} is not a constant fbtool can read")
    return values


def constant_list(node: Node, g: Graph, position: int) -> list:
    return constant(node, g, position).ravel().tolist()


def catalog_builtin(node: Node, inputs=None, options=None, outputs=None) -> Rewrite:
    """The builtin and version the catalog judged the op to become."""
    v = node.verdict
    return Rewrite.one(node, v.builtin, v.version or 1, node.inputs if inputs is None else inputs, outputs, options)


def with_options(table: str, **fields) -> callable:
    """A rule: the catalog's builtin with these options, each an attr name or a function of the attrs."""
    def rewrite(node: Node, g: Graph) -> Rewrite:
        values = {k: v(node.attrs) if callable(v) else node.attrs.get(v, 0) for k, v in fields.items()}
        return catalog_builtin(node, options=(table, values))
    return rewrite


def rules(kind: str, **table) -> dict[str, Rule]:
    """``{tf_op: Rule}`` for rewrite functions of one catalog kind."""
    return {tf_op: Rule(tf_op, fn, kind) for tf_op, fn in table.items()}
