"""`fbtool patch --report-unsupported`: what patch leaves, counted over many models, against the
per-model plans (`fbtool patch --dry-run --json`), which are the source of truth here."""
import json

import jsonschema

from conftest import FIXTURES, ROOT
from helpers import run_fbtool

SCHEMA = json.loads((ROOT / "schemas" / "unsupported.schema.json").read_text())
MODELS = ["string_flex.tflite", "tensorlist_flex.tflite", "custom_op.tflite", "mixed_flex.tflite", "op_zoo.tflite"]


def test_counts_what_each_plan_keeps(tmp_path):
    for name in MODELS:
        (tmp_path / name).write_bytes((FIXTURES / name).read_bytes())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "again.tflite").write_bytes((FIXTURES / "string_flex.tflite").read_bytes())
    r = run_fbtool("patch", "--report-unsupported", "--json", tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    want: dict = {}
    for path in sorted(tmp_path.rglob("*.tflite")):
        plan = json.loads(run_fbtool("patch", path, "--dry-run", "--json").stdout)
        for k in plan["kept"]:
            models, ops = want.get(k["tf_op"], (set(), 0))
            want[k["tf_op"]] = (models | {path}, ops + 1)
    assert doc["models"] == len(MODELS) + 1
    assert {o["tf_op"]: (o["models"], o["ops"]) for o in doc["ops"]} == \
        {op: (len(models), n) for op, (models, n) in want.items()}
    string_length = next(o for o in doc["ops"] if o["tf_op"] == "StringLength")
    assert string_length["models"] == 2 and "move the layer" in string_length["remedy"]
    assert [o["models"] for o in doc["ops"]] == sorted((o["models"] for o in doc["ops"]), reverse=True)


def test_unreadable_files_are_errors_and_the_rest_counts(tmp_path):
    (tmp_path / "bad.tflite").write_bytes(b"not a model")
    r = run_fbtool("patch", "--report-unsupported", tmp_path / "bad.tflite", FIXTURES / "string_flex.tflite")
    assert r.returncode == 2 and "StringLength" in r.stdout
    assert r.stderr.startswith(f"fbtool: error: {tmp_path / 'bad.tflite'}: ")
    r = run_fbtool("patch", FIXTURES / "string_flex.tflite", FIXTURES / "mixed_flex.tflite", "--dry-run")
    assert r.returncode == 2 and "--report-unsupported" in r.stderr
