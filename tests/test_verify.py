"""`fbtool verify`: every signature, the user's inputs, and bad input to the verifier itself."""
import json

import jsonschema
import numpy as np

from conftest import FIXTURES, ROOT
from helpers import run_fbtool

SCHEMA = json.loads((ROOT / "schemas" / "verify.schema.json").read_text())
E2E = FIXTURES / "e2e"


def test_every_signature_is_compared():
    """multi_signature.tflite has two signatures, decode and encode (fbtool inspect): both run, told apart."""
    r = run_fbtool("verify", FIXTURES / "multi_signature.tflite", FIXTURES / "multi_signature.tflite", "--json")
    report = json.loads(r.stdout)
    jsonschema.validate(report, SCHEMA)
    assert r.returncode == 0 and report["ok"]
    assert {name.split("/")[0] for name in report["outputs"]} == {"decode", "encode"}
    assert all(o["max_abs"] == 0 for o in report["outputs"].values())


def test_user_inputs_are_run_too(tmp_path):
    patched = tmp_path / "p.tflite"
    assert run_fbtool("patch", E2E / "mlp.tflite", "-o", patched, "--no-verify-run").returncode == 0
    r = run_fbtool("verify", E2E / "mlp.tflite", patched, "--json", "--runs", "0",
                   "--inputs", E2E / "mlp.npz", timeout=300)
    report = json.loads(r.stdout)
    assert r.returncode == 0 and report["ok"] and report["outputs"]["output_0"]["max_ref"] > 0


def test_inputs_missing_an_array_is_a_usage_error(tmp_path):
    np.savez(tmp_path / "wrong.npz", nothing=np.zeros(3))
    r = run_fbtool("verify", E2E / "mlp.tflite", E2E / "mlp.tflite", "--inputs", tmp_path / "wrong.npz")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "no array for input(s) features" in r.stderr
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    r = run_fbtool("verify", E2E / "mlp.tflite", E2E / "mlp.tflite", "--inputs", tmp_path / "junk.npz")
    assert r.returncode == 2 and "not a readable .npz" in r.stderr
