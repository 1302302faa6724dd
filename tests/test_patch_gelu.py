"""The GELU pattern on graphs TF's own converter writes (SELECT_TF_OPS only): both of tf.nn.gelu's forms
become one GELU op with the right `approximate`, verified against TensorFlow; a near miss is left alone."""
import json

import pytest

from helpers import run_fbtool
from test_patch import FLEX_PYTHON, needs_flex_runtime

CASES = {   # name: (function of x, expected GELU approximate flag or None when no GELU may appear)
    "exact": (lambda tf, x: tf.nn.gelu(x, approximate=False), False),
    "tanh": (lambda tf, x: tf.nn.gelu(x, approximate=True), True),
    "by_hand": (lambda tf, x: x * (1.0 + tf.math.erf(x * 0.7071067811865476)) * 0.5, False),
    "near_miss": (lambda tf, x: 0.5 * x * (1.0 + tf.math.erf(x / 1.5)), None),
    "tanh_activation": (lambda tf, x: tf.tanh(x) * 0.5 + 0.5, None),
}


@needs_flex_runtime
@pytest.mark.parametrize("case", sorted(CASES))
def test_gelu_pattern(case, tmp_path):
    tf = pytest.importorskip("tensorflow")
    body, approximate = CASES[case]

    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32)])
    def fn(x):
        return body(tf, tf.matmul(x, tf.eye(16) * 1.5))    # x comes from an op, as in a model

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.SELECT_TF_OPS]
    src = tmp_path / "m.tflite"
    src.write_bytes(converter.convert())
    r = run_fbtool("patch", src, "-o", tmp_path / "p.tflite", "--json", "--python", FLEX_PYTHON, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    gelus = [rw for rw in doc["rewrites"] if rw["builtin"] == "GELU"]
    assert doc["verification"]["ok"]
    if approximate is None:
        assert gelus == []
    else:
        assert len(gelus) == 1 and doc["flex_after"] == 0
        from fbtool import open_model
        with open_model(tmp_path / "p.tflite") as m:
            op = next(o for o in m.subgraphs[0].operators if o.opcode.name == "GELU")
            assert op.options.get("approximate") is approximate
