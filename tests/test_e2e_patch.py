"""End to end: real Keras models converted with SELECT_TF_OPS only (fixtures/e2e, made by
fixtures/make_e2e.py), patched by fbtool, then run on ai-edge-litert, which has no Flex delegate.
The source of truth is the Keras model's own outputs, stored in each .npz at fixture time."""
import json

import jsonschema
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S
from ai_edge_litert.tools import flatbuffer_utils

from conftest import FIXTURES, ROOT
from fbtool.patch.rewrite import patch_model
from helpers import run_fbtool, run_on_litert
from test_patch import FLEX_PYTHON, needs_flex_runtime

E2E = FIXTURES / "e2e"
KERAS = ["mlp", "mobilenet_style", "resnet_style", "transformer_block", "preprocessing"]
SCHEMA = json.loads((ROOT / "schemas" / "patch.schema.json").read_text())


def custom_codes(path):
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(path.read_bytes()))
    return [(c.customCode or b"").decode() for c in model.operatorCodes
            if max(c.builtinCode, c.deprecatedBuiltinCode) == S.BuiltinOperator.CUSTOM]


@pytest.mark.parametrize("name", KERAS)
def test_patched_keras_model_runs_without_flex_and_matches_keras(name, tmp_path):
    out = tmp_path / f"{name}.tflite"
    doc = patch_model(E2E / f"{name}.tflite", out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["flex_before"] > 0 and doc["flex_after"] == 0 and doc["kept"] == []
    assert custom_codes(out) == []
    got = run_on_litert(out, E2E / f"{name}.npz", tmp_path / "out.npz")
    keras = {k.split(":", 1)[1]: v for k, v in np.load(E2E / f"{name}.npz").items() if k.startswith("output:")}
    assert got.keys() == keras.keys()
    for key, want in keras.items():
        # relative to the output's scale: elementwise relative error is noise for values near zero
        assert np.abs(got[key] - want).max() <= 1e-5 * np.abs(want).max(), key


def unfused(path) -> list[str]:
    """Ops TFLite's converter would have fused away: a constant ADD/MUL or a RELU/RELU6 right after a conv
    or FC, a RELU/RELU6 after an ADD/SUB/MUL, a CAST copy (an Identity), a Flex op left (the GELU's Erf),
    a BATCH_MATMUL by constant weights."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(path.read_bytes()))
    ops = S.BuiltinOperator
    names = {v: k for k, v in vars(ops).items() if not k.startswith("_")}
    code = lambda op: model.operatorCodes[op.opcodeIndex].builtinCode  # noqa: E731
    sg = model.subgraphs[0]
    producer = {t: op for op in sg.operators for t in op.outputs}
    found = []
    for op in sg.operators:
        before = producer.get(op.inputs[0])
        if before is not None and code(before) in (ops.CONV_2D, ops.DEPTHWISE_CONV_2D, ops.FULLY_CONNECTED):
            other = op.inputs[1] if len(op.inputs) > 1 else -1
            constant = other >= 0 and model.buffers[sg.tensors[other].buffer].data is not None
            if code(op) in (ops.RELU, ops.RELU6) or code(op) in (ops.ADD, ops.MUL) and constant:
                found.append(f"{names[code(op)]} after {names[code(before)]}")
        if before is not None and code(op) in (ops.RELU, ops.RELU6) and code(before) in (ops.ADD, ops.SUB, ops.MUL):
            found.append(f"{names[code(op)]} after {names[code(before)]}")
        if code(op) in (ops.CAST, ops.CUSTOM):
            found.append(names[code(op)])
        if code(op) == ops.BATCH_MATMUL and model.buffers[sg.tensors[op.inputs[1]].buffer].data is not None:
            found.append("BATCH_MATMUL with constant weights")     # a dense layer: FULLY_CONNECTED
    return found


@pytest.mark.parametrize("name", KERAS)
def test_patched_keras_model_is_fused_like_the_converter_would(name, tmp_path):
    out = tmp_path / f"{name}.tflite"
    patch_model(E2E / f"{name}.tflite", out)
    assert unfused(out) == []


def test_the_fusion_check_sees_unfused_ops(tmp_path):
    out = tmp_path / "m.tflite"
    patch_model(E2E / "mobilenet_style.tflite", out, skip={"fuse_bias_activation"})
    found = unfused(out)     # each conv is followed by its BatchNorm's MUL; the classifier by its bias ADD
    assert found.count("MUL after CONV_2D") == 4 and found.count("MUL after DEPTHWISE_CONV_2D") == 3
    assert "ADD after FULLY_CONNECTED" in found
    patch_model(E2E / "resnet_style.tflite", out, skip={"fuse_activation"})
    assert unfused(out).count("RELU after ADD") == 2      # the two residual connections


@needs_flex_runtime
@pytest.mark.parametrize("name", KERAS)
def test_patch_verifies_against_the_flex_original(name, tmp_path):
    """`fbtool patch` verifies by default: the original in TensorFlow 2.18 with Flex, the patched model
    on ai-edge-litert."""
    r = run_fbtool("patch", E2E / f"{name}.tflite", "-o", tmp_path / "p.tflite", "--json", "--python", FLEX_PYTHON,
                   timeout=300)
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)["verification"]
    assert v["ok"] and v["runtimes"][1] == "ai-edge-litert", v


def test_mixed_model_keeps_exactly_the_ops_without_a_builtin(tmp_path):
    out = tmp_path / "mixed.tflite"
    doc = patch_model(E2E / "mixed_det.tflite", out)
    assert [k["tf_op"] for k in doc["kept"]] == ["MatrixDeterminant"] and doc["flex_after"] == 1
    assert custom_codes(out) == ["FlexMatrixDeterminant"]


@needs_flex_runtime
def test_mixed_model_still_computes_the_same(tmp_path):
    r = run_fbtool("patch", E2E / "mixed_det.tflite", "-o", tmp_path / "p.tflite", "--json", "--python", FLEX_PYTHON,
                   timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verification"]["ok"]


@needs_flex_runtime
@pytest.mark.parametrize("name", ["transformer_block", "mobilenet_style"])
def test_dynamic_batch_models_patch_fully(name, tmp_path):
    """Real Keras models usually keep the batch dynamic (-1): the attention Einsums and the Shape/Gather/
    Prod/Pack arithmetic that comes with it must be rewritten too. Built here with make_e2e (batch=None)."""
    import importlib.util
    import sys

    pytest.importorskip("tensorflow")
    spec = importlib.util.spec_from_file_location("make_e2e", FIXTURES / "make_e2e.py")
    make_e2e = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(FIXTURES))
    spec.loader.exec_module(make_e2e)
    src = tmp_path / f"{name}.tflite"
    src.write_bytes(make_e2e.build(name, batch=None))
    r = run_fbtool("patch", src, "-o", tmp_path / "p.tflite", "--json", "--python", FLEX_PYTHON, timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["flex_after"] == 0 and doc["kept"] == [] and doc["verification"]["ok"]
    assert custom_codes(tmp_path / "p.tflite") == []
