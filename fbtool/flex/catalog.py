"""Which TF ops a TFLite builtin can replace, and at which op version and minimum runtime.

The knowledge lives in ``fbtool/data/op_catalog.json`` (the converter's Flex allowlist and its TF ->
TFLite legalizations, each with its source) and ``fbtool/data/runtime_versions.json``; this module
only evaluates it. Schemas: ``schemas/op_catalog.schema.json``, ``schemas/runtime_versions.schema.json``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .. import data

HOW = {
    "code": "swap the opcode, keep the inputs",
    "options": "move TF attrs and constant operands into the builtin options",
    "weights": "re-lay out the constant weights for the builtin",
}


@dataclass(frozen=True)
class TensorInfo:
    """One input of the TF op: dtype name (``float32``), shape (-1 = dynamic), whether it is a constant."""

    dtype: str
    shape: tuple[int, ...]
    is_constant: bool


@dataclass(frozen=True)
class Verdict:
    """Whether one op can be rewritten on its own; ``reason`` says why not, or what the rewrite does."""

    rewritable: bool
    builtin: str | None
    version: int | None
    min_runtime: str | None
    reason: str


def _plain(value: Any) -> Any:
    """Tuples as lists, so that decoded attrs compare equal to JSON values."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _matches(value: Any, allowed: Any) -> bool:
    """``value == allowed``, where a None element of a list ``allowed`` matches anything."""
    if isinstance(allowed, list):
        return (isinstance(value, list) and len(value) == len(allowed)
                and all(a is None or v == a for v, a in zip(value, allowed)))
    return value == allowed


def _holds(condition: dict, attrs: dict, inputs: list[TensorInfo]) -> bool:
    """All of a version rule's conditions hold; a condition on an unknown value does not."""
    for key, want in condition.items():
        if key == "rank":
            have = len(inputs[0].shape) if inputs else None
        else:
            have = _plain(attrs.get(key))
        if have is None:
            return False
        if not isinstance(want, dict):
            ok = have == want
        elif "in" in want:
            ok = have in want["in"]
        elif "ne" in want:
            ok = have != want["ne"]
        else:
            ok = have > want["gt"]
        if not ok:
            return False
    return True


def _broadcast_failure(builtin: str, limit: int, inputs: list[TensorInfo]) -> str | None:
    """The tfl_ops.td rule: same static shapes broadcast at any rank, others only up to ``limit`` dims."""
    shapes = [t.shape for t in inputs]
    same_static = all(s == shapes[0] for s in shapes) and all(d >= 0 for s in shapes for d in s)
    rank = max((len(s) for s in shapes), default=0)
    if not same_static and rank > limit:
        return f"{builtin} broadcasts inputs of at most {limit} dims, not {rank}"
    return None


def _failure(entry: dict, attrs: dict, inputs: list[TensorInfo]) -> str | None:
    """The first constraint the op breaks, in catalog order, or None."""
    builtin = entry["builtin"]
    for attr, allowed in entry.get("dtypes", {}).items():
        value = attrs.get(attr)
        if value not in allowed:
            shown = "missing" if value is None else value
            return f"{attr}={shown} not supported by {builtin} (accepts {', '.join(allowed)})"
    for attr, allowed in entry.get("attrs", {}).items():
        value = _plain(attrs.get(attr))
        if not any(_matches(value, a) for a in allowed):
            shown = "missing" if value is None else repr(value)
            return f"{attr}={shown} not supported by {builtin}"
    for pos in entry.get("constant_inputs", []):
        index = pos if pos >= 0 else len(inputs) + pos
        if not 0 <= index < len(inputs) or not inputs[index].is_constant:
            return f"input {index} must be constant for {builtin}"
    limit = entry.get("max_rank")
    if limit is not None and inputs and len(inputs[0].shape) > limit:
        return f"input 0 has rank {len(inputs[0].shape)}; {builtin} accepts at most {limit}"
    limit = entry.get("max_broadcast_rank")
    if limit is not None:
        return _broadcast_failure(builtin, limit, inputs)
    return None


class Catalog:
    """The op catalog and the runtime table, read once (use :func:`load_catalog`)."""

    def __init__(self, catalog: dict, runtimes: dict) -> None:
        self._ops: dict[str, dict] = catalog["ops"]
        self._allowlist = frozenset(catalog["flex_allowlist"])
        self._runtimes: dict[str, dict[str, str]] = runtimes["ops"]

    @property
    def ops(self) -> dict[str, dict]:
        """Every TF op fbtool knows, by name."""
        return self._ops

    def entry(self, tf_op: str) -> dict | None:
        """The catalog entry of a TF op (``AddV2``), or None when fbtool does not know it."""
        return self._ops.get(tf_op)

    def on_allowlist(self, tf_op: str) -> bool:
        """Whether the converter may emit ``tf_op`` as a Flex op at all."""
        return tf_op in self._allowlist

    def min_runtime(self, builtin: str, version: int) -> str | None:
        """Minimum TFLite runtime release for ``builtin`` at ``version``, or None if unrecorded."""
        return self._runtimes.get(builtin, {}).get(str(version))

    def assess(self, tf_op: str, attrs: dict, inputs: list[TensorInfo]) -> Verdict:
        """Can this one TF op, with these decoded attrs and inputs, become a builtin on its own?

        An attr the NodeDef lacks takes its TF op-def default (``attr_defaults``): NodeDefs written by
        older TensorFlow versions miss attrs added since. Caveats of the version rules are in the
        entry's ``version_note``.
        """
        entry = self.entry(tf_op)
        if entry is None:
            return Verdict(False, None, None, None, "not in fbtool's catalog")
        builtin = entry["builtin"]
        attrs = {**entry.get("attr_defaults", {}), **attrs}
        if builtin is None:
            if entry["rewrite"] == "remove":
                return Verdict(True, None, None, None, f"delete {tf_op} and rewire its consumers: {entry['why_not']}")
            if "decomposition" in entry:
                return self._decomposed(tf_op, entry["decomposition"], attrs, inputs)
            return Verdict(False, None, None, None, f"no TFLite builtin for {tf_op}: {entry['why_not']}")
        failure = _failure(entry, attrs, inputs)
        if failure and "decomposition" in entry:
            fallback = self._decomposed(tf_op, entry["decomposition"], attrs, inputs)
            return fallback if fallback.rewritable else Verdict(False, builtin, None, None, failure)
        if failure:
            return Verdict(False, builtin, None, None, failure)
        version = next((r["version"] for r in entry.get("versions", []) if _holds(r["if"], attrs, inputs)), 1)
        reason = f"{tf_op} -> {builtin} v{version}: {HOW[entry['rewrite']]}"
        return Verdict(True, builtin, version, self.min_runtime(builtin, version), reason)


    def _decomposed(self, tf_op: str, d: dict, attrs: dict, inputs: list[TensorInfo]) -> Verdict:
        """The verdict on a decomposition: the constraints it declares, the builtins it emits and
        the oldest runtime that has them all, its formula and numerical contract."""
        failure = _failure({**d, "builtin": "the decomposition"}, attrs, inputs)
        if failure:
            return Verdict(False, None, None, None, failure)
        needs = [self.min_runtime(b, 1) for b in d["into"]]
        runtime = max((n for n in needs if n), key=version_tuple, default=None)
        return Verdict(True, None, None, runtime,
                       f"{tf_op} -> {d['formula']} ({', '.join(d['into'])}; {contract(d)})")


def contract(d: dict) -> str:
    """A decomposition's numerical contract, in words."""
    if d["error"] == "exact":
        return "exact"
    e = d["error"]
    if "max_ulp" in e:
        text = f"within {e['max_ulp']} ulp of TensorFlow"
        if "atol" in e:
            text += f" plus {e['atol']:g}"
        if "xnnpack_max_ulp" in e:
            text += f", {e['xnnpack_max_ulp']} ulp under XNNPACK"
        return text + (" (subnormals aside)" if e.get("except") == "subnormals" else "")
    return f"within {d['error']['rtol']:g} of the output's scale: {d['error']['note']}"


@functools.lru_cache(maxsize=1024)
def version_tuple(text: str | None) -> tuple[int, ...]:
    """``"2.14"`` -> (2, 14); junk parts count as 0, so any string compares."""
    parts = []
    for p in (text or "").split("."):
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with fbtool, parsed on first use."""
    return Catalog(data.load("op_catalog"), data.load("runtime_versions"))
