"""`fbtool patch`: the first rules (Flex ops whose builtin takes the same inputs), written surgically.

Structure is checked with LiteRT's object API; numerics by running original and patched models in
TensorFlow 2.18.1 (the last Python runtime with the Flex delegate) when one is available: set
FBTOOL_FLEX_PYTHON to its python, or install tensorflow-cpu==2.18.1 here."""
import json
import os
import sys
import zipfile

import jsonschema
import pytest
from ai_edge_litert.tools import flatbuffer_utils

from conftest import FIXTURES, ROOT
from fbtool import open_model
from fbtool.cli.patch_cmd import flex_runtime_here
from fbtool.patch.rewrite import apply, plan
from fbtool.patch.writer import Editor
from fbtool.verify.compare import verify_models
from helpers import run_fbtool

SCHEMA = json.loads((ROOT / "schemas" / "patch.schema.json").read_text())
FLEX_PYTHON = os.environ.get("FBTOOL_FLEX_PYTHON") or (sys.executable if flex_runtime_here() else None)
needs_flex_runtime = pytest.mark.skipif(FLEX_PYTHON is None, reason="needs TensorFlow <= 2.18.1 (FBTOOL_FLEX_PYTHON)")


def opcodes(path):
    ref = flatbuffer_utils.convert_bytearray_to_object(bytearray(path.read_bytes()))
    names = []
    for sg in ref.subgraphs:
        for op in sg.operators:
            oc = ref.operatorCodes[op.opcodeIndex]
            code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
            names.append((oc.customCode or b"").decode() if code == 32 else code)
    return names


def test_select_only_model(tmp_path):
    out = tmp_path / "p.tflite"
    r = run_fbtool("patch", FIXTURES / "select_only_cnn.tflite", "-o", out, "--json", "--no-verify-run")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    before, after = opcodes(FIXTURES / "select_only_cnn.tflite"), opcodes(out)
    # BuiltinOperator codes from schema.fbs: ADD 0, FULLY_CONNECTED 9, MAX_POOL_2D 17, MUL 18, RELU 19, RELU6 21,
    # RESHAPE 22, SOFTMAX 25, MEAN 40, STRIDED_SLICE 45, CAST 53, NEG 59, RSQRT 76, SHAPE 77, PACK 83,
    # SQUARED_DIFFERENCE 99
    swap = {"FlexAddV2": 0, "FlexBiasAdd": 0, "FlexMatMul": 9, "FlexMaxPool": 17, "FlexMul": 18, "FlexRelu": 19,
            "FlexRelu6": 21, "FlexReshape": 22, "FlexSoftmax": 25, "FlexMean": 40, "FlexStridedSlice": 45,
            "FlexNeg": 59, "FlexRsqrt": 76, "FlexShape": 77, "FlexPack": 83, "FlexSquaredDifference": 99,
            "FlexIdentity": 53, "FlexStopGradient": 53}
    assert after == [swap.get(b, b) for b in before]
    # left: 2 Conv2D and a DepthwiseConv2dNative (need a bias tensor), Erf (GELU pattern)
    assert doc["flex_before"] == 41 and doc["flex_after"] == sum(isinstance(a, str) for a in after) == 4
    ref = flatbuffer_utils.convert_bytearray_to_object(bytearray(out.read_bytes()))
    fc = [op for op in ref.subgraphs[0].operators if ref.operatorCodes[op.opcodeIndex].builtinCode == 9]
    assert [list(op.inputs)[2] for op in fc] == [-1, -1]   # no bias
    softmax = next(op for op in ref.subgraphs[0].operators if ref.operatorCodes[op.opcodeIndex].builtinCode == 25)
    assert softmax.builtinOptions.beta == 1.0


def test_surgical():
    """Everything but the rewritten ops stays: names, shapes and bytes of every tensor and buffer, except
    MatMul weights, transposed from [in, out] to FULLY_CONNECTED's [out, in]; the bytes after the
    flatbuffer come after the new block unchanged."""
    import numpy as np

    src = FIXTURES / "select_only_cnn.tflite"
    with open_model(src) as m:
        rewrites, _ = plan(m)
        data = apply(m, rewrites).render()
        base = m.flatbuffer_extent
        before = [(t.name, t.dtype, t.shape, m.buffer_bytes(t.buffer)) for t in m.subgraphs[0].tensors]
        matmul_weights = {m.subgraphs[0].operators[r["index"]].inputs[1] for r in rewrites if r["tf_op"] == "MatMul"}
    raw = src.read_bytes()
    assert data[base + len(data) - len(raw):] == raw[base:]
    from fbtool.reader.model import model_from_buffer
    with model_from_buffer(data, "patched") as p:
        after = [(t.name, t.dtype, t.shape, p.buffer_bytes(t.buffer)) for t in p.subgraphs[0].tensors]
    assert len(matmul_weights) == 2
    for i, (b, a) in enumerate(zip(before, after)):
        if i in matmul_weights:
            w = np.frombuffer(b[3], np.float32).reshape(b[2])
            assert a[2] == b[2][::-1] and a[3] == w.T.tobytes()
        else:
            assert a == b


def test_no_rule_gives_identical_bytes(tmp_path):
    out = tmp_path / "m.tflite"
    r = run_fbtool("patch", FIXTURES / "mixed_flex.tflite", "-o", out)
    assert r.returncode == 0 and out.read_bytes() == (FIXTURES / "mixed_flex.tflite").read_bytes()
    assert "MatrixDeterminant" in r.stdout and "no TFLite builtin" in r.stdout


def test_external_buffers_and_trailing_zip_survive_an_edit(tmp_path):
    """Insert a table after the flatbuffer: data stored after it moves, its offsets follow."""
    for name in ("buffer_offset.tflite", "with_metadata.tflite"):
        with open_model(FIXTURES / name) as m:
            ed = Editor(m)
            at, _ = ed.table({0: ("b", 9), 3: ("i", 9)})   # a FULLY_CONNECTED OperatorCode
            ed.point(ed.target(m.root, "operator_codes") + 4, at)
            data = ed.render()
            before = [m.buffer_bytes(b.index) for b in m.buffers]
        out = tmp_path / name
        out.write_bytes(data)
        with open_model(out) as m2:
            assert [m2.buffer_bytes(b.index) for b in m2.buffers] == before
        ref = flatbuffer_utils.read_model(str(out))   # resolves offset buffers itself
        assert ref.operatorCodes[0].builtinCode == 9
        if name == "with_metadata.tflite":
            with zipfile.ZipFile(out) as z:
                assert z.read("labels.txt") == zipfile.ZipFile(FIXTURES / name).read("labels.txt")


def test_dry_run_and_usage(tmp_path):
    r = run_fbtool("patch", FIXTURES / "select_only_cnn.tflite", "--dry-run")
    assert r.returncode == 0 and "would rewrite 37 of 41" in r.stdout
    r = run_fbtool("patch", FIXTURES / "select_only_cnn.tflite")
    assert r.returncode == 2 and r.stderr.startswith("fbtool: error:")


@needs_flex_runtime
def test_patched_model_computes_the_same(tmp_path):
    out = tmp_path / "p.tflite"
    r = run_fbtool("patch", FIXTURES / "select_only_cnn.tflite", "-o", out, "--json", "--python", FLEX_PYTHON)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["verification"]["ok"], doc["verification"]
    assert doc["verification"]["outputs"]["output_0"]["max_rel"] <= 1e-5


@needs_flex_runtime
def test_a_wrong_rewrite_is_caught(tmp_path):
    """The check that the check works: AddV2 rewritten as SUB must fail verification."""
    with open_model(FIXTURES / "select_only_cnn.tflite") as m:
        rewrites, _ = plan(m)
        wrong = [{**r, "builtin": "SUB"} if r["tf_op"] == "AddV2" else r for r in rewrites]
        data = apply(m, wrong).render()
    bad = tmp_path / "wrong.tflite"
    bad.write_bytes(data)
    report = verify_models(str(FIXTURES / "select_only_cnn.tflite"), str(bad), FLEX_PYTHON)
    assert not report["ok"] and not report["outputs"]["output_0"]["ok"]
