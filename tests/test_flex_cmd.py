"""`fbtool flex` and `fbtool ops`: JSON against their schemas, facts from TensorFlow's own
parsing (fixtures/flex_golden.json) and from reading the models by hand."""
import json

import jsonschema
import pytest

from conftest import FIXTURES, MODELS, ROOT
from helpers import mutated, run_fbtool

FLEX_SCHEMA = json.loads((ROOT / "schemas" / "flex.schema.json").read_text())
OPS_SCHEMA = json.loads((ROOT / "schemas" / "ops.schema.json").read_text())
GOLDEN = json.loads((FIXTURES / "flex_golden.json").read_text())


def flex_doc(path, *args):
    r = run_fbtool("flex", "--json", *args, path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, FLEX_SCHEMA)
    return doc


@pytest.mark.parametrize("model", MODELS, ids=[m.stem for m in MODELS])
def test_flex_json_lists_the_ops_tensorflow_decodes(model):
    doc = flex_doc(model)
    assert [(o["subgraph"], o["index"], o["custom_code"], o["tf_op"], o["attrs"]) for o in doc["ops"]] == [
        (g["subgraph"], g["index"], g["custom_code"], g["tf_op"], g["attrs"]) for g in GOLDEN.get(model.name, [])]


def test_select_only_model_everything_with_a_builtin_is_rewritable():
    doc = flex_doc(FIXTURES / "select_only_cnn.tflite")
    # Every TF op here has a builtin (Identity/StopGradient are simply removed); Erf becomes one as
    # part of GELU (x*0.5*(1+erf(x/sqrt2))), fused with the four ops around it.
    assert all(o["rewritable"] for o in doc["ops"])
    erf = next(o for o in doc["ops"] if o["tf_op"] == "Erf")
    assert erf["builtin"] == "GELU" and erf["rule"] == "gelu" and "fused into op" in erf["reason"]
    conv = next(o for o in doc["ops"] if o["tf_op"] == "Conv2D")
    assert (conv["builtin"], conv["layer"], conv["island"]) == ("CONV_2D", "conv2d_1", 0)
    assert (doc["summary"]["islands"], doc["summary"]["partitions"]) == (1, 1)


EVERY_MODEL = MODELS + sorted((FIXTURES / "e2e").glob("*.tflite")) + sorted((FIXTURES / "shapes").glob("*.tflite"))


@pytest.mark.parametrize("model", EVERY_MODEL, ids=[f"{m.parent.name}/{m.stem}" for m in EVERY_MODEL])
def test_flex_says_what_patch_does(model):
    """`flex` calls an op rewritable exactly when `patch` rewrites it, with the same builtin; what stays,
    stays for the same reason (flex once called a grouped Conv2D rewritable and patch kept it)."""
    ops = {(o["subgraph"], o["index"]): o for o in flex_doc(model)["ops"]}
    r = run_fbtool("patch", "--dry-run", "--json", model)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rewritten = {(w["subgraph"], w["index"]): w for w in doc["rewrites"]}
    kept = {(k["subgraph"], k["index"]): k for k in doc["kept"]}
    assert sorted(ops) == sorted([*rewritten, *kept])
    for key, o in ops.items():
        assert o["rewritable"] == (key in rewritten), (key, o["reason"])
        if key in kept and "error" not in o and o["kind"] == "flex":
            assert o["reason"] == kept[key]["reason"]
        if key in rewritten and not rewritten[key].get("removed"):
            w = rewritten[key]
            into = rewritten[(w["subgraph"], w["fused_into"])] if "fused_into" in w else w
            assert (o["builtin"], o["version"]) == (into["builtin"], into["version"])


def test_grouped_convolution_is_not_called_rewritable(tmp_path):
    """CONV_2D has no groups (a grouped Conv2D is op version 6 territory fbtool does not write): both
    flex and patch keep it, for the same reason."""
    tf = pytest.importorskip("tensorflow")
    w = tf.constant(__import__("numpy").ones((3, 3, 2, 8), "float32"))
    fn = tf.function(lambda x: tf.nn.conv2d(x, w, 1, "SAME"), input_signature=[tf.TensorSpec([1, 8, 8, 4])])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.SELECT_TF_OPS]
    path = tmp_path / "grouped.tflite"
    path.write_bytes(converter.convert())
    conv = next(o for o in flex_doc(path)["ops"] if o["tf_op"] == "Conv2D")
    assert not conv["rewritable"] and "grouped convolution" in conv["reason"]
    doc = json.loads(run_fbtool("patch", "--dry-run", "--json", path).stdout)
    assert [k["reason"] for k in doc["kept"] if k["tf_op"] == "Conv2D"] == [conv["reason"]]


def test_ops_without_a_builtin_are_decomposed():
    """MatrixDeterminant (3x3, dynamic batch) and Roll (a tensor shift) have no builtin: both are
    computed by a few, which flex names as patch would emit them."""
    doc = flex_doc(FIXTURES / "mixed_flex.tflite")
    reasons = {o["tf_op"]: o["reason"] for o in doc["ops"]}
    assert set(reasons) == {"MatrixDeterminant", "Roll"}
    assert all(o["rewritable"] and o["rule"] == "decompose" and o["on_allowlist"] for o in doc["ops"])
    assert reasons["MatrixDeterminant"] == "MatrixDeterminant -> ADD v1, after RESHAPE v1, UNPACK v1, MUL v1 x9, " \
                                           "SUB v1 x4 (decompose)"
    assert reasons["Roll"] == "Roll -> CONCATENATION v1, after SLICE v1 x2 (decompose)"
    assert (doc["summary"]["islands"], doc["summary"]["partitions"]) == (2, 1)


def test_unsupported_ops_say_why_they_stay():
    doc = flex_doc(FIXTURES / "string_flex.tflite")
    assert all(not o["rewritable"] and o["on_allowlist"] for o in doc["ops"])
    assert all(o["reason"].startswith(f"no TFLite builtin for {o['tf_op']}: ") for o in doc["ops"])


def test_string_model_islands_and_partitions():
    doc = flex_doc(FIXTURES / "string_flex.tflite")
    assert (doc["summary"]["islands"], doc["summary"]["partitions"]) == (3, 2)
    assert doc["summary"]["rewritable"] == 0


def test_custom_op_and_fail_on():
    doc = flex_doc(FIXTURES / "custom_op.tflite")
    (op,) = doc["ops"]
    assert (op["kind"], op["tf_op"], op["attrs"], op["rewritable"]) == ("custom", "Erfinv", {"T": 0}, False)
    assert "kernel registered as 'Erfinv'" in op["reason"]
    assert run_fbtool("flex", "--fail-on", "custom", FIXTURES / "custom_op.tflite").returncode == 1
    assert run_fbtool("flex", "--fail-on", "flex", FIXTURES / "custom_op.tflite").returncode == 0
    assert run_fbtool("flex", "--fail-on", "flex,custom", FIXTURES / "mixed_flex.tflite").returncode == 1
    assert run_fbtool("flex", "--fail-on", "flex,custom", FIXTURES / "builtin_cnn.tflite").returncode == 0
    bad = run_fbtool("flex", "--fail-on", "delegate", FIXTURES / "builtin_cnn.tflite")
    assert bad.returncode == 2 and bad.stderr.startswith("fbtool: error:")


def test_undecodable_options_are_reported(tmp_path):
    def change(m):
        op = m.subgraphs[0].operators[3]   # FlexMatrixDeterminant
        op.customOptions = [1, 2, 3, 250]
    doc = flex_doc(mutated(tmp_path, "mixed_flex.tflite", change))
    op = next(o for o in doc["ops"] if o["index"] == 3)
    assert "error" in op and not op["rewritable"] and doc["summary"]["undecodable"] == 1


def test_flex_on_a_broken_file(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"TFL3" * 3)
    r = run_fbtool("flex", p)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith(f"fbtool: error: {p}: ")


def test_ops_across_models():
    r = run_fbtool("ops", "--json", *MODELS)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, OPS_SCHEMA)
    assert {"op": "CONV_2D", "version": 3, "models": [str(FIXTURES / "quant_int8.tflite")]} in doc["builtin"]
    assert [c["custom_code"] for c in doc["custom"]] == ["Erfinv"]
    flex = {f["tf_op"] for f in doc["flex"]}
    assert {"MatrixDeterminant", "Roll", "Conv2D", "StringJoin"} <= flex


def test_ops_list_flex_ops_format():
    r = run_fbtool("ops", "--list-flex-ops", FIXTURES / "mixed_flex.tflite", FIXTURES / "builtin_cnn.tflite")
    assert r.stdout == '["MatrixDeterminant","Roll"]\n'
    r = run_fbtool("ops", FIXTURES / "builtin_cnn.tflite", FIXTURES / "nope.tflite")
    assert r.returncode == 2 and str(FIXTURES / "nope.tflite") in r.stderr


def test_tensorlist_ops_say_why_they_stay():
    doc = flex_doc(FIXTURES / "tensorlist_flex.tflite")
    assert doc["summary"]["flex_ops"] == 11 and doc["summary"]["rewritable"] == 0
    for op in doc["ops"]:
        assert op["tf_op"].startswith("TensorList")
        assert f"no TFLite builtin for {op['tf_op']}" in op["reason"]


@pytest.mark.parametrize("model", [m for m in MODELS if m.name not in GOLDEN], ids=lambda m: m.stem)
def test_models_without_flex_ops_have_no_islands(model):
    doc = flex_doc(model)
    assert doc["ops"] == [] and doc["islands"] == []
    assert doc["summary"]["partitions"] == 0
