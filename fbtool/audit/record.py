"""One model's audit record: what it is, what it needs, and its findings (schema: schemas/audit.schema.json)."""
from __future__ import annotations

import hashlib
import mmap
import os

from ..errors import ModelError
from ..flex.catalog import load_catalog, version_tuple
from ..flex.custom import stock
from ..flex.custom import verdict as custom_verdict
from ..inspect import sha256_file
from ..reader.model import Model, model_from_buffer
from .discover import Found


def _load(found: Found):
    if found.data is not None:
        return found.data
    with open(found.path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def audit_found(found: Found, target_runtime: str | None = None) -> dict:
    """The record of one found model; a model that cannot be read is a ``malformed`` finding, a
    container or member fbtool could not look into an ``unreadable`` one. A model that exhausts
    memory or recursion is malformed too: one record, and the audit goes on."""
    try:
        return _audit(found, target_runtime)
    except (MemoryError, RecursionError) as e:
        error = f"out of resources reading it ({type(e).__name__})"
        return {"location": found.location, "size": None, "sha256": None, "ok": False, "error": error,
                "findings": [_finding("malformed", "error", error)]}
    finally:
        if found.data is not None and hasattr(found.data, "close"):
            found.data.close()


def _audit(found: Found, target_runtime: str | None) -> dict:
    record = {"location": found.location, "size": None, "sha256": None, "ok": False, "error": found.error}
    if found.error:
        record["findings"] = [_finding(found.kind, "error" if found.kind == "malformed" else "warning", found.error)]
        return record
    try:
        buf = _load(found)
    except OSError as e:
        record["error"] = e.strerror or str(e)
        record["findings"] = [_finding("malformed", "error", record["error"])]
        return record
    record["size"] = len(buf)
    # a file is hashed by reading it in chunks: hashing the map would make every page resident
    record["sha256"] = sha256_file(found.path) if found.path else hashlib.sha256(buf).hexdigest()
    try:
        with model_from_buffer(buf, found.location) as model:
            record.update(_describe(model, target_runtime))
            record["ok"] = True
    except ModelError as e:
        record["error"] = str(e)
        record["findings"] = [_finding("malformed", "error", str(e))]
    return record


def _finding(rule: str, level: str, message: str, subject: str | None = None, count: int | None = None) -> dict:
    out = {"rule": rule, "level": level, "message": message}
    if subject is not None:
        out["subject"] = subject
    if count is not None:
        out["count"] = count
    return out


def _describe(model: Model, target: str | None) -> dict:
    catalog = load_catalog()
    counts = {"builtin": 0, "flex": 0, "custom": 0}
    flex: dict[str, int] = {}
    custom: dict[str, int] = {}
    on_stock: dict[str, int] = {}      # custom ops stock LiteRT runs: notes, never a violation
    builtins: set[tuple[str, int]] = set()
    for sg in model.subgraphs:
        for op in sg.operators:
            oc = op.opcode
            counts[oc.kind] += 1
            if oc.kind == "flex":
                flex[oc.tf_op] = flex.get(oc.tf_op, 0) + 1
            elif oc.kind == "custom" and stock(oc.custom_code, oc.version):
                on_stock[oc.custom_code] = on_stock.get(oc.custom_code, 0) + 1
            elif oc.kind == "custom":
                custom[oc.custom_code] = custom.get(oc.custom_code, 0) + 1
            else:
                builtins.add((oc.name, oc.version))
    needs = {(op, v): catalog.min_runtime(op, v) for op, v in sorted(builtins)}
    known = [r for r in needs.values() if r]
    required = max(known, key=version_tuple) if known else None
    findings = [_finding("flex-op", "warning", f"{name} needs the Flex delegate", name, n) for name, n in sorted(flex.items())]
    findings += [_finding("custom-op", "warning", f"custom op {name} needs a registered kernel", name, n)
                 for name, n in sorted(custom.items())]
    findings += [_finding("stock-custom-op", "note", f"custom op {name} {custom_verdict(name, 1)}", name, n)
                 for name, n in sorted(on_stock.items())]
    if target:
        findings += [_finding("runtime-too-old", "warning", f"{op} version {v} needs TFLite {r}, newer than {target}",
                              f"{op} v{v}") for (op, v), r in needs.items()
                     if r and version_tuple(r) > version_tuple(target)]
    findings += [_finding("model-warning", "warning", w) for w in model.warnings]
    meta = {name for name, _ in model.metadata}
    return {
        "op_counts": {**counts, "total": sum(counts.values())},
        "flex_ops": sorted(flex),
        "custom_ops": sorted({*custom, *on_stock}),
        "builtins": [{"op": op, "version": v, "min_runtime": r} for (op, v), r in needs.items()],
        "min_runtime_version": model.min_runtime_version,
        "required_runtime": required,
        "signatures": len(model.signatures),
        "metadata": sorted(meta),
        "findings": findings,
    }
