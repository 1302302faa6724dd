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
import math
import os
import re
import stat
from dataclasses import dataclass, field, replace

from ..errors import UsageError

KINDS = {"flex": "flex-op", "custom": "custom-op", "malformed": "malformed", "runtime": "runtime-too-old",
         "size": "too-large", "signatures": "no-signatures", "warnings": "model-warning", "unreadable": "unreadable"}
DEFAULT_DENY = ("malformed",)
MAX_FILE_BYTES = 64 << 20   # a policy or baseline larger than this is not one
RUNTIME_VERSION = re.compile(r"\d{1,3}(\.\d{1,3}){0,2}")
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
    overrides: tuple[tuple[re.Pattern, dict], ...] = ()    # fnmatch patterns, compiled once
    baseline: frozenset = field(default_factory=frozenset)   # (location, rule, subject)

    def for_location(self, location: str) -> Rules:
        rules = self.rules
        for pattern, values in self.overrides:
            if pattern.match(location):
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
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise UsageError(f"{where}: max_size_mb must be a positive number, not {value!r}")
            out[key] = float(value)
        elif key == "target_runtime":
            out[key] = runtime_version(value, where)
        elif key == "require_signatures":
            if not isinstance(value, bool):
                raise UsageError(f"{where}: require_signatures must be true or false")
            out[key] = value
        elif key != "path":
            raise UsageError(f"{where}: unknown key {key!r}")
    return out


def runtime_version(value, where: str) -> str:
    """A TFLite/LiteRT release such as ``2.14`` or ``2.14.1``: what runtime_version.cc's table compares."""
    text = str(value) if isinstance(value, (str, float, int)) and not isinstance(value, bool) else None
    if text is None or not RUNTIME_VERSION.fullmatch(text):
        raise UsageError(f"{where}: target_runtime must be a release such as 2.14 or 1.15.0, not {value!r}")
    return text


def load_policy(path: str | None, baseline_optional: bool = False, **cli: object) -> Policy:
    """Read a TOML policy (or none), then apply command-line settings over it. The policy's
    baseline file must exist, unless ``baseline_optional`` (the run that writes it)."""
    data: dict = {}
    if path:
        data = _read_toml(path)
    rules = Rules(**_rules({k: v for k, v in data.items() if k not in ("override", "baseline")}, path or "policy"))
    rules = replace(rules, **_rules({k: v for k, v in cli.items() if v is not None}, "command line"))
    overrides = data.get("override", [])
    if not isinstance(overrides, list):
        raise UsageError(f"{path}: override must be a list of [[override]] tables")
    for i, o in enumerate(overrides):
        if not isinstance(o, dict) or not isinstance(o.get("path"), str):
            raise UsageError(f"{path}: override {i} needs a path")
    # compiled here: fnmatch's own cache holds 32,768 patterns, and 100,000 overrides cost 9 s a model
    overrides = tuple((re.compile(fnmatch.translate(o["path"])), _rules(o, f"{path}: override {i}"))
                      for i, o in enumerate(overrides))
    baseline = frozenset()
    name = data.get("baseline")
    if name is not None:
        if not isinstance(name, str) or not name:
            raise UsageError(f"{path}: baseline must be a file name, not {name!r}")
        base = os.path.join(os.path.dirname(path), name)
        if os.path.exists(base) or not baseline_optional:
            baseline = read_baseline(base)
    return Policy(rules, overrides, baseline)


def _read_toml(path: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(_read_small(path).decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML: {e}") from None
    unknown = set(data) - _KEYS
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    return data


def _read_small(path: str) -> bytes:
    """A policy or baseline: a regular file of at most MAX_FILE_BYTES (never a device or a FIFO)."""
    try:
        with open(path, "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(f"{path}: not a regular file")
            if st.st_size > MAX_FILE_BYTES:
                raise UsageError(f"{path}: {st.st_size} bytes, more than the {MAX_FILE_BYTES >> 20} MB a policy "
                                 "or baseline may have")
            return f.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None


def read_baseline(path: str) -> frozenset:
    raw = _read_small(path)
    try:
        entries = json.loads(raw.decode("utf-8"))
        return frozenset((e["location"], e["rule"], e.get("subject")) for e in entries)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        if isinstance(e, UnicodeDecodeError):
            e = f"not UTF-8 at byte {e.start}"
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
