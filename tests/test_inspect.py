"""`fbtool inspect`: JSON against its schema and against facts read off each fixture by hand."""
import hashlib
import json
import os
import pty
import subprocess
import sys

import jsonschema
import pytest
from ai_edge_litert.tools import flatbuffer_utils

from conftest import FIXTURES, ROOT
from fbtool import inspect_model
from helpers import run_fbtool


def doc(name):
    return inspect_model(FIXTURES / f"{name}.tflite")


def opcodes(d):
    return {h["opcode"] for h in d["op_histogram"]}


def test_json_matches_schema_and_counts(fixture_model, inspect_schema):
    r = run_fbtool("inspect", "--json", "--sha256", fixture_model)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    jsonschema.validate(d, inspect_schema)
    assert d["file"]["sha256"] == hashlib.sha256(fixture_model.read_bytes()).hexdigest()
    # kinds counted independently from LiteRT's object API
    ref = flatbuffer_utils.convert_bytearray_to_object(bytearray(fixture_model.read_bytes()))
    kinds = {"builtin": 0, "flex": 0, "custom": 0}
    for sg in ref.subgraphs:
        for op in sg.operators:
            oc = ref.operatorCodes[op.opcodeIndex]
            code = (oc.customCode or b"").decode()
            kinds["builtin" if max(oc.builtinCode, oc.deprecatedBuiltinCode) != 32
                  else "flex" if code.startswith("Flex") else "custom"] += 1
    assert {k: d["op_counts"][k] for k in kinds} == kinds
    assert d["op_counts"]["total"] == sum(kinds.values())


def test_select_only_model_is_all_flex():
    d = doc("select_only_cnn")
    assert d["op_counts"]["flex"] == d["op_counts"]["total"] > 10
    assert {"FlexConv2D", "FlexBiasAdd", "FlexDepthwiseConv2dNative", "FlexMaxPool"} <= opcodes(d)
    assert d["conversion"]["options"]["enable_select_tf_ops"] is True


def test_mixed_model_flex_ops():
    d = doc("mixed_flex")
    assert d["op_counts"]["flex"] == 2
    assert {h["opcode"] for h in d["op_histogram"] if h["kind"] == "flex"} == {"FlexMatrixDeterminant", "FlexRoll"}
    assert d["conversion"]["environment"]["tensorflow_version"] == "2.18.1"


def test_custom_op_model():
    d = doc("custom_op")
    assert [h["opcode"] for h in d["op_histogram"] if h["kind"] == "custom"] == ["Erfinv"]
    assert d["conversion"]["options"]["allow_custom_ops"] is True


def test_while_loop_has_three_subgraphs_and_calls():
    d = doc("while_loop")
    assert len(d["subgraphs"]) == 3
    whiles = [op for op in d["subgraphs"][0]["operators"] if op["opcode"] == "WHILE"]
    assert len(whiles) == 1 and sorted(whiles[0]["calls"]) == [1, 2]
    assert whiles[0]["options"] == "WhileOptions"


def test_if_cond_calls_both_branches():
    d = doc("if_cond")
    ifs = [op for op in d["subgraphs"][0]["operators"] if op["opcode"] == "IF"]
    assert len(ifs) == 1 and sorted(ifs[0]["calls"]) == [1, 2]


def test_multi_signature():
    d = doc("multi_signature")
    sigs = {s["key"]: s for s in d["signatures"]}
    assert set(sigs) == {"encode", "decode"}
    enc = sigs["encode"]
    tensors = d["subgraphs"][enc["subgraph"]]["tensors"]
    x = tensors[enc["inputs"][0]["tensor"]]
    assert enc["inputs"][0]["name"] == "x" and x["dtype"] == "float32" and x["shape_signature"] == [-1, 8]


def test_quantized_tensors():
    d = doc("quant_int8")
    t_in = d["subgraphs"][0]["tensors"][d["subgraphs"][0]["inputs"][0]]
    assert t_in["dtype"] == "int8" and len(t_in["quantization"]["scale"]) == 1
    per_channel = [t for t in d["subgraphs"][0]["tensors"] if len(t.get("quantization", {}).get("scale", [])) > 1]
    assert per_channel, "conv weights are quantized per channel"


def test_sparse_tensor():
    d = doc("sparse")
    assert any(t.get("sparse") for t in d["subgraphs"][0]["tensors"])
    assert "DENSIFY" in opcodes(d)


def test_string_tensors():
    d = doc("string_flex")
    sg = d["subgraphs"][0]
    assert sg["tensors"][sg["inputs"][0]]["dtype"] == "string"


def test_buffer_offset_model():
    d = doc("buffer_offset")
    assert d["buffers"]["external_bytes"] > 0
    assert d["file"]["flatbuffer_bytes"] < d["file"]["size"]
    assert d["file"]["trailing_bytes"] == 0
    ext = [t for t in d["subgraphs"][0]["tensors"] if t.get("external")]
    assert ext and sum(t["bytes"] for t in ext) == d["buffers"]["external_bytes"]


def test_metadata_and_trailing_zip():
    d = doc("with_metadata")
    assert d["file"]["trailing_zip"] == ["labels.txt"]
    meta = {m["name"]: m for m in d["metadata"]}
    assert meta["TFLITE_METADATA"]["identifier"] == "M001"
    assert d["min_runtime_version"] == "1.5.0"


def test_ops_and_tensors_listing():
    r = run_fbtool("inspect", "--ops", "--tensors", FIXTURES / "while_loop.tflite")
    assert r.returncode == 0
    assert "WHILE(v1)" in r.stdout and "calls subgraph 1,2" in r.stdout
    assert "sha256" not in r.stdout


def _tty_output(env):
    """Run inspect with stdout on a pseudo-terminal; return what it printed."""
    main, replica = pty.openpty()
    full_env = {**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, "PYTHONPATH": str(ROOT), **env}
    p = subprocess.Popen([sys.executable, "-m", "fbtool", "inspect", str(FIXTURES / "mixed_flex.tflite")],
                         stdout=replica, stderr=subprocess.PIPE, env=full_env)
    os.close(replica)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    p.wait()
    os.close(main)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("env,coloured", [({}, True), ({"NO_COLOR": ""}, True), ({"NO_COLOR": "1"}, False)])
def test_colour_only_on_a_terminal_without_no_color(env, coloured):
    assert ("\x1b[" in _tty_output(env)) is coloured


def test_no_colour_into_a_pipe():
    r = run_fbtool("inspect", FIXTURES / "mixed_flex.tflite")
    assert "\x1b[" not in r.stdout and "FlexRoll" in r.stdout
