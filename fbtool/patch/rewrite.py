"""``fbtool patch``: Flex ops whose TF op has a TFLite builtin become that builtin, in the file.

:func:`~.engine.plan` runs the patterns, then the per-op rules (:mod:`.rules`), on the graph IR of
:mod:`.edit`; :func:`apply` turns the IR into an editor (:mod:`.emit`) that writes only the changed
tables (:mod:`.writer`); :func:`patch_model` writes, verifies and reports it.
"""
from __future__ import annotations

import os

from ..flex.catalog import version_tuple
from ..reader.model import Model, open_model
from .emit import emit
from .engine import Plan, plan
from .writer import Editor, SharedBytes, data_span, write_patched

__all__ = ["Plan", "plan", "apply", "patch_model", "rule_names", "VerificationFailed"]


def rule_names() -> set[str]:
    """What ``--only``/``--skip`` accept: every TF op a rule rewrites, and every pattern's name."""
    from .rules import PATTERNS, RULES
    return set(RULES) | {p.name for p in PATTERNS}


def apply(model: Model, p: Plan) -> Editor:
    """The editor that writes the patched file (``.render()`` for bytes)."""
    editor = emit(model, p.edit)
    _update_min_runtime(model, editor, p.rewrites)
    return editor


def _update_min_runtime(model: Model, editor: Editor, rewrites: list[dict]) -> None:
    """The converter's min_runtime_version ignores Flex and custom ops (runtime_version.cc), so
    the patched model needs the newest of the original value and its new builtins' versions."""
    needs = [r["min_runtime"] for r in rewrites if r.get("min_runtime")]
    for name, index in model.metadata:
        buf = model.buffers[index]
        if name != "min_runtime_version" or not buf.data:
            continue
        current = model.buffer_bytes(index).split(b"\0", 1)[0].decode("ascii", "replace")
        newest = max([current, *needs], key=version_tuple)
        if newest != current and len(newest) < buf.data.size:
            try:
                editor.put_bytes(buf.data.offset, newest.encode().ljust(buf.data.size, b"\0"), data_span(buf.data, False))
            except SharedBytes:     # the string shares its bytes: leave it rather than change another object
                pass
        break


def patch_model(path: str | os.PathLike, out: str | os.PathLike | None, dry_run: bool = False,
                verify=None, only: set[str] | None = None, skip: set[str] | None = None) -> dict:
    """Plan and (unless ``dry_run``) write the patched model; the document of schemas/patch.schema.json.

    ``verify(original, candidate) -> dict`` runs before the output is renamed into place; when
    its report is not ``ok`` nothing is written and the report says why.
    """
    path = os.fspath(path)
    with open_model(path, coverage=True) as model:
        p = plan(model, only, skip)
        flex_before = sum(op.opcode.kind == "flex" for sg in model.subgraphs for op in sg.operators)
        doc = {"model": path, "output": None, "dry_run": dry_run, "flex_before": flex_before,
               "flex_after": flex_before - len(p.rewrites), "rewrites": p.rewrites, "kept": p.kept,
               "verification": None}
        if out is None or dry_run:
            return doc

        def check(candidate: str) -> None:
            if verify is not None and p.rewrites:
                doc["verification"] = verify(path, candidate)
                if not doc["verification"]["ok"]:
                    raise VerificationFailed(doc)

        write_patched(path, apply(model, p) if p.rewrites else None, os.fspath(out), check)
    doc["output"] = os.fspath(out)
    return doc


class VerificationFailed(Exception):
    """The patched model did not compute what the original did; nothing was written."""

    def __init__(self, doc: dict):
        super().__init__("verification failed")
        self.doc = doc
