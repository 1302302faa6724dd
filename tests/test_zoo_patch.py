"""`fbtool patch` on real Keras architectures, float32 and quantized (fixtures/make_zoo.py and
fixtures/make_e2e.py build them here with TF 2.18.1's converter; nothing large is committed).

The sources of truth: the same Keras model converted by the default converter (TFLITE_BUILTINS),
whose op count the patched model must not exceed (the converter's fusions, made by fbtool too);
the Keras model's own outputs; and `fbtool patch`'s verification against the original in
TensorFlow 2.18.1 with the Flex delegate (whole model and every rewritten op)."""
import importlib
import sys
from collections import Counter

import numpy as np
import pytest

from conftest import FIXTURES
from fbtool import open_model
from fbtool.patch.rewrite import patch_model
from helpers import run_on_litert
from test_patch import FLEX_PYTHON, needs_flex_runtime

pytest.importorskip("tensorflow")
sys.path.insert(0, str(FIXTURES))
zoo = importlib.import_module("make_zoo")
e2e = importlib.import_module("make_e2e")

ZOO = list(zoo.ARCHITECTURES)
E2E = ["mlp", "mobilenet_style", "resnet_style", "transformer_block", "preprocessing"]
QUANTIZED = ["mobilenet_v2", "resnet_style", "transformer_block"]


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """(source, name, variant) -> a .tflite path, each model converted once per session."""
    folder = tmp_path_factory.mktemp("zoo")
    cache = {}

    def get(source: str, name: str, variant: str):
        key = (source, name, variant)
        if key not in cache:
            if source == "zoo":
                data = zoo.build(name, variant)
            else:
                data = e2e.build(name, builtins=variant == "builtins_f32")
            cache[key] = folder / f"{source}.{name}.{variant}.tflite"
            cache[key].write_bytes(data)
        return cache[key]
    return get


def ops(path) -> Counter:
    with open_model(path) as m:
        return Counter(op.opcode.name for sg in m.subgraphs for op in sg.operators)


def _patched(src, tmp_path, verify=None):
    out = tmp_path / "patched.tflite"
    doc = patch_model(src, out, verify=verify)
    assert doc["flex_after"] == 0 and doc["kept"] == [], doc["kept"]
    return out, doc


@pytest.mark.parametrize("case", [("zoo", a, v) for a in ZOO for v in ("f32", "f16")]
                         + [("e2e", n, "f32") for n in E2E], ids=lambda c: ".".join(c))
def test_no_more_ops_than_the_converter_makes(case, built, tmp_path):
    """HARD_SWISH, PRELU, LEAKY_RELU, dilated and Conv1D convs, TRANSPOSE_CONV's bias, PAD in SAME,
    keep_num_dims: every fusion the converter makes, so the patched model has at most its ops."""
    source, name, precision = case
    src = built(source, name, f"select_{precision}") if source == "zoo" else FIXTURES / "e2e" / f"{name}.tflite"
    twin = built(source, name, f"builtins_{precision}")
    out, _ = _patched(src, tmp_path)
    mine, theirs = ops(out), ops(twin)
    assert sum(mine.values()) <= sum(theirs.values()), (mine - theirs, theirs - mine)
    assert not {k for k in mine if k.startswith("Flex")}


@needs_flex_runtime
@pytest.mark.parametrize("name", QUANTIZED)
@pytest.mark.parametrize("variant", ["select_f16", "select_dynamic"])
def test_quantized_models_patch_fully_and_match(name, variant, built, tmp_path):
    """Float16 models feed every constant through a DEQUANTIZE (dynamic-range changes nothing with
    SELECT_TF_OPS only): zero Flex ops after the patch, proved against the original in TF 2.18.1 and
    against Keras on ai-edge-litert, within float16's precision for float16 weights."""
    from fbtool.verify.compare import verify_models

    out, doc = _patched(built("zoo", name, variant), tmp_path,
                        verify=lambda a, b: verify_models(a, b, FLEX_PYTHON))
    v = doc["verification"]
    assert v["ok"] and v["first_divergence"] is None and v["runtimes"][1] == "ai-edge-litert", v
    inputs, outputs = zoo.reference(name)
    np.savez(tmp_path / "ref.npz", **{f"input:{k}": x for k, x in inputs.items()})
    got = run_on_litert(out, tmp_path / "ref.npz", tmp_path / "out.npz")
    tolerance = 2e-3 if variant == "select_f16" else 1e-5
    for key, want in outputs.items():
        assert np.abs(got[key] - want).max() <= tolerance * np.abs(want).max(), key
    if variant == "select_f16":     # weights stay float16, re-laid out where they were: no float32 copies
        src = built("zoo", name, variant)
        assert constant_bytes(out)["float16"] == constant_bytes(src)["float16"]
        assert constant_bytes(out)["float32"] < 0.05 * constant_bytes(src)["float16"]     # folded biases only
        assert ops(out)["DEQUANTIZE"] > 0 and out.stat().st_size < built("zoo", name, "select_f32").stat().st_size


def constant_bytes(path) -> Counter:
    """Bytes of constant data per dtype, each buffer counted once."""
    out, seen = Counter(), set()
    with open_model(path) as m:
        for sg in m.subgraphs:
            for t in sg.tensors:
                if m.is_constant(t) and t.buffer not in seen:
                    seen.add(t.buffer)
                    out[t.dtype] += m.buffers[t.buffer].size
    return out
