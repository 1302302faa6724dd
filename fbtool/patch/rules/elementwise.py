"""Ops that keep their inputs: the catalog's ``code`` rewrites (AddV2 -> ADD, Relu6 -> RELU6, ...),
and the few elementwise ops that take options or a constant: Softmax, LeakyRelu, Cast, Cumsum,
OnesLike. Facts from tflite/converter/transforms/legalize_patterns.td and the option structs of
schema.fbs."""
from __future__ import annotations

import numpy as np

from ...flex.catalog import load_catalog
from ..api import NUMPY, Const, Graph, Node, NoRule, Rewrite, Rule, Step, Temp
from .common import catalog_builtin, dtype_code, rules, with_options


def same_inputs(node: Node, g: Graph) -> Rewrite:
    """The catalog's builtin, the op's own inputs, default options."""
    return catalog_builtin(node)


def ones_like(node: Node, g: Graph) -> Rewrite:
    """OnesLike(x) -> FILL(SHAPE(x), 1), as TF's own lowering (lower_tf.td)."""
    x = node.inputs[0]
    dtype = g.dtype(x)
    if dtype not in NUMPY or dtype == "float16":
        raise NoRule(f"OnesLike of {dtype} is not rewritten")
    name = g.name(node.outputs[0])
    shape = Temp("int32", (len(g.shape(x)),), f"{name}/shape")
    one = Const(np.ones((), NUMPY[dtype]), f"{name}/one")
    return Rewrite((node.key,), [Step("SHAPE", 1, [x], [shape], ("ShapeOptions", {"out_type": dtype_code("int32")})),
                                 Step("FILL", 1, [shape, one], list(node.outputs))])


RULES: dict[str, Rule] = {
    **{op: Rule(op, same_inputs, "code") for op, e in load_catalog().ops.items() if e.get("rewrite") == "code"},
    **rules("options",
            Softmax=lambda node, g: catalog_builtin(node, options=("SoftmaxOptions", {"beta": 1.0})),
            LeakyRelu=with_options("LeakyReluOptions", alpha="alpha"),
            Cast=with_options("CastOptions", in_data_type=lambda a: dtype_code(a["SrcT"]),
                              out_data_type=lambda a: dtype_code(a["DstT"])),
            Cumsum=with_options("CumsumOptions", exclusive=lambda a: bool(a.get("exclusive")),
                                reverse=lambda a: bool(a.get("reverse")))),
    **rules("decompose", OnesLike=ones_like),
}
