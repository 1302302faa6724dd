"""The op catalog and runtime table: shape, consistency with the schema, and hand-worked verdicts.

Expected versions and runtimes below were read from the sources the data cites (LiteRT @ f6745779),
not produced by running fbtool.
"""
import json

import jsonschema
import pytest

from conftest import ROOT
from fbtool import data
from fbtool.flex.catalog import TensorInfo, load_catalog
from fbtool.reader.model import SCHEMA

BUILTINS = set(SCHEMA.enums["BuiltinOperator"])
CATALOG = data.load("op_catalog")
RUNTIMES = data.load("runtime_versions")


def t(dtype="float32", shape=(1, 4), const=False):
    return TensorInfo(dtype, tuple(shape), const)


@pytest.mark.parametrize("name", ["op_catalog", "runtime_versions", "custom_ops"])
def test_data_matches_schema(name):
    schema = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data.load(name))


def test_builtin_names_exist():
    assert set(RUNTIMES["ops"]) <= BUILTINS
    named = {e["builtin"] for e in CATALOG["ops"].values()} - {None}
    assert named <= BUILTINS


def test_runtime_table_entries():
    # runtime_version.cc: {{BuiltinOperator_ADD, 4}, "2.6.0"}, {{BuiltinOperator_BATCH_MATMUL, 1}, "2.3.0"}
    assert RUNTIMES["ops"]["ADD"]["4"] == "2.6.0"
    assert RUNTIMES["ops"]["BATCH_MATMUL"]["1"] == "2.3.0"
    assert "1" not in RUNTIMES["ops"]["BROADCAST_TO"]  # version 1 was rolled back
    assert sum(len(v) for v in RUNTIMES["ops"].values()) > 400


def test_every_reachable_version_has_a_runtime():
    for name, e in CATALOG["ops"].items():
        if e["builtin"] is None:
            continue
        rules = e.get("versions", [])
        versions = {r["version"] for r in rules}
        if not any(r["if"] == {} for r in rules):
            versions.add(1)
        for v in versions:
            assert str(v) in RUNTIMES["ops"].get(e["builtin"], {}), (name, e["builtin"], v)


def test_dtypes_are_tflite_type_names():
    names = {n.lower() for n in SCHEMA.enums["TensorType"]}
    for name, e in CATALOG["ops"].items():
        for allowed in e.get("dtypes", {}).values():
            assert set(allowed) <= names, name


def test_every_op_cites_a_listed_source():
    cited = " ".join(CATALOG["sources"].values())
    for name, e in CATALOG["ops"].items():
        for part in e["source"].split(", "):
            assert f"/{part} @ " in cited, (name, part)


def test_coverage():
    ops = CATALOG["ops"]
    assert len(ops) >= 70
    for name in ("AddV2", "MatMul", "BiasAdd", "Conv2D", "DepthwiseConv2dNative", "FusedBatchNormV3", "Erf", "Einsum",
                 "ConcatV2", "GatherV2", "TensorListReserve", "Identity", "StopGradient", "MatrixDeterminant", "Roll"):
        assert name in ops, name


def test_allowlist():
    catalog = load_catalog()
    allow = CATALOG["flex_allowlist"]
    assert len(allow) > 700 and allow == sorted(allow)
    for name in ("Abs", "AddV2", "Conv2D", "MatrixDeterminant", "Roll", "TensorListReserve", "StringJoin",
                 "CaseFoldUTF8", "SentencepieceOp", "SentencepieceDecode", "TFText>NgramsStringJoin"):
        assert catalog.on_allowlist(name), name
    # Not allowlisted: Erfinv only converts as a custom op; WHILE is always a builtin.
    for name in ("Erfinv", "While", "NotAnOp"):
        assert not catalog.on_allowlist(name), name


def test_addv2_float32_is_add_v1():
    v = load_catalog().assess("AddV2", {"T": "float32"}, [t(), t()])
    assert (v.rewritable, v.builtin, v.version, v.min_runtime) == (True, "ADD", 1, "1.5.0")


def test_addv2_int64_is_add_v4():
    # op_version.cc: ADD with int64 input 0 -> version 4; runtime_version.cc: {ADD, 4} -> "2.6.0".
    v = load_catalog().assess("AddV2", {"T": "int64"}, [t("int64"), t("int64")])
    assert (v.rewritable, v.builtin, v.version, v.min_runtime) == (True, "ADD", 4, "2.6.0")


def test_addv2_float64_is_refused():
    v = load_catalog().assess("AddV2", {"T": "float64"}, [t("float64"), t("float64")])
    assert not v.rewritable and v.reason.startswith("T=float64 not supported by ADD")


def test_broadcast_rank_limit():
    # tfl_ops.cc VerifyAddOpShapeConstraints: broadcasting up to 6 dims; same static shapes at any rank.
    catalog = load_catalog()
    big = (1,) * 7
    assert not catalog.assess("AddV2", {"T": "float32"}, [t(shape=big), t(shape=(1,))]).rewritable
    assert catalog.assess("AddV2", {"T": "float32"}, [t(shape=big), t(shape=big)]).rewritable


def test_matrix_determinant_has_no_builtin_but_a_decomposition():
    v = load_catalog().assess("MatrixDeterminant", {"T": "float32"}, [t(shape=(2, 3, 3))])
    assert v.rewritable and v.builtin is None and v.min_runtime
    assert v.reason.startswith("MatrixDeterminant -> 2x2: ad - bc") and "RESHAPE, UNPACK, MUL, SUB, ADD" in v.reason
    v = load_catalog().assess("MatrixDeterminant", {"T": "float64"}, [t("float64", (2, 3, 3))])
    assert not v.rewritable and v.reason == "T=float64 not supported by the decomposition (accepts float32)"


def test_concat_needs_constant_axis():
    catalog = load_catalog()
    attrs = {"T": "float32", "N": 2, "Tidx": "int32"}
    v = catalog.assess("ConcatV2", attrs, [t(), t(), t("int32", (), const=False)])
    assert not v.rewritable and v.reason == "input 2 must be constant for CONCATENATION"
    v = catalog.assess("ConcatV2", attrs, [t(), t(), t("int32", (), const=True)])
    # runtime_version.cc: {CONCATENATION, 1} -> "1.5.0"
    assert (v.rewritable, v.builtin, v.version, v.min_runtime) == (True, "CONCATENATION", 1, "1.5.0")


CONV = {"T": "float32", "strides": [1, 1, 1, 1], "dilations": [1, 1, 1, 1], "padding": "SAME",
        "explicit_paddings": [], "use_cudnn_on_gpu": True}


def test_conv2d_nchw_is_refused():
    attrs = dict(CONV, data_format="NCHW")
    v = load_catalog().assess("Conv2D", attrs, [t(shape=(1, 3, 8, 8)), t(shape=(3, 3, 3, 4), const=True)])
    assert not v.rewritable and v.builtin == "CONV_2D" and v.reason.startswith("data_format='NCHW'")


def test_conv2d_nhwc():
    catalog = load_catalog()
    attrs = dict(CONV, data_format="NHWC")
    inputs = [t(shape=(1, 8, 8, 3)), t(shape=(3, 3, 3, 4), const=True)]
    v = catalog.assess("Conv2D", attrs, inputs)
    # runtime_version.cc: {CONV_2D, 1} -> "1.5.0"
    assert (v.rewritable, v.builtin, v.version, v.min_runtime) == (True, "CONV_2D", 1, "1.5.0")
    assert not catalog.assess("Conv2D", dict(attrs, strides=[2, 1, 1, 1]), inputs).rewritable
    assert not catalog.assess("Conv2D", dict(attrs, padding="EXPLICIT"), inputs).rewritable
    assert not catalog.assess("Conv2D", attrs, [inputs[0], t(shape=(3, 3, 3, 4))]).rewritable


def test_version_rules():
    catalog = load_catalog()
    # op_version.cc: DEPTHWISE_CONV_2D dilation != 1 -> 2; runtime_version.cc: {DEPTHWISE_CONV_2D, 2} -> "1.12.0".
    attrs = dict(CONV, data_format="NHWC", dilations=[1, 2, 2, 1])
    v = catalog.assess("DepthwiseConv2dNative", attrs, [t(shape=(1, 8, 8, 3)), t(shape=(3, 3, 3, 1), const=True)])
    assert (v.version, v.min_runtime) == (2, "1.12.0")
    # op_version.cc: STRIDED_SLICE new_axis_mask != 0 -> 6; runtime_version.cc: {STRIDED_SLICE, 6} -> "2.6.0".
    attrs = {"T": "float32", "Index": "int32", "begin_mask": 0, "end_mask": 0, "ellipsis_mask": 0,
             "new_axis_mask": 1, "shrink_axis_mask": 0}
    v = catalog.assess("StridedSlice", attrs, [t(), t("int32", (2,), True), t("int32", (2,), True), t("int32", (2,), True)])
    assert (v.version, v.min_runtime) == (6, "2.6.0")
    # op_version.cc: BROADCAST_TO starts at version 2; runtime_version.cc: {BROADCAST_TO, 2} -> "2.5.0".
    v = catalog.assess("BroadcastTo", {"T": "float32", "Tidx": "int32"}, [t(), t("int32", (2,), True)])
    assert (v.version, v.min_runtime) == (2, "2.5.0")
    # op_version.cc: CAST to float16 -> 5; runtime_version.cc: {CAST, 5} -> "2.12.0".
    v = catalog.assess("Cast", {"SrcT": "float32", "DstT": "float16", "Truncate": False}, [t()])
    assert (v.version, v.min_runtime) == (5, "2.12.0")


def test_missing_attrs_take_tf_defaults():
    # Tk and index_type joined TopKV2 in later TF versions; older NodeDefs lack them (default int32).
    catalog = load_catalog()
    v = catalog.assess("TopKV2", {"T": "float32", "sorted": True}, [t(), t("int32", (), True)])
    assert (v.rewritable, v.builtin, v.version) == (True, "TOPK_V2", 1)
    v = catalog.assess("TopKV2", {"T": "float32", "Tk": "int64"}, [t(), t("int64", (), True)])
    assert not v.rewritable and v.reason.startswith("Tk=int64")


def test_mean_axes_must_be_int32():
    v = load_catalog().assess("Mean", {"T": "float32", "Tidx": "int64", "keep_dims": True}, [t(), t("int64", (1,), True)])
    assert not v.rewritable and v.reason.startswith("Tidx=int64 not supported by MEAN")


def test_identity_is_removed_and_unknown_ops_are_refused():
    catalog = load_catalog()
    v = catalog.assess("Identity", {"T": "float32"}, [t()])
    assert v.rewritable and v.builtin is None and v.reason.startswith("delete Identity")
    v = catalog.assess("Erf", {"T": "float32"}, [t()])      # alone (not in GELU): decomposed
    assert v.rewritable and v.builtin is None and v.reason.startswith("Erf -> ") and v.min_runtime == "2.2.0"
    v = catalog.assess("Erf", {"T": "float16"}, [t("float16")])
    assert not v.rewritable and v.reason == "T=float16 not supported by the decomposition (accepts float32)"
    v = catalog.assess("NoSuchOp", {}, [])
    assert (v.rewritable, v.reason) == (False, "not in fbtool's catalog")
    assert catalog.entry("NoSuchOp") is None and catalog.entry("AddV2")["builtin"] == "ADD"
