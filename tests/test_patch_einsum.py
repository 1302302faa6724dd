"""Einsum -> BATCH_MATMUL/TRANSPOSE/RESHAPE on equations beyond attention's, each converted by TF 2.18's
own converter (SELECT_TF_OPS only, so Einsum stays a Flex op), patched, and verified against TensorFlow."""
import json

import pytest

from fbtool import open_model
from helpers import run_fbtool
from test_patch import FLEX_PYTHON, needs_flex_runtime

EQUATIONS = {   # equation: operand shapes (None: a dynamic batch), the builtins the Einsum becomes, in order
    "bij,bjk->bik": ([None, 3, 4], [None, 4, 5], ["BATCH_MATMUL"]),                   # a plain batched matmul
    "ij,jk->ki": ([3, 4], [4, 5], ["BATCH_MATMUL", "TRANSPOSE"]),                    # the product transposed
    "abcd,cde->abe": ([2, 3, 4, 5], [4, 5, 6], ["RESHAPE", "RESHAPE", "BATCH_MATMUL", "RESHAPE"]),  # c,d merged
    "bqhd,bkhd->bhqk": ([None, 6, 2, 4], [None, 7, 2, 4], ["TRANSPOSE", "TRANSPOSE", "BATCH_MATMUL"]),
    "abc,cd->abd": ([None, 3, 4], [4, 6], ["RESHAPE", "BATCH_MATMUL", "RESHAPE"]),    # one -1 per RESHAPE
    "ac,bc->ab": ([3, 4], [5, 4], ["BATCH_MATMUL"]),                                  # read with adj_y
    "ij,j->i": ([3, 4], [4], ["RESHAPE", "BATCH_MATMUL", "RESHAPE"]),                 # no free label in b
    "bi,bi->b": ([None, 4], [None, 4], ["RESHAPE", "RESHAPE", "BATCH_MATMUL", "RESHAPE"]),   # none in either
    "i,j->ij": ([3], [5], ["RESHAPE", "RESHAPE", "BATCH_MATMUL"]),                    # nothing contracted
}


def _convert(equation, shapes, path):
    tf = pytest.importorskip("tensorflow")

    @tf.function(input_signature=[tf.TensorSpec(s, tf.float32) for s in shapes])
    def fn(a, b):
        return tf.einsum(equation, a, b)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.SELECT_TF_OPS]
    path.write_bytes(converter.convert())


@needs_flex_runtime
@pytest.mark.parametrize("equation", sorted(EQUATIONS))
def test_einsum_lowering_is_verified(equation, tmp_path):
    src = tmp_path / "einsum.tflite"
    *shapes, steps = EQUATIONS[equation]
    _convert(equation, shapes, src)
    r = run_fbtool("patch", src, "-o", tmp_path / "p.tflite", "--json", "--python", FLEX_PYTHON, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    einsums = [rw for rw in doc["rewrites"] if rw["tf_op"] == "Einsum"]
    assert len(einsums) == 1 and doc["flex_after"] == 0, doc["kept"]
    others = list(steps)
    others.remove("BATCH_MATMUL")
    assert einsums[0]["builtin"] == "BATCH_MATMUL" and [i.split()[0] for i in einsums[0].get("inserted", [])] == others
    with open_model(tmp_path / "p.tflite") as m:        # the graph is exactly those steps, in that order
        assert [op.opcode.name for op in m.subgraphs[0].operators] == steps
    v = doc["verification"]
    assert v["ok"] and [g["ops"] for g in v["per_op"]["groups"] if g["ok"]], v
