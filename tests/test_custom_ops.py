"""Custom ops the stock runtimes run (fbtool/data/custom_ops.json), held against the runtimes.

Every op in the data has a one-op model (tests/custom_op_models.py) that each runtime loads in a
fresh process, with LiteRT's default settings (XNNPACK applied) and without default delegates.
"resolver" must run both ways, "xnnpack" only with the defaults, null neither; each unresolved
failure must be the runtime's own "unresolved custom op" error. Then the real case the data is
for: MediaPipe's selfie segmentation models, as the npm package ships them."""
import json
import os
import subprocess
import sys

import pytest

from custom_op_models import MODELS
from fbtool import data
from fbtool.flex.analyze import analyze_flex
from helpers import run_fbtool
from test_corpus import MODELS as CORPUS

DATA = data.load("custom_ops")["ops"]
RUN = """
import sys
runtime, resolver, path = sys.argv[1:]
if runtime == "tensorflow":
    import tensorflow as tf
    Interpreter, kinds = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
else:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType as kinds
try:
    Interpreter(model_path=path, experimental_op_resolver_type=getattr(kinds, resolver)).allocate_tensors()
    print("runs")
except RuntimeError as e:
    print("unresolved" if "unresolved custom op" in str(e) else "error: " + str(e)[:300])
"""
RUNTIMES = {"ai-edge-litert 2.3.0": "litert", "tensorflow 2.18.1": "tensorflow"}


def outcome(runtime: str, resolver: str, path) -> str:
    r = subprocess.run([sys.executable, "-c", RUN, runtime, resolver, str(path)], capture_output=True, text=True,
                       timeout=300)
    return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else f"crashed: {r.returncode}"


def test_every_known_custom_op_has_a_model():
    assert set(MODELS) == set(DATA)


@pytest.mark.parametrize("runtime", sorted(RUNTIMES.values()))
@pytest.mark.parametrize("code", sorted(DATA))
def test_stock_runtimes_run_what_the_data_says(code, runtime, tmp_path):
    if runtime == "tensorflow":
        pytest.importorskip("tensorflow")
    path = tmp_path / "op.tflite"
    path.write_bytes(MODELS[code]())
    entry = DATA[code]
    listed = runtime in {RUNTIMES[r] for r in entry.get("runtimes", ())}
    want = {"resolver": ("runs", "runs"), "xnnpack": ("runs", "unresolved")}.get(entry["runs"] if listed else None,
                                                                                ("unresolved", "unresolved"))
    got = (outcome(runtime, "AUTO", path), outcome(runtime, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", path))
    assert got == want


def test_raw_struct_options_decode():
    """Convolution2DTransposeBias's 12 option bytes are TfLiteTransposeConvParams (padding 1 is
    the C enum's SAME), not a FlexBuffer."""
    import struct

    from fbtool.flex.custom import decode_struct

    assert decode_struct("Convolution2DTransposeBias", struct.pack("<3i", 1, 2, 3)) == \
        {"padding": "SAME", "stride_width": 2, "stride_height": 3}
    assert decode_struct("MaxUnpooling2D", struct.pack("<10i", 2, 2, 2, 3, 3, 1, 0, 0, 0, 0)) == \
        {"padding": "VALID", "stride_width": 2, "stride_height": 2, "filter_width": 3, "filter_height": 3,
         "activation": "RELU"}
    assert decode_struct("Mfcc", b"\0" * 12) is None


SELFIE = [m for m in CORPUS if m["package"].startswith("@mediapipe/selfie_segmentation")]


def test_mediapipe_selfie_segmentation_runs_on_stock_litert(tmp_path):
    """The npm package's models: flex shows the custom op's options decoded and says stock LiteRT
    runs it, `audit --deny custom` passes them with a note, and `flex --fail-on custom` is 0."""
    if not SELFIE:
        if os.environ.get("FBTOOL_REQUIRE_CORPUS"):
            pytest.fail("the npm selfie models are not in the corpus cache: run tests/corpus/fetch_corpus.py (needs npm)")
        pytest.skip("corpus cache absent (python tests/corpus/fetch_corpus.py)")
    for m in SELFIE:
        doc = analyze_flex(m["path"])
        (op,) = doc["ops"]
        assert (op["custom_code"], op["stock"]) == ("Convolution2DTransposeBias", "xnnpack")
        assert op["attrs"] == {"padding": "SAME", "stride_width": 2, "stride_height": 2}
        assert op["reason"].startswith("runs on stock LiteRT with default settings")
        assert doc["summary"]["must_stay"] == 0 and doc["summary"]["stock_custom_ops"] == 1
        assert run_fbtool("flex", "--fail-on", "custom", m["path"]).returncode == 0
        assert outcome("litert", "AUTO", m["path"]) == "runs"
    r = run_fbtool("audit", "--deny", "custom", "--format", "json", *[m["path"] for m in SELFIE])
    assert r.returncode == 0, r.stdout
    records = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    findings = [f for rec in records for f in rec.get("findings", ())]
    assert findings and all(f["rule"] == "stock-custom-op" and f["level"] == "note" and not f["violation"]
                            for f in findings)
