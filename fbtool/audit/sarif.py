"""Audit records as a SARIF 2.1.0 log, for GitHub code scanning and other SARIF viewers.

One run, tool ``fbtool``; one result per finding:

- ``level`` is ``error`` when the finding violates the policy and ``warning`` otherwise
  (so a ``malformed`` finding accepted by a baseline is a warning);
- ``locations[0].physicalLocation.artifactLocation.uri`` is the file on disk: the part of the
  record's location before the first ``!``, relative as given on the command line (with
  ``uriBaseId`` ``%SRCROOT%``, the folder fbtool ran in) or a ``file://`` URI when absolute;
- a model inside an archive also gets ``logicalLocations[0]`` with the whole location
  (``app.apk!libs/x.aar!assets/m.tflite``) as ``fullyQualifiedName``, kind ``module``, and the
  member is named in the message, since most viewers show only the physical location;
- ``partialFingerprints["fbtoolFinding/v1"]`` is a sha256 of (location, rule, subject): the
  same identity a baseline uses, so a viewer tracks a finding from run to run;
- ``properties`` carries the finding's ``subject`` (op name) and ``count`` when it has them.

``artifacts`` lists every audited model with its sha256 (``hashes["sha-256"]``) and size; a
model inside an archive is a nested artifact (``parentIndex``) whose ``uri`` is its path from
the root of its parent, as SARIF 3.24.3 shows for zip members.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
from urllib.parse import quote

from .. import __version__
from .policy import DEFAULT_DENY, KINDS

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT = "fbtoolFinding/v1"

# rule id -> (name, short description, full description, help)
RULES = {
    "flex-op": (
        "FlexOp", "Model needs the Flex delegate",
        "The model contains Flex (TF Select) ops, which run only with the Flex delegate: tens of MB on "
        "device, and absent from TensorFlow >= 2.19 and ai-edge-litert.",
        "Run `fbtool flex MODEL` to see each Flex op, where it comes from and whether a TFLite builtin "
        "can replace it; reconvert without SELECT_TF_OPS, or ship the Flex delegate."),
    "custom-op": (
        "CustomOp", "Model needs a custom op kernel",
        "The model contains custom ops: the runtime must register a kernel for each, or the model "
        "fails to load.",
        "Register the kernel in the app, or list the op in the policy's allow_custom (--allow-custom) "
        "if your runtime has it."),
    "stock-custom-op": (
        "StockCustomOp", "Custom op that stock LiteRT runs",
        "The model contains a custom op that stock LiteRT runs without extra registration: its default op "
        "resolver registers it, or its default XNNPACK delegate takes it (then only with default settings).",
        "Nothing to do on stock LiteRT; with a custom op resolver or without XNNPACK, register its kernel."),
    "runtime-too-old": (
        "RuntimeTooOld", "Op version newer than the target runtime",
        "A builtin op is used at a version that the target TFLite/LiteRT runtime does not support.",
        "Upgrade the runtime you ship, or convert the model for the older runtime."),
    "malformed": (
        "Malformed", "Model or archive cannot be read",
        "The file is not a valid TFLite flatbuffer (or an archive member cannot be read): the runtime "
        "would refuse or misread it.",
        "Regenerate the model; `fbtool inspect MODEL` shows where the file is broken."),
    "unreadable": (
        "Unreadable", "Container or member fbtool could not look into",
        "An archive, an archive member or a file could not be read (corrupt, encrypted, not a regular "
        "file, or past fbtool's size and time budget for one file): models in it, if any, were not audited.",
        "Check the file; deny it with --deny unreadable to make the audit fail on it."),
    "too-large": (
        "TooLarge", "Model over the size limit",
        "The model is larger than the policy's max_size_mb.",
        "Quantize or prune the model, or raise max_size_mb in the policy."),
    "model-warning": (
        "ModelWarning", "Model the runtime runs but that is not right",
        "fbtool's verifier found something the TFLite runtime tolerates but that is not right: "
        "constant data larger than its shape, a tensor produced twice, an output that is a variable...",
        "Run `fbtool inspect MODEL` for its Warnings section; regenerate the model, or accept it in a baseline."),
    "no-signatures": (
        "NoSignatures", "Model has no signatures",
        "The policy requires signatures (require_signatures) and the model has none.",
        "Convert from a SavedModel or concrete functions so the converter writes signature defs."),
}
_DEFAULT_DENIED = {KINDS[k] for k in DEFAULT_DENY}


def file_location(path: str) -> dict:
    """A file on disk as a SARIF artifactLocation: a ``file://`` URI when absolute, else a
    percent-encoded relative reference against ``%SRCROOT%`` (the folder fbtool ran in)."""
    if os.path.isabs(path):
        return {"uri": pathlib.Path(path).as_uri()}
    return {"uri": quote(pathlib.PurePath(os.path.normpath(path)).as_posix(), safe="/"), "uriBaseId": "%SRCROOT%"}


def _member_uri(member: str) -> str:
    return "/" + quote(member.lstrip("/"), safe="/")


NOTES = {"stock-custom-op": "note"}     # findings that inform and never fail


def _descriptor(rule: str) -> dict:
    name, short, full, help_text = RULES.get(rule, (rule, rule, rule, rule))
    return {"id": rule, "name": name, "shortDescription": {"text": short}, "fullDescription": {"text": full},
            "help": {"text": help_text},
            "defaultConfiguration": {"level": "error" if rule in _DEFAULT_DENIED else NOTES.get(rule, "warning")}}


def fingerprint(location: str, rule: str, subject: str | None) -> str:
    return hashlib.sha256("\0".join((location, rule, subject or "")).encode()).hexdigest()


def to_sarif(records: list[dict]) -> dict:
    """A SARIF 2.1.0 log of the audit ``records``."""
    used = {f["rule"] for r in records for f in r.get("findings", ())}
    rule_ids = [r for r in RULES if r in used] + sorted(used - set(RULES))
    rule_index = {r: i for i, r in enumerate(rule_ids)}

    artifacts: list[dict] = []
    artifact_index: dict[str, int] = {}   # location (or location prefix, for archives) -> index

    def artifact(location: str) -> int:
        if location not in artifact_index:
            parent, _, member = location.rpartition("!")
            entry: dict = {"location": {"uri": _member_uri(member)} if parent else file_location(location)}
            if parent:
                entry["parentIndex"] = artifact(parent)
            artifact_index[location] = len(artifacts)
            artifacts.append(entry)
        return artifact_index[location]

    results = []
    for record in records:
        location = record["location"]
        entry = artifacts[artifact(location)]
        entry["roles"] = ["analysisTarget"]
        if record.get("size") is not None:
            entry["length"] = record["size"]
        if record.get("sha256"):
            entry["hashes"] = {"sha-256": record["sha256"]}
        path, _, member = location.partition("!")
        artifact_location = {**file_location(path), "index": artifact(path)}
        for f in record.get("findings", ()):
            result = {
                "ruleId": f["rule"],
                "ruleIndex": rule_index[f["rule"]],
                "level": "error" if f.get("violation") else "note" if f["level"] == "note" else "warning",
                "message": {"text": f"{f['message']} (in {member})" if member else f["message"]},
                "locations": [{"physicalLocation": {"artifactLocation": dict(artifact_location)}}],
                "partialFingerprints": {FINGERPRINT: fingerprint(location, f["rule"], f.get("subject"))},
            }
            if member:
                result["locations"][0]["logicalLocations"] = [
                    {"name": location.rpartition("!")[2], "fullyQualifiedName": location, "kind": "module"}]
            props = {k: f[k] for k in ("subject", "count") if f.get(k) is not None}
            if props:
                result["properties"] = props
            results.append(result)

    driver = {"name": "fbtool", "version": __version__, "rules": [_descriptor(r) for r in rule_ids]}
    run = {"tool": {"driver": driver}, "artifacts": artifacts, "results": results}
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
