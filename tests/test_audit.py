"""`fbtool audit`: models found by content in folders and nested archives, findings, policy, exit codes.
Expected runtime versions are read by hand from LiteRT's runtime_version.cc (line numbers cited)."""
import io
import json
import zipfile

import jsonschema
import pytest

from conftest import FIXTURES, ROOT
from helpers import run_fbtool

RECORD_SCHEMA = json.loads((ROOT / "schemas" / "audit.schema.json").read_text())


def audit(*args):
    r = run_fbtool("audit", "--format", "json", *args)
    records = [json.loads(line) for line in r.stdout.splitlines()]
    for rec in records:
        jsonschema.validate(rec, RECORD_SCHEMA)
    return r.returncode, records, r.stderr


def _zip(entries: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def shipped(tmp_path):
    """An APK-like zip holding a model (renamed: found by content), a nested AAR with a Flex model,
    a wheel, a MediaPipe-style .task bundle, and a truncated model."""
    mlp = (FIXTURES / "builtin_mlp.tflite").read_bytes()
    flex = (FIXTURES / "mixed_flex.tflite").read_bytes()
    custom = (FIXTURES / "custom_op.tflite").read_bytes()
    aar = _zip({"classes.jar": b"PK\x05\x06" + bytes(18), "assets/det.tflite": flex})
    (tmp_path / "app.apk").write_bytes(_zip({"assets/model.bin": mlp, "libs/vision.aar": aar, "res/a.txt": b"hi"}))
    (tmp_path / "pkg-1.0-py3-none-any.whl").write_bytes(_zip({"pkg/erfinv.tflite": custom}, zipfile.ZIP_STORED))
    (tmp_path / "hands.task").write_bytes(_zip({"hand_detector.tflite": mlp, "hand_landmarks_detector.tflite": mlp}))
    (tmp_path / "broken.tflite").write_bytes(mlp[: len(mlp) // 2])
    (tmp_path / "notes.txt").write_text("not a model")
    return tmp_path


def test_finds_models_by_content_in_nested_archives(shipped):
    code, records, _ = audit(shipped)
    by = {r["location"].replace(str(shipped) + "/", ""): r for r in records}
    assert sorted(by) == ["app.apk!assets/model.bin", "app.apk!libs/vision.aar!assets/det.tflite", "broken.tflite",
                          "hands.task!hand_detector.tflite", "hands.task!hand_landmarks_detector.tflite",
                          "pkg-1.0-py3-none-any.whl!pkg/erfinv.tflite"]
    det = by["app.apk!libs/vision.aar!assets/det.tflite"]
    assert det["flex_ops"] == ["MatrixDeterminant", "Roll"] and det["op_counts"]["flex"] == 2
    import hashlib
    assert det["sha256"] == hashlib.sha256((FIXTURES / "mixed_flex.tflite").read_bytes()).hexdigest()
    assert by["pkg-1.0-py3-none-any.whl!pkg/erfinv.tflite"]["custom_ops"] == ["Erfinv"]
    broken = by["broken.tflite"]
    assert not broken["ok"] and "out of bounds" in broken["error"]
    assert [f["rule"] for f in broken["findings"]] == ["malformed"] and broken["violation"]
    assert code == 1   # malformed is denied by default


def test_deny_flex_and_allow_custom(shipped):
    (shipped / "broken.tflite").unlink()
    code, records, _ = audit(shipped, "--deny", "flex,custom", "--allow-custom", "Erfinv")
    violations = {r["location"].rsplit("!", 1)[-1]: [f["subject"] for f in r["findings"] if f["violation"]]
                  for r in records if r["violation"]}
    assert violations == {"assets/det.tflite": ["MatrixDeterminant", "Roll"]} and code == 1
    code, records, _ = audit(shipped, "--deny", "custom")
    assert code == 1 and [r["custom_ops"] for r in records if r["violation"]] == [["Erfinv"]]
    code, _, _ = audit(shipped)
    assert code == 0


def test_target_runtime_from_runtime_version_cc():
    # quant_int8 uses CONV_2D v3 (runtime_version.cc:74 -> 1.14.0), DEPTHWISE_CONV_2D v3 (:82 -> 1.14.0),
    # FULLY_CONNECTED v4 (:139 -> 1.14.0), MAX_POOL_2D v2 (:174 -> 1.14.0), SOFTMAX v2 (:211 -> 1.14.0),
    # PACK v1 (:304 -> 1.11.0), SHAPE v1 (:309 -> 1.10.0), STRIDED_SLICE v1 (:278 -> 1.6.0), RESHAPE v1 (:209 -> 1.5.0)
    code, (rec,), _ = audit(FIXTURES / "quant_int8.tflite", "--target-runtime", "1.13")
    too_new = sorted(f["subject"] for f in rec["findings"] if f["rule"] == "runtime-too-old")
    assert too_new == ["CONV_2D v3", "DEPTHWISE_CONV_2D v3", "FULLY_CONNECTED v4", "MAX_POOL_2D v2", "SOFTMAX v2"]
    assert rec["required_runtime"] == "1.14.0" and code == 1
    _, (rec,), _ = audit(FIXTURES / "quant_int8.tflite", "--target-runtime", "1.10")
    assert "PACK v1" in [f["subject"] for f in rec["findings"]]
    assert "SHAPE v1" not in [f["subject"] for f in rec["findings"]]
    code, (rec,), _ = audit(FIXTURES / "quant_int8.tflite", "--target-runtime", "2.14")
    assert rec["findings"] == [] and code == 0


def test_policy_file_overrides_and_baseline(shipped, tmp_path):
    (shipped / "broken.tflite").unlink()
    policy = tmp_path / "policy.toml"
    policy.write_text('deny = ["flex", "custom", "signatures"]\nrequire_signatures = true\nmax_size_mb = 1\n'
                      '[[override]]\npath = "*pkg-1.0*"\ndeny = []\n')
    code, records, _ = audit(shipped, "--policy", policy)
    bad = sorted(r["location"].replace(str(shipped) + "/", "") for r in records if r["violation"])
    assert bad == ["app.apk!libs/vision.aar!assets/det.tflite"]   # mixed_flex: Flex ops; it has a signature
    baseline = tmp_path / "baseline.json"
    run_fbtool("audit", shipped, "--policy", policy, "--write-baseline", baseline)
    policy.write_text(policy.read_text().replace("max_size_mb = 1\n", 'max_size_mb = 1\nbaseline = "baseline.json"\n'))
    code, records, _ = audit(shipped, "--policy", policy)
    assert code == 0 and not any(r["violation"] for r in records)


@pytest.mark.parametrize("text,message", [
    ("deny = [\"gpu\"]", "deny takes"),
    ("deny = 3", "deny must be a list"),
    ("colour = 1", "unknown key"),
    ("deny = [", "not valid TOML"),
])
def test_bad_policy_is_a_tool_error(tmp_path, text, message):
    p = tmp_path / "p.toml"
    p.write_text(text)
    r = run_fbtool("audit", FIXTURES / "builtin_mlp.tflite", "--policy", p)
    assert r.returncode == 2 and r.stderr.startswith("fbtool: error:") and message in r.stderr


def test_bad_command_line_policy_is_a_tool_error(tmp_path):
    """--deny is checked like the file's deny, with or without a policy file."""
    p = tmp_path / "p.toml"
    p.write_text('deny = ["flex"]\n')
    for extra in ([], ["--policy", p]):
        r = run_fbtool("audit", FIXTURES / "builtin_mlp.tflite", "--deny", "gpu", *extra)
        assert r.returncode == 2 and r.stderr.startswith("fbtool: error: command line: deny takes")


def test_missing_path_is_a_tool_error(tmp_path):
    r = run_fbtool("audit", tmp_path / "nothing")
    assert r.returncode == 2 and "No such file or directory" in r.stderr


def test_table_output_and_summary(shipped):
    r = run_fbtool("audit", shipped)
    assert "MALFORMED" in r.stdout and "6 model(s): 1 malformed, 1 with Flex ops, 1 with custom ops" in r.stdout


def test_corrupt_archive_is_an_unreadable_finding(tmp_path):
    """A container fbtool cannot look into is never a silent zero: a record with the reason, counted in
    the summary, failing the audit when the policy denies "unreadable"."""
    good = _zip({"m.tflite": (FIXTURES / "builtin_mlp.tflite").read_bytes()})
    (tmp_path / "cut.zip").write_bytes(good[:-30])   # central directory cut off
    code, records, _ = audit(tmp_path)
    assert len(records) == 1 and not records[0]["ok"] and "archive" in records[0]["error"] and code == 0
    assert [f["rule"] for f in records[0]["findings"]] == ["unreadable"]
    code, records, _ = audit(tmp_path, "--deny", "unreadable")
    assert code == 1 and records[0]["violation"]
    r = run_fbtool("audit", tmp_path)
    assert "0 model(s): 0 malformed" in r.stdout and "1 file(s) or member(s) not read" in r.stdout
