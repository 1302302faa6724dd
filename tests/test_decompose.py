"""Decompositions: TF ops with no builtin of their own, computed by a few builtins.

Each case of fixtures/make_decomp.py is a TF op converted by TF 2.18.1's converter as users convert
it; `fbtool patch` must rewrite it, emit only the builtins its catalog entry declares, and the
patched model, run on ai-edge-litert, must agree with TensorFlow's own kernel on inputs that reach
the edges (zeros, signed zeros, subnormals, overflow thresholds, infinities, NaN, ids out of range),
within the contract the catalog states (exact, or a number of ulp). `fbtool patch`'s own
verification against TensorFlow with the Flex delegate runs too (whole model and per op)."""
import importlib
import sys

import numpy as np
import pytest

from conftest import FIXTURES
from fbtool import data, open_model
from fbtool.patch.rewrite import patch_model
from helpers import run_on_litert
from test_patch import FLEX_PYTHON, needs_flex_runtime

pytest.importorskip("tensorflow")
sys.path.insert(0, str(FIXTURES))
decomp = importlib.import_module("make_decomp")
CATALOG = data.load("op_catalog")["ops"]


def contract(tf_op: str) -> dict:
    """The decomposition's contract; an op with one builtin of its own (Atan2 -> ATAN2) is held
    to the tolerance fbtool verify applies."""
    entry = CATALOG[tf_op]
    if "decomposition" in entry:
        return entry["decomposition"]
    return {"into": [entry["builtin"]], "error": {"rtol": 1e-5, "note": "one builtin"}}


def ulp_error(got: np.ndarray, want: np.ndarray, atol: float = 0.0) -> float:
    """The largest distance, less ``atol``, in units in the last place of TensorFlow's value; NaN
    must meet NaN and an infinity the same infinity (an infinite distance otherwise)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    nan = np.isnan(want)
    if (np.isnan(got) != nan).any():
        return np.inf
    special = ~nan & ~np.isfinite(want) | ~np.isfinite(got) & ~nan
    if (got[special] != want[special]).any():
        return np.inf
    ok = ~nan & ~special
    spacing = np.spacing(np.abs(want[ok]).astype(np.float32)).astype(np.float64)
    return float(np.max(np.maximum(np.abs(got[ok] - want[ok]) - atol, 0.0) / spacing, initial=0.0))


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decomp")

    def get(name):
        model = folder / f"{name}.tflite"
        if not model.exists():
            tflite, inputs, outputs = decomp.build(name)
            model.write_bytes(tflite)
            np.savez(folder / f"{name}.npz", **{f"input:{k}": v for k, v in inputs.items()},
                     **{f"output:{k}": v for k, v in outputs.items()})
        return model, folder / f"{name}.npz"
    return get


@pytest.mark.parametrize("name", sorted(decomp.CASES))
def test_decomposition_matches_tensorflow(name, case_files, tmp_path):
    """Exactly as the catalog promises on LiteRT's kernels; under XNNPACK (LiteRT's default), which
    flushes subnormal floats to zero where TensorFlow's kernels do not, the same away from them.
    LiteRT's own float kernels (DIV, MUL, ADD, ...) clamp their results to +-FLT_MAX
    (kernel_util.h CalculateActivationRange for no activation), so an infinity TensorFlow gives may
    come out as FLT_MAX: a property of every TFLite model, converted or patched."""
    case = decomp.CASES[name]
    src, npz = case_files(name)
    with open_model(src) as m:
        flex = {op.opcode.custom_code for sg in m.subgraphs for op in sg.operators if op.opcode.kind == "flex"}
    assert "Flex" + case.tf_op in flex, f"the conversion left no Flex{case.tf_op} ({flex})"
    out = tmp_path / "patched.tflite"
    doc = patch_model(src, out)
    assert doc["flex_after"] == 0, doc["kept"]
    d = contract(case.tf_op)
    made = [r for r in doc["rewrites"] if r["tf_op"] == case.tf_op]
    emitted = {r["builtin"] for r in made} | {b.rsplit(" v", 1)[0] for r in made for b in r.get("inserted", [])}
    assert made and emitted <= set(d["into"]), "emitted a builtin the catalog does not declare"
    want = {k.split(":", 1)[1]: v for k, v in np.load(npz).items() if k.startswith("output:")}
    inputs = [v for k, v in np.load(npz).items() if k.startswith("input:")]
    for resolver in ("BUILTIN_WITHOUT_DEFAULT_DELEGATES", "AUTO"):
        got = run_on_litert(out, npz, tmp_path / f"{resolver}.npz", resolver)
        for key, value in want.items():
            mine = got[key]
            assert mine.shape == value.shape and mine.dtype == value.dtype
            if value.dtype.kind == "f":
                keep = compared(value, mine, inputs, resolver, d["error"])
                mine, value = mine[keep], value[keep]
            if value.dtype.kind == "f":     # LiteRT's float kernels saturate infinities at +-FLT_MAX
                big = np.finfo(np.float32).max
                mine = np.where(np.isinf(value) & (np.abs(mine) == big), value, mine)
            if d["error"] == "exact" or value.dtype.kind != "f":
                np.testing.assert_array_equal(mine, value, err_msg=f"{key} on {resolver}")
            elif "rtol" in d["error"]:
                finite = np.isfinite(value)
                np.testing.assert_array_equal(mine[~finite], value[~finite], err_msg=f"{key} on {resolver}")
                scale = np.max(np.abs(value[finite]), initial=0.0)
                assert np.max(np.abs(mine[finite] - value[finite]), initial=0.0) <= d["error"]["rtol"] * scale, \
                    f"{key} on {resolver}"
            else:
                e = d["error"]
                limit = e.get("xnnpack_max_ulp", e["max_ulp"]) if resolver == "AUTO" else e["max_ulp"]
                assert ulp_error(mine, value, e.get("atol", 0.0)) <= limit, f"{key} on {resolver}"


def subnormal(x: np.ndarray) -> np.ndarray:
    return (x != 0) & (np.abs(x) < np.finfo(np.float32).tiny)


def compared(want, got, inputs, resolver: str, error) -> np.ndarray:
    """The elements a contract speaks of: XNNPACK flushes subnormals, so under it (and where the
    contract leaves them out) none with a subnormal input or result; none with an infinite input
    where the contract leaves those out."""
    left_out = error.get("except") if isinstance(error, dict) else None
    keep = np.ones(want.shape, bool)
    same_shape = [x for x in inputs if x.dtype.kind == "f" and x.shape == want.shape]
    if resolver == "AUTO" or left_out == "subnormals":
        keep &= ~subnormal(want) & ~subnormal(got)
        for x in same_shape:
            keep &= ~subnormal(x)
    if left_out == "infinite inputs":
        for x in same_shape:
            keep &= ~np.isinf(x)
    return keep


@needs_flex_runtime
@pytest.mark.parametrize("name", sorted(decomp.CASES))
def test_decomposition_passes_fbtool_verify(name, case_files, tmp_path):
    """The per-op verification `fbtool patch` runs by default accepts every decomposition."""
    from fbtool.verify.compare import verify_models

    src, npz = case_files(name)
    edges = tmp_path / "edges.npz"
    np.savez(edges, **{k.split(":", 1)[1]: v for k, v in np.load(npz).items() if k.startswith("input:")})
    doc = patch_model(src, tmp_path / "patched.tflite",
                      verify=lambda a, b: verify_models(a, b, FLEX_PYTHON, inputs=str(edges)))
    assert doc["verification"]["ok"], doc["verification"]


def test_every_decomposition_has_a_case():
    """A catalog decomposition without a converter-made case is a contract nobody holds."""
    declared = {op for op, e in CATALOG.items() if "decomposition" in e}
    covered = {c.tf_op for c in decomp.CASES.values()}
    assert declared - covered == set()


@pytest.mark.parametrize("name", sorted(decomp.KERAS))
def test_keras_preprocessing_patches_to_builtins_and_matches_keras(name, tmp_path):
    """CategoryEncoding and IntegerLookup before a Dense head, converted the usual way: zero Flex
    ops after the patch, and ai-edge-litert computes what Keras does (ids out of the vocabulary and
    the mask token among the inputs)."""
    tflite, inputs, outputs = decomp.build_keras(name)
    src, out, npz = tmp_path / "m.tflite", tmp_path / "p.tflite", tmp_path / "in.npz"
    src.write_bytes(tflite)
    np.savez(npz, **{f"input:{k}": v for k, v in inputs.items()})
    with open_model(src) as m:
        assert any(op.opcode.kind == "flex" for sg in m.subgraphs for op in sg.operators)
    doc = patch_model(src, out)
    assert doc["flex_after"] == 0 and doc["kept"] == [], doc["kept"]
    with open_model(out) as m:
        assert not any(op.opcode.kind != "builtin" for sg in m.subgraphs for op in sg.operators)
    got = run_on_litert(out, npz, tmp_path / "got.npz")
    for key, want in outputs.items():
        np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6)
