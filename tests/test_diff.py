"""`fbtool diff`: every --json output against its schema; expectations read off the fixtures by hand
(`fbtool inspect --ops --tensors`), from TensorFlow's own Flex parsing (flex_golden.json), or from
models changed and read back with LiteRT's object API."""
import hashlib
import json
import re

import jsonschema
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.tools import flatbuffer_utils
from flatbuffers import flexbuffers

import fbtool.diff
from conftest import FIXTURES, MODELS, ROOT
from fbtool.diff import diff_models
from helpers import mutated, run_fbtool

SCHEMA = json.loads((ROOT / "schemas" / "diff.schema.json").read_text())
GOLDEN = json.loads((FIXTURES / "flex_golden.json").read_text())
NOTHING = {"added": [], "removed": [], "changed": []}
MLP_HIDDEN = "sequential_1/dense_1/MatMul;sequential_1/dense_1/Relu"  # tensor 3 of builtin_mlp, float32[-1,32]


def diff_json(a, b):
    """Run `fbtool diff --json`; check the schema and that the exit code follows `same`."""
    r = run_fbtool("diff", "--json", a, b)
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert r.returncode == (0 if doc["same"] else 1)
    return doc


def litert(path):
    return flatbuffer_utils.convert_bytearray_to_object(bytearray(path.read_bytes()))


def only(doc, **sections):
    """Every section not named is empty: the change shows where it should and nowhere else."""
    empty = {"ops": {"added": [], "removed": []}, "flex": NOTHING, "custom": NOTHING, "subgraphs": [],
             "metadata": NOTHING, "signatures": NOTHING}
    for key, value in empty.items():
        assert doc[key] == sections.get(key, value), key
    assert doc["weights"]["changed"] == sections.get("weights_changed", [])


def pair(tmp_path, fixture, change):
    """(baseline, changed): both written through LiteRT, so only `change` tells them apart."""
    return (mutated(tmp_path, fixture, lambda m: None, name="a.tflite"),
            mutated(tmp_path, fixture, change, name="b.tflite"))


@pytest.mark.parametrize("model", MODELS, ids=[m.stem for m in MODELS])
def test_a_model_against_itself(model):
    doc = diff_json(model, model)
    assert doc["identical"] and doc["same"]
    only(doc)
    ref = litert(model)
    constants = sum(1 for sg in ref.subgraphs for t in sg.tensors
                    if t.buffer and (ref.buffers[t.buffer].data is not None and len(ref.buffers[t.buffer].data)
                                     or ref.buffers[t.buffer].offset > 1))
    assert doc["weights"]["same"] == constants
    r = run_fbtool("diff", model, model)
    assert (r.returncode, r.stdout) == (0, f"{model} vs {model}: identical\n")


def test_float_cnn_against_its_int8_quantization():
    a, b = FIXTURES / "builtin_cnn.tflite", FIXTURES / "quant_int8.tflite"
    doc = diff_json(a, b)
    assert not doc["identical"] and not doc["same"]

    def ops(*rows):
        return [{"opcode": o, "kind": "builtin", "version": v, "count": n} for o, v, n in rows]
    # PACK, RESHAPE, SHAPE, STRIDED_SLICE stay at v1; the rest move to their int8 versions
    assert doc["ops"] == {
        "added": ops(("CONV_2D", 3, 2), ("DEPTHWISE_CONV_2D", 3, 1), ("FULLY_CONNECTED", 4, 1),
                     ("MAX_POOL_2D", 2, 2), ("SOFTMAX", 2, 1)),
        "removed": ops(("CONV_2D", 1, 2), ("DEPTHWISE_CONV_2D", 1, 1), ("FULLY_CONNECTED", 1, 1),
                       ("MAX_POOL_2D", 1, 2), ("SOFTMAX", 1, 1))}
    assert doc["flex"] == doc["custom"] == NOTHING
    [sg] = doc["subgraphs"]
    t = sg["tensors"]
    assert t["added"] == [f"tfl.pseudo_qconst{i or ''}" for i in range(7)]
    assert t["removed"] == ["arith.constant3", "sequential_1/flatten_1/Reshape/shape/1",
                            "sequential_1/flatten_1/strided_slice/stack", "arith.constant4",
                            "sequential_1/conv2d_1/convolution"]
    what = {c["name"]: c["what"] for c in t["changed"]}
    # the float constants' names are reused for int32 shape constants in the int8 model
    assert what["arith.constant"] == what["arith.constant2"] == ["shape", "dtype"]
    # every float activation becomes quantized int8; the int32 Shape/StridedSlice/Reshape-shape ones do not change
    activations = [n for n, w in what.items() if w == ["dtype", "quantization"]]
    assert len(activations) == 9 and "sequential_1/flatten_1/Shape" not in what
    inp = next(c for c in t["changed"] if c["name"] == "serving_default_keras_tensor:0")
    assert (inp["a"]["dtype"], inp["a"]["quantization"]) == ("float32", None)
    assert inp["b"]["dtype"] == "int8" and inp["b"]["quantization"]["zero_point"] == [-128]
    assert inp["a"]["shape_signature"] == inp["b"]["shape_signature"] == [-1, 16, 16, 3]
    assert [(w["name"], w["bytes_a"], w["bytes_b"]) for w in doc["weights"]["changed"]] == [
        ("arith.constant", 288, 4), ("arith.constant1", 256, 4), ("arith.constant2", 5120, 4)]
    assert doc["weights"]["same"] == 0
    # the int8 model has a second (all-NUL) min_runtime_version; the first says 1.14.0 instead of 1.11.0
    assert doc["metadata"] == {"added": ["min_runtime_version"], "removed": [], "changed": [
        {"name": "min_runtime_version", "bytes_a": 16, "bytes_b": 16},
        {"name": "CONVERSION_METADATA", "bytes_a": 96, "bytes_b": 96}]}
    [sig] = doc["signatures"]["changed"]
    assert sig["key"] == "serving_default"
    assert sig["b"] == {"inputs": [{"name": "keras_tensor", "dtype": "int8", "shape": [-1, 16, 16, 3]}],
                        "outputs": [{"name": "output_0", "dtype": "int8", "shape": [-1, 10]}]}

    r = run_fbtool("diff", a, b)
    assert r.returncode == 1
    lines = [re.sub(r"\s+", " ", line.strip()) for line in r.stdout.splitlines()]
    assert lines[0] == f"{a} vs {b}: differ"
    assert lines.index("- 2 CONV_2D v1") + 1 == lines.index("+ 2 CONV_2D v3")
    assert "Weights: 3 changed, 0 same" in lines
    assert "~ subgraph 0 tensor 3 arith.constant2 5120 B -> 4 B" in lines


def test_inline_and_external_weights_compare_by_content():
    # buffer_offset is the MLP with its 2 weights stored after the flatbuffer; same bytes as builtin_mlp's
    doc = diff_json(FIXTURES / "builtin_mlp.tflite", FIXTURES / "buffer_offset.tflite")
    only(doc, metadata={"added": ["buffer_location"], "removed": ["CONVERSION_METADATA"], "changed": []})
    assert doc["weights"]["same"] == 2


def test_flex_ops_added_and_removed():
    doc = diff_json(FIXTURES / "mixed_flex.tflite", FIXTURES / "select_only_cnn.tflite")
    ops = {name: {o["tf_op"] for o in GOLDEN[name]} for name in ("mixed_flex.tflite", "select_only_cnn.tflite")}
    assert doc["flex"] == {"added": sorted(ops["select_only_cnn.tflite"] - ops["mixed_flex.tflite"]),
                           "removed": ["MatrixDeterminant", "Roll"], "changed": []}
    assert {"opcode": "FlexConv2D", "kind": "flex", "version": 1, "count": 2} in doc["ops"]["added"]


def test_custom_op_added():
    doc = diff_json(FIXTURES / "builtin_mlp.tflite", FIXTURES / "custom_op.tflite")
    assert doc["custom"] == {"added": ["Erfinv"], "removed": [], "changed": []}
    assert {"opcode": "Erfinv", "kind": "custom", "version": 1, "count": 1} in doc["ops"]["added"]


def test_custom_op_attribute_change(tmp_path):
    ref = litert(FIXTURES / "custom_op.tflite")
    [index] = [i for i, op in enumerate(ref.subgraphs[0].operators)
               if ref.operatorCodes[op.opcodeIndex].customCode == b"Erfinv"]

    def change(m):
        m.subgraphs[0].operators[index].customOptions = np.frombuffer(flexbuffers.Dumps({"T": 1}), np.uint8)

    doc = diff_json(*pair(tmp_path, "custom_op.tflite", change))
    # Erfinv's attribute map is {'T': 0} as converted (TensorType FLOAT32)
    only(doc, custom={"added": [], "removed": [], "changed": [
        {"name": "Erfinv", "a": {"subgraph": 0, "index": index, "attrs": {"T": 0}},
         "b": {"subgraph": 0, "index": index, "attrs": {"T": 1}}}]})


def test_one_weight_value_changed(tmp_path, monkeypatch):
    ref = litert(FIXTURES / "builtin_mlp.tflite")
    tensor = ref.subgraphs[0].tensors[2]   # sequential_1/dense_1/MatMul float32[32,16]
    before = bytes(ref.buffers[tensor.buffer].data)

    def change(m):
        m.buffers[tensor.buffer].data[1001] ^= 0x40

    a, b = pair(tmp_path, "builtin_mlp.tflite", change)
    after = bytes(litert(b).buffers[tensor.buffer].data)
    assert len(after) == len(before) == 2048 and after != before
    expected = [{"subgraph": 0, "tensor": 2, "name": "sequential_1/dense_1/MatMul", "bytes_a": 2048, "bytes_b": 2048,
                 "sha256_a": hashlib.sha256(before).hexdigest(), "sha256_b": hashlib.sha256(after).hexdigest()}]
    doc = diff_json(a, b)
    only(doc, weights_changed=expected)
    assert doc["weights"]["same"] == 1
    # large weights are hashed chunk by chunk: a chunk size that leaves a tail gives the same hashes
    monkeypatch.setattr(fbtool.diff, "CHUNK", 300)
    assert diff_models(a, b)["weights"]["changed"] == expected


def test_tensor_shape_changed(tmp_path):
    def change(m):
        t = m.subgraphs[0].tensors[3]
        t.shape, t.shapeSignature = np.array([1, 33], np.int32), np.array([-1, 33], np.int32)

    doc = diff_json(*pair(tmp_path, "builtin_mlp.tflite", change))
    a = {"index": 3, "dtype": "float32", "shape": [1, 32], "shape_signature": [-1, 32], "quantization": None}
    b = {**a, "shape": [1, 33], "shape_signature": [-1, 33]}
    only(doc, subgraphs=[{"index": 0, "tensors": {"added": [], "removed": [], "changed": [
        {"name": MLP_HIDDEN, "what": ["shape"], "a": a, "b": b}]}}])


def test_repeated_tensor_names_pair_in_order(tmp_path):
    def rename(m):
        for t in m.subgraphs[0].tensors[3:5]:
            t.name = b"dup"

    def rename_and_reshape(m):
        rename(m)
        m.subgraphs[0].tensors[4].shape = np.array([1, 11], np.int32)

    a = mutated(tmp_path, "builtin_mlp.tflite", rename, name="a.tflite")
    b = mutated(tmp_path, "builtin_mlp.tflite", rename_and_reshape, name="b.tflite")
    [changed] = diff_json(a, b)["subgraphs"][0]["tensors"]["changed"]
    assert (changed["name"], changed["a"]["index"], changed["b"]["index"]) == ("dup", 4, 4)
    assert (changed["a"]["shape"], changed["b"]["shape"]) == ([1, 10], [1, 11])


def test_signature_renamed(tmp_path):
    def change(m):
        m.signatureDefs[0].signatureKey = b"serve"

    doc = diff_json(*pair(tmp_path, "builtin_mlp.tflite", change))
    only(doc, signatures={"added": ["serve"], "removed": ["serving_default"], "changed": []})


def test_signature_input_renamed(tmp_path):
    def change(m):
        m.signatureDefs[0].inputs[0].name = b"features"

    doc = diff_json(*pair(tmp_path, "builtin_mlp.tflite", change))
    [c] = doc["signatures"]["changed"]
    assert c["key"] == "serving_default"
    assert c["a"]["inputs"] == [{"name": "keras_tensor", "dtype": "float32", "shape": [-1, 16]}]
    assert c["b"]["inputs"] == [{"name": "features", "dtype": "float32", "shape": [-1, 16]}]
    assert c["a"]["outputs"] == c["b"]["outputs"]


def test_metadata_entry_added(tmp_path):
    def change(m):
        buf = fb.BufferT()
        buf.data = np.frombuffer(b"release 2", np.uint8)
        m.buffers.append(buf)
        entry = fb.MetadataT()
        entry.name, entry.buffer = b"release_notes", len(m.buffers) - 1
        m.metadata.append(entry)

    doc = diff_json(*pair(tmp_path, "builtin_mlp.tflite", change))
    only(doc, metadata={"added": ["release_notes"], "removed": [], "changed": []})


def test_subgraphs_only_in_one_model():
    a, b = FIXTURES / "while_loop.tflite", FIXTURES / "builtin_mlp.tflite"
    doc = diff_json(a, b)
    ref = litert(a)
    extra = [sg for sg in doc["subgraphs"] if sg["index"] > 0]
    assert [(sg["index"], sg["tensors"]["removed"], sg["tensors"]["added"]) for sg in extra] == [
        (i, [t.name.decode() for t in ref.subgraphs[i].tensors], []) for i in (1, 2)]


def test_same_content_different_bytes_exits_0(tmp_path):
    # LiteRT's round trip drops the zip of associated files appended after the flatbuffer
    original = FIXTURES / "with_metadata.tflite"
    copy = mutated(tmp_path, "with_metadata.tflite", lambda m: None)
    assert copy.read_bytes() != original.read_bytes()
    doc = diff_json(original, copy)
    assert (doc["identical"], doc["same"]) == (False, True)
    r = run_fbtool("diff", original, copy)
    assert r.returncode == 0
    assert r.stdout.endswith(": no differences in ops, tensors, weights, metadata, signatures (the bytes differ)\n")


@pytest.mark.parametrize("which", ["a", "b"])
def test_bad_model_is_one_line_and_exit_2(tmp_path, which):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes((FIXTURES / "builtin_mlp.tflite").read_bytes()[:300])
    good = FIXTURES / "builtin_mlp.tflite"
    r = run_fbtool("diff", *((bad, good) if which == "a" else (good, bad)))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"fbtool: error: {bad}: ")


def test_missing_file_and_argument():
    r = run_fbtool("diff", FIXTURES / "builtin_mlp.tflite", "no/such.tflite")
    assert (r.returncode, r.stderr) == (2, "fbtool: error: no/such.tflite: No such file or directory\n")
    r = run_fbtool("diff", FIXTURES / "builtin_mlp.tflite")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
