"""`fbtool patch`: Flex ops rewritten into builtins, fused where TFLite fuses, written surgically.

Structure is checked with LiteRT's object API; numerics by running original and patched models in
TensorFlow 2.18.1 (the last Python runtime with the Flex delegate) when one is available: set
FBTOOL_FLEX_PYTHON to its python, or install tensorflow-cpu==2.18.1 here."""
import json
import os
import sys
import zipfile

import jsonschema
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S
from ai_edge_litert.tools import flatbuffer_utils

from conftest import FIXTURES, ROOT
from fbtool import open_model
from fbtool.cli.patch_cmd import flex_runtime_here
from fbtool.patch.rewrite import apply, patch_model, plan
from fbtool.patch.emit import _entries
from fbtool.patch.writer import Editor
from fbtool.reader.model import model_from_buffer
from fbtool.verify.compare import verify_models
from helpers import run_fbtool

SCHEMA = json.loads((ROOT / "schemas" / "patch.schema.json").read_text())
VERIFY_SCHEMA = json.loads((ROOT / "schemas" / "verify.schema.json").read_text())
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
    ops = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    after = [ops[c] if isinstance(c, int) else c for c in opcodes(out)]
    # the graph of the fixture (fbtool inspect --ops) with Conv2D+BiasAdd+Relu, Depthwise+BiasAdd+Mul+AddV2+Relu6
    # (a BatchNorm), MatMul+BiasAdd and the exact GELU's five ops fused, StopGradient and both Identity removed
    assert after == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "SHAPE",
        "STRIDED_SLICE", "PACK", "RESHAPE", "FULLY_CONNECTED", "GELU", "MEAN", "NEG", "SQUARED_DIFFERENCE", "MEAN",
        "ADD", "RSQRT", "MUL", "MUL", "ADD", "MUL", "ADD", "FULLY_CONNECTED", "SOFTMAX"]
    assert doc["flex_before"] == 41 and doc["flex_after"] == 0
    ref = flatbuffer_utils.convert_bytearray_to_object(bytearray(out.read_bytes()))
    assert len(ref.operatorCodes) == len(set(after))    # no Flex code left behind
    sg = ref.subgraphs[0]
    conv = sg.operators[0]
    assert conv.builtinOptions.fusedActivationFunction == S.ActivationFunctionType.RELU
    assert list(conv.inputs) == [0, 8, 10] and list(conv.outputs) == [22]   # BiasAdd's bias, Relu's output
    assert list(sg.outputs) == [60] and sg.operators[-1].outputs[0] == 60    # Identity ops gone, output kept
    assert sg.operators[-1].builtinOptions.beta == 1.0


def test_surgical():
    """Everything but the rewritten ops stays: names, shapes and bytes of every tensor and buffer, except
    the re-laid-out weights (conv HWIO -> OHWI, depthwise HWCM -> 1HW(CM), MatMul [in,out] -> [out,in]),
    and the bytes after the flatbuffer come unchanged after the new head."""
    src = FIXTURES / "select_only_cnn.tflite"
    with open_model(src) as m:
        data = apply(m, plan(m)).render()
        base = m.flatbuffer_extent
        before = [(t.name, t.dtype, t.shape, m.buffer_bytes(t.buffer)) for t in m.subgraphs[0].tensors]
    raw = src.read_bytes()
    assert data[len(data) - len(raw) + base:] == raw[base:]
    with model_from_buffer(data, "patched") as p:
        after = [(t.name, t.dtype, t.shape, p.buffer_bytes(t.buffer)) for t in p.subgraphs[0].tensors]
    relaid = {8: (3, 0, 1, 2), 9: (3, 0, 1, 2), 4: (1, 0), 6: (1, 0)}   # conv filters, MatMul weights
    # one new tensor: the depthwise bias folded from BiasAdd(t10), Mul(t19), AddV2(t10) (fbtool inspect --ops)
    t = {i: np.frombuffer(before[i][3], np.float32) for i in (10, 19)}
    assert len(after) == len(before) + 1 and after[-1][1:3] == ("float32", (8,))
    np.testing.assert_allclose(np.frombuffer(after[-1][3], np.float32), t[10] * t[19] + t[10], rtol=1e-6)
    for i, (b, a) in enumerate(zip(before, after)):
        w = np.frombuffer(b[3], np.float32).reshape(b[2]) if b[3] else None
        if i in relaid:
            assert a[:2] == b[:2] and a[3] == np.ascontiguousarray(w.transpose(relaid[i])).tobytes()
        elif i == 3:    # depthwise: shape [1, H, W, C*M], scaled by the BatchNorm's Mul constant (tensor 19)
            scale = np.frombuffer(before[19][3], np.float32)
            assert a[2] == (1, b[2][0], b[2][1], b[2][2] * b[2][3])
            np.testing.assert_allclose(np.frombuffer(a[3], np.float32), (w.reshape(a[2]) * scale).ravel(), rtol=1e-7)
        else:
            assert a == b


def test_no_rule_gives_identical_bytes(tmp_path):
    out = tmp_path / "m.tflite"
    r = run_fbtool("patch", FIXTURES / "string_flex.tflite", "-o", out)
    assert r.returncode == 0 and out.read_bytes() == (FIXTURES / "string_flex.tflite").read_bytes()
    assert "StringLength" in r.stdout and "no TFLite builtin" in r.stdout


def test_external_buffers_and_trailing_zip_survive_an_edit(tmp_path):
    """A new root and op-code vector in the head: data stored after the flatbuffer moves, its offsets follow."""
    for name in ("buffer_offset.tflite", "with_metadata.tflite"):
        with open_model(FIXTURES / name) as m:
            ed = Editor(m)
            ed.root, refs = ed.clone(m.root, {"operator_codes": None})
            codes = _entries(ed, ed.target(m.root, "operator_codes"))
            vec = ed.offsets_vector([None] + codes[1:])
            ed.point(refs["operator_codes"], vec)
            ed.point(vec + 4, ed.new_table("OperatorCode", {"deprecated_builtin_code": 9, "builtin_code": 9})[0])
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
    assert r.returncode == 0 and "would rewrite 41 of 41" in r.stdout
    r = run_fbtool("patch", FIXTURES / "select_only_cnn.tflite")
    assert r.returncode == 2 and r.stderr.startswith("fbtool: error:")


@needs_flex_runtime
def test_patched_model_computes_the_same(tmp_path):
    out = tmp_path / "p.tflite"
    r = run_fbtool("patch", FIXTURES / "select_only_cnn.tflite", "-o", out, "--json", "--python", FLEX_PYTHON)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["verification"]["ok"], doc["verification"]
    jsonschema.validate(doc, SCHEMA)
    assert doc["verification"]["outputs"]["output_0"]["max_abs"] <= 1e-5 * doc["verification"]["outputs"]["output_0"]["max_ref"]
    groups = doc["verification"]["per_op"]["groups"]
    assert sorted(i for g in groups for i in g["ops"]) == list(range(41))   # every Flex op checked in some group
    assert all(g["ok"] for g in groups)


@needs_flex_runtime
def test_a_wrong_rewrite_is_caught(tmp_path):
    """The check that the check works: AddV2 rewritten as SUB must fail verification."""
    with open_model(FIXTURES / "select_only_cnn.tflite") as m:
        p = plan(m)
        for op in p.edit.subgraphs[0].flat():
            if op.opcode == ("ADD", 1):
                op.opcode = ("SUB", 1)
        data = apply(m, p).render()
    bad = tmp_path / "wrong.tflite"
    bad.write_bytes(data)
    report = verify_models(str(FIXTURES / "select_only_cnn.tflite"), str(bad), FLEX_PYTHON)
    assert not report["ok"] and not report["outputs"]["output_0"]["ok"]
    jsonschema.validate(report, VERIFY_SCHEMA)
    # the first ADD left after fusion is LayerNorm's `variance + epsilon`, op 29 (fbtool inspect --ops)
    first = report["first_divergence"]
    assert first["ops"] == [29] and first["builtin"] == "SUB" and not first["ok"]
    bad_groups = [g["ops"] for g in report["per_op"]["groups"] if not g["ok"]]
    # op 33 adds LayerNorm's beta, all zeros in this fixture: there SUB computes the same, rightly unflagged
    assert bad_groups == [[29], [35]]


def test_every_catalog_op_with_a_builtin_has_a_rule():
    """The catalog (data) and the rules (code) agree: an op the catalog says can become builtins
    (one, or a decomposition) has a rule."""
    from fbtool import data
    from fbtool.patch.rules import PATTERNS, RULES

    anchors = {a for p in PATTERNS for a in p.anchors}
    ops = {name: entry["rewrite"] for name, entry in data.load("op_catalog")["ops"].items()}
    missing = [n for n, kind in ops.items() if kind in ("code", "options", "weights", "remove", "pattern",
                                                        "decompose") and n not in RULES and n not in anchors]
    assert missing == []
    # one vocabulary: each rule's kind is the catalog's word for the op, and every anchor is a catalog op
    assert {n: r.kind for n, r in RULES.items()} == {n: ops[n] for n in RULES}
    assert anchors <= set(ops) and len(set(RULES) | anchors) >= 100


ZOO = {   # fixtures/op_zoo.tflite and conv_zoo.tflite (fixtures/generate.py): a TF op per rule, all Flex
    "op_zoo.tflite": {"ArgMax", "ArgMin", "Cumsum", "DepthToSpace", "SpaceToDepth", "MirrorPad", "OneHot", "Split",
                      "SplitV", "Unpack", "Pack", "ResizeNearestNeighbor", "ResizeBilinear", "BatchMatMulV2",
                      "LeakyRelu", "AvgPool", "Max", "Min", "Prod", "Sum", "Mean", "Any", "All", "GatherV2",
                      "ConcatV2", "Squeeze", "Cast", "Shape", "StridedSlice", "LogSoftmax", "OnesLike", "Where", "Selu",
                      "Softplus"},
    "conv_zoo.tflite": {"Conv2D", "BiasAdd", "FusedBatchNormV3", "Relu", "Conv2DBackpropInput", "SpaceToBatchND",
                        "DepthwiseConv2dNative", "BatchToSpaceND", "Identity"},
}


@needs_flex_runtime
@pytest.mark.parametrize("name", sorted(ZOO))
def test_each_rule_is_verified_against_tensorflow(name, tmp_path):
    """Every rule on real converter output, checked per op against TensorFlow running the op's NodeDef
    and as a whole model; only the ops without a builtin stay."""
    r = run_fbtool("patch", FIXTURES / name, "-o", tmp_path / name, "--json", "--python", FLEX_PYTHON, timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert ZOO[name] <= {rw["tf_op"] for rw in doc["rewrites"]}
    kept = sorted((k["tf_op"], k["reason"].split(" ")[0]) for k in doc["kept"])
    assert kept == ([] if name == "conv_zoo.tflite" else [("Pack", "T=bool")])
    v = doc["verification"]
    assert v["ok"] and v["first_divergence"] is None, v.get("first_divergence")
    checked = {i for g in v["per_op"]["groups"] for i in g["ops"]}
    removed = {rw["index"] for rw in doc["rewrites"] if rw.get("removed")}
    assert {rw["index"] for rw in doc["rewrites"]} - removed <= checked


def test_a_broken_head_is_caught_and_nothing_is_written(tmp_path):
    """The output check trusts only the original part (already verified, and in-place edits never write
    offsets): a bad table in the new head still fails it, and no file appears."""
    from fbtool import ModelError
    from fbtool.patch.writer import Orig, write_patched

    src = FIXTURES / "select_only_cnn.tflite"
    with open_model(src) as m:
        ed = Editor(m)
        ed.root, refs = ed.clone(m.root, {"subgraphs": None})
        ed.point(refs["subgraphs"], Orig(m.size - 2))     # a "vector" two bytes before the end
        with pytest.raises(ValueError):
            ed.point(0, Orig(100))                        # and no offset may be written outside the head
        with pytest.raises(ModelError, match="subgraphs"):
            write_patched(str(src), ed, str(tmp_path / "out.tflite"))
    assert list(tmp_path.iterdir()) == []


def test_in_place_only_and_skip(tmp_path):
    """--in-place replaces the model itself (atomically, nothing left beside it); --only/--skip choose
    rules by TF op or pattern name, and what they leave out is reported as kept with that reason."""
    model = tmp_path / "m.tflite"
    model.write_bytes((FIXTURES / "select_only_cnn.tflite").read_bytes())
    r = run_fbtool("patch", model, "--only", "Softmax,MaxPool", "--json", "--dry-run")
    doc = json.loads(r.stdout)
    assert sorted({rw["tf_op"] for rw in doc["rewrites"]}) == ["MaxPool", "Softmax"]
    assert all(k["reason"] == "left out by --only/--skip" for k in doc["kept"] if k["tf_op"] == "Mul")
    r = run_fbtool("patch", model, "--skip", "Conv2D", "--json", "--dry-run")     # no pattern takes it either
    doc = json.loads(r.stdout)
    assert [k["index"] for k in doc["kept"] if k["tf_op"] == "Conv2D"] == [0, 9]
    r = run_fbtool("patch", model, "--skip", "gelu", "--json", "--dry-run")     # Erf is then decomposed alone
    doc = json.loads(r.stdout)
    assert "GELU" not in {rw["builtin"] for rw in doc["rewrites"]}
    assert {rw["rule"] for rw in doc["rewrites"] if rw["tf_op"] == "Erf"} == {"decompose"}
    r = run_fbtool("patch", model, "--skip", "gelu,Erf", "--json", "--dry-run")
    assert "Erf" in {k["tf_op"] for k in json.loads(r.stdout)["kept"]}
    r = run_fbtool("patch", model, "--in-place", "--no-verify-run")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["m.tflite"]
    assert all(isinstance(c, int) for c in opcodes(model))      # no Flex op left in the file itself


def test_a_custom_options_vector_two_ops_share_is_not_emptied(tmp_path):
    """FlatBuffers lets two ops point at one custom_options vector; emptying it in place for one op would
    silently empty the other's NodeDef, so such ops get new tables and the vector keeps its bytes."""
    import struct

    raw = bytearray((FIXTURES / "select_only_cnn.tflite").read_bytes())
    with open_model(FIXTURES / "select_only_cnn.tflite") as m:
        ops = m.subgraphs[0].operators
        a, b = ops[31], ops[32]          # two FlexMul ops (fbtool inspect --ops): the same NodeDef
        ed = Editor(m)
        field = a.t.field_pos("custom_options")
        target = ed.target(b.t, "custom_options")
        if target < field:
            a, b = b, a
            field, target = a.t.field_pos("custom_options"), ed.target(b.t, "custom_options")
        size = struct.unpack_from("<I", raw, target)[0]
    struct.pack_into("<I", raw, field, target - field)
    shared = tmp_path / "shared.tflite"
    shared.write_bytes(bytes(raw))
    out = tmp_path / "out.tflite"
    doc = patch_model(shared, out)
    assert {rw["index"] for rw in doc["rewrites"]} >= {31, 32}
    data = out.read_bytes()
    shift = len(data) - len(raw)
    assert struct.unpack_from("<I", data, target + shift)[0] == size > 0
    with open_model(out) as p:
        assert all(op.opcode.kind == "builtin" for op in p.subgraphs[0].operators)


@pytest.mark.parametrize("shared_field", ["shape", "data"])
def test_weights_sharing_a_vector_are_not_edited_in_place(shared_field, tmp_path):
    """Two conv filters of resnet_style may point at one shape vector, or their buffers at one data
    vector (FlatBuffers allows it); editing it in place for one filter would change the other, so both
    become new constants."""
    import struct

    src = FIXTURES / "e2e" / "resnet_style.tflite"
    raw = bytearray(src.read_bytes())
    with open_model(src) as m:
        tensors = m.subgraphs[0].tensors          # filters 3, 4, 5, 7: [3,3,16,16] (fbtool inspect --ops)
        buffers = m.root.get("buffers")
        tables = {t.index: t.t if shared_field == "shape" else buffers[t.buffer] for t in (tensors[4], tensors[5])}
        (ia, a), (ib, b) = sorted(tables.items(), key=lambda kv: kv[1].field_pos(shared_field))
        field, target = a.field_pos(shared_field), Editor(m).target(b, shared_field)
        assert target > field
        before = [m.buffer_bytes(tensors[i].buffer) for i in (ia, ib)]
    struct.pack_into("<I", raw, field, target - field)
    shared = tmp_path / "shared.tflite"
    shared.write_bytes(bytes(raw))
    out, plain = tmp_path / "out.tflite", tmp_path / "plain.tflite"
    patch_model(shared, out)
    patch_model(src, plain)
    with open_model(out) as p, open_model(plain) as q:
        t = p.subgraphs[0].tensors
        assert len(t) == len(q.subgraphs[0].tensors) + 2              # two re-laid-out copies more
        assert t[ia].shape == t[ib].shape == (3, 3, 16, 16)             # the originals untouched
        assert p.buffer_bytes(t[ib].buffer) == before[1]
        assert t[3].shape == t[7].shape == (16, 3, 3, 16)               # the others, in place


def test_a_bias_inside_a_filters_bytes_is_not_changed(tmp_path):
    """FlatBuffers lets a buffer's data start inside another's: here the shared BiasAdd bias (tensor 10,
    buffer 11) is eight floats of the first conv filter (tensor 8, buffer 9). Re-laying out the filter
    in place silently changed the bias (output off by 0.043 on values up to 0.215); now a filter whose
    bytes anything else covers becomes a new constant, and the bias keeps its values."""
    import struct

    src = FIXTURES / "select_only_cnn.tflite"
    raw = bytearray(src.read_bytes())
    with open_model(src) as m:
        field = m.root.get("buffers")[11].field_pos("data")
        filter_data = m.buffers[9].data.offset
    k = 10                                             # filter float k becomes the bias vector's length word
    struct.pack_into("<I", raw, filter_data + 4 * k, 32)
    struct.pack_into("<I", raw, field, filter_data + 4 * k - field)
    shared = tmp_path / "overlap.tflite"
    shared.write_bytes(bytes(raw))
    with open_model(shared) as m:
        bias = m.buffer_bytes(11)
        filt = np.frombuffer(m.buffer_bytes(9), np.float32).reshape(3, 3, 3, 8)
        assert bias == m.buffer_bytes(9)[4 * k + 4:4 * k + 36]    # the overlap is real
    out = tmp_path / "out.tflite"
    patch_model(shared, out)
    with open_model(out) as p:
        t = p.subgraphs[0].tensors
        assert p.buffer_bytes(t[10].buffer) == bias                         # untouched
        conv = p.subgraphs[0].operators[0]
        w = conv.inputs[1]
        assert w != 8 and t[8].shape == (3, 3, 3, 8)                        # a new constant, the original kept
        assert p.buffer_bytes(t[w].buffer) == np.ascontiguousarray(filt.transpose(3, 0, 1, 2)).tobytes()
        assert conv.inputs[2] == 10
