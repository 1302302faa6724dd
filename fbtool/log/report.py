"""``fbtool log``: the parsed log as a document with a remedy per op (schema: schemas/log.schema.json)."""
from __future__ import annotations

from dataclasses import asdict

from .. import __version__
from ..flex.catalog import load_catalog
from .parser import LogOp, LogReport

FLEX_COST = "convert with SELECT_TF_OPS (costs the Flex delegate: tens of MB, and no Python runtime after TF 2.18)"


def remedy(op: LogOp) -> str:
    catalog = load_catalog()
    entry = catalog.entry(op.name) or {}
    builtin = entry.get("builtin")
    allowed = catalog.on_allowlist(op.name)
    if op.category == "needs_newer_runtime":
        need = catalog.min_runtime(op.name, op.version or 1)
        return (f"runtime too old for {op.name} version {op.version}: "
                + (f"it needs TFLite {need} or newer" if need else "use a newer TFLite runtime")
                + ", or convert with the converter that matches your runtime")
    if op.category == "unsupported":
        if op.name.startswith("tfl."):
            return (f"{op.name} is a builtin but builtins were not allowed: add TFLITE_BUILTINS to "
                    "supported_ops next to SELECT_TF_OPS")
        return "the converter could not lower this op: see the message in the log"
    if op.phase == "runtime" and op.category == "needs_flex":
        fix = f"; a TFLite builtin ({builtin}) can replace it: see `fbtool flex`" if builtin else ""
        return ("the model needs the Flex delegate: link it (tensorflow-lite-select-tf-ops on Android) or run "
                "it with TF <= 2.18.1" + fix)
    if op.phase == "runtime" and op.category == "needs_custom":
        return f"register a kernel for the custom op {op.name!r} with the interpreter's op resolver"
    if builtin:
        since = catalog.min_runtime(builtin, 1)
        return (f"builtin {builtin} exists" + (f" since TFLite {since}" if since else "")
                + ": upgrade the converter (or the op's dtypes/attributes do not fit it: see `fbtool flex`)")
    if allowed and op.phase == "converter_warning":
        return ("converted as a Flex op, so the model needs the Flex delegate; TFLite has no builtin for it: "
                "keep Flex, or replace it with a custom op or a model change")
    if allowed:
        return "on the Flex allowlist: " + FLEX_COST
    return ("no builtin and not on the Flex allowlist: needs a custom op (allow_custom_ops and a kernel) or a "
            "model change (e.g. move this preprocessing out of the model)")


def _category(op: LogOp) -> str:
    if op.category != "needs_flex_or_custom":
        return op.category
    return "needs_flex" if load_catalog().on_allowlist(op.name) else "needs_custom"


def describe_log(report: LogReport, source: str) -> dict:
    ops = []
    for op in report.ops:
        op.category = _category(op)
        item = {k: v for k, v in asdict(op).items() if not k.startswith("_")}
        item["on_allowlist"] = load_catalog().on_allowlist(op.name)
        item["remedy"] = remedy(op)
        ops.append(item)
    return {
        "fbtool_version": __version__,
        "source": source,
        "lines": report.lines,
        "formats": report.formats,
        "problems_found": bool(ops),
        "ops": ops,
        "ops_not_listed": report.dropped_ops,
    }
