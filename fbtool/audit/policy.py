"""Audit policy: which findings fail the audit (schema: schemas/audit-policy.schema.json).

A TOML file, e.g.::

    deny = ["flex", "custom"]                   # finding kinds that fail the audit (malformed always does)
    allow_custom = ["TFLite_Detection_PostProcess"]
    max_size_mb = 50
    target_runtime = "2.14"
    require_signatures = true
    baseline = "fbtool-baseline.json"          # findings accepted earlier (fbtool audit --write-baseline)

    [[override]]                                 # later overrides win; paths are fnmatch patterns on locations
    path = "legacy/*"
    deny = ["malformed"]
"""
from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, field, replace

from ..errors import UsageError

KINDS = {"flex": "flex-op", "custom": "custom-op", "malformed": "malformed", "runtime": "runtime-too-old",
         "size": "too-large", "signatures": "no-signatures"}
DEFAULT_DENY = ("malformed",)
_KEYS = {"deny", "allow_custom", "max_size_mb", "target_runtime", "require_signatures", "baseline", "override"}


@dataclass(frozen=True)
class Rules:
    deny: tuple[str, ...] = DEFAULT_DENY
    allow_custom: tuple[str, ...] = ()
    max_size_mb: float | None = None
    target_runtime: str | None = None
    require_signatures: bool = False


@dataclass(frozen=True)
class Policy:
    rules: Rules = Rules()
    overrides: tuple[tuple[str, dict], ...] = ()
    baseline: frozenset = field(default_factory=frozenset)   # (location, rule, subject)

    def for_location(self, location: str) -> Rules:
        rules = self.rules
        for pattern, values in self.overrides:
            if fnmatch.fnmatch(location, pattern):
                rules = replace(rules, **values)
        return rules


def _rules(values: dict, where: str) -> dict:
    out = {}
    for key, value in values.items():
        if key in ("deny", "allow_custom"):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where}: {key} must be a list of strings")
            if key == "deny" and set(value) - set(KINDS):
                raise UsageError(f"{where}: deny takes {', '.join(KINDS)}, not {', '.join(sorted(set(value) - set(KINDS)))}")
            out[key] = tuple(value)
        elif key == "max_size_mb":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise UsageError(f"{where}: max_size_mb must be a positive number")
            out[key] = float(value)
        elif key == "target_runtime":
            out[key] = str(value)
        elif key == "require_signatures":
            if not isinstance(value, bool):
                raise UsageError(f"{where}: require_signatures must be true or false")
            out[key] = value
        elif key != "path":
            raise UsageError(f"{where}: unknown key {key!r}")
    return out


def load_policy(path: str | None, **cli: object) -> Policy:
    """Read a TOML policy (or none), then apply command-line settings over it."""
    data: dict = {}
    if path:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise UsageError(f"{path}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"{path}: not valid TOML: {e}") from None
        unknown = set(data) - _KEYS
        if unknown:
            raise UsageError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    rules = Rules(**_rules({k: v for k, v in data.items() if k not in ("override", "baseline")}, path or "policy"))
    rules = replace(rules, **_rules({k: v for k, v in cli.items() if v is not None}, "command line"))
    overrides = []
    for i, o in enumerate(data.get("override", [])):
        if not isinstance(o, dict) or not isinstance(o.get("path"), str):
            raise UsageError(f"{path}: override {i} needs a path")
        overrides.append((o["path"], _rules(o, f"{path}: override {i}")))
    baseline = frozenset()
    if data.get("baseline"):
        base = os.path.join(os.path.dirname(path), data["baseline"])
        baseline = read_baseline(base)
    return Policy(rules, tuple(overrides), baseline)


def read_baseline(path: str) -> frozenset:
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
        return frozenset((e["location"], e["rule"], e.get("subject")) for e in entries)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: not a baseline file ({e})") from None


def judge(record: dict, policy: Policy) -> dict:
    """Add policy findings to a record and mark which findings violate the policy."""
    rules = policy.for_location(record["location"])
    findings = record.setdefault("findings", [])
    if record.get("ok"):
        if rules.max_size_mb is not None and record["size"] > rules.max_size_mb * 1e6:
            findings.append({"rule": "too-large", "level": "warning",
                             "message": f"{record['size'] / 1e6:.1f} MB is over the {rules.max_size_mb:g} MB limit"})
        if rules.require_signatures and not record["signatures"]:
            findings.append({"rule": "no-signatures", "level": "warning", "message": "the model has no signatures"})
    denied = {KINDS[k] for k in (*rules.deny, *DEFAULT_DENY)}  # an unreadable model always fails; a baseline can accept it
    if rules.target_runtime:
        denied.add("runtime-too-old")
    for f in findings:
        accepted = (f["rule"] == "custom-op" and f.get("subject") in rules.allow_custom) or \
                   (record["location"], f["rule"], f.get("subject")) in policy.baseline
        f["violation"] = f["rule"] in denied and not accepted
        if f["violation"]:
            f["level"] = "error"
    record["violation"] = any(f["violation"] for f in findings)
    return record
