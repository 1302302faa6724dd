"""``fbtool patch``: Flex ops whose TF op has a TFLite builtin become that builtin.

The plan is made in three passes over an :class:`~.edit.Edit` (match and rewrite kept apart):
1. graph patterns (:mod:`.patterns`), several Flex ops at a time: a conv or MatMul with the
   BiasAdd and activation after it becomes one fused builtin, Identity-like ops disappear,
   the ops of an exact GELU become GELU;
2. per-op rules for the remaining Flex ops: the catalog's ``code`` rewrites (same inputs,
   default options) and :mod:`.rules` (options, constant operands, re-laid-out weights);
3. :mod:`.emit` writes the changed tables; every other byte stays where it was.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..flex.catalog import TensorInfo, load_catalog, version_tuple
from ..flex.decode import decode_ops
from ..reader.model import Model, open_model
from .edit import Edit
from .emit import emit
from .patterns import View
from .registry import PATTERNS, RULES
from .rules import Context, NoRule
from .writer import Editor, SharedBytes, data_span, write_patched

PENDING = {"pattern": "several ops matched as one, in a form fbtool does not match yet"}


@dataclass
class Plan:
    edit: Edit
    rewrites: list[dict] = field(default_factory=list)   # one per Flex op that changes
    kept: list[dict] = field(default_factory=list)       # one per Flex/custom op left, with the reason


def _inputs(model: Model, sg: int, op) -> list[TensorInfo]:
    tensors = model.subgraphs[sg].tensors
    return [TensorInfo(tensors[i].dtype, tuple(tensors[i].shape_signature), model.is_constant(tensors[i]))
            for i in op.inputs if i >= 0]


def rule_names() -> set[str]:
    """What ``--only``/``--skip`` accept: every TF op a rule rewrites, and every pattern's name."""
    code = {op for op, e in load_catalog().ops.items() if e.get("rewrite") == "code"}
    return code | set(RULES) | {p.name for p in PATTERNS}


def plan(model: Model, only: set[str] | None = None, skip: set[str] | None = None, decoded=None) -> Plan:
    """What would change. ``only``/``skip``: rule names (a TF op name or a pattern name);
    ``decoded``: :func:`~fbtool.flex.decode.decode_ops` of the model, when already at hand."""
    catalog = load_catalog()
    result = Plan(Edit(model))
    allowed = lambda name: (only is None or name in only) and name not in (skip or ())  # noqa: E731
    candidates, verdicts = {}, {}
    twice = _written_twice(model)
    for d in decoded if decoded is not None else decode_ops(model):
        op = model.subgraphs[d.subgraph].operators[d.index]
        entry = {"subgraph": d.subgraph, "index": d.index, "custom_code": d.custom_code, "tf_op": d.tf_op}
        if d.kind != "flex" or d.error:
            result.kept.append({**entry, "reason": d.error or "custom op: no rule rewrites custom ops"})
            continue
        touched = sorted(t for t in (*op.inputs, *op.outputs) if (d.subgraph, t) in twice)
        if touched:
            result.kept.append({**entry, "reason": f"tensor {touched[0]} is written by more than one op (a model "
                                                   "warning): fbtool does not rewire around it"})
            continue
        attrs = {**((catalog.entry(d.tf_op) or {}).get("attr_defaults") or {}), **d.attrs}
        # decode_ops hands identical NodeDefs the same attrs object: a long chain of one op is judged once
        key = (d.tf_op, id(d.attrs), tuple(_inputs(model, d.subgraph, op)))
        if key not in verdicts:
            verdicts[key] = catalog.assess(d.tf_op, d.attrs, list(key[2]))
        candidates[(d.subgraph, d.index)] = (entry, attrs, verdicts[key])

    view = View(model, {k: (e["tf_op"], a, v) for k, (e, a, v) in candidates.items()})
    done: dict[tuple[int, int], dict] = {}
    for pattern in PATTERNS:
        if not allowed(pattern.name):
            continue
        for key in sorted(candidates):
            if key in done or candidates[key][0]["tf_op"] not in pattern.anchors:
                continue
            match = pattern.match(view, *key)
            # a pattern takes no op that is taken already or whose TF op the user skipped
            if match and not any(k in done or candidates[k][0]["tf_op"] in (skip or ()) for k in match.ops):
                for k, record in match.apply(result.edit).items():
                    done[k] = {**candidates[k][0], "rule": pattern.name, **record}

    for key, (entry, attrs, verdict) in sorted(candidates.items()):
        if key in done:
            continue
        record = _single(model, result.edit, key, entry, attrs, verdict, catalog, allowed)
        if "builtin" in record:
            done[key] = record
        else:
            result.kept.append(record)
    for record in done.values():
        needs = [catalog.min_runtime(record["builtin"], record["version"])] if record["builtin"] else []
        needs += [catalog.min_runtime(*_builtin_version(text)) for text in record.get("inserted", [])]
        needs = [n for n in needs if n]
        record["min_runtime"] = max(needs, key=version_tuple) if needs else None
    result.rewrites = sorted(done.values(), key=lambda r: (r["subgraph"], r["index"]))
    result.kept.sort(key=lambda r: (r["subgraph"], r["index"]))
    return result


def _written_twice(model: Model) -> set[tuple[int, int]]:
    """(subgraph, tensor) for tensors more than one op writes: the runtime runs such models (a
    warning), but which write a reader sees depends on op order, so no rewrite touches them."""
    out = set()
    for sg in model.subgraphs:
        seen = set()
        for op in sg.operators:
            for t in op.outputs:
                (out.add((sg.index, t)) if t in seen else seen.add(t))
    return out


def _builtin_version(text: str) -> tuple[str, int]:
    name, version = text.rsplit(" v", 1)
    return name, int(version)


def _single(model, edit, key, entry, attrs, verdict, catalog, allowed) -> dict:
    sg, index = key
    tf_op = entry["tf_op"]
    kind = (catalog.entry(tf_op) or {}).get("rewrite")
    if not verdict.rewritable and not (kind == "pattern" and tf_op in RULES):
        return {**entry, "reason": verdict.reason}
    if not allowed(tf_op):
        return {**entry, "reason": "left out by --only/--skip"}
    op = model.subgraphs[sg].operators[index]
    if kind == "code":
        edit.replace(sg, index, verdict.builtin, verdict.version, edit.op(sg, index).inputs)
        return {**entry, "rule": "code", "builtin": verdict.builtin, "version": verdict.version}
    if tf_op not in RULES:
        target = f"builtin {verdict.builtin}" if verdict.builtin else "a rewrite"
        return {**entry, "reason": f"{target} exists, but fbtool does not yet do this '{kind}' rewrite "
                                   f"({PENDING.get(kind, kind)})"}
    try:
        rewrite = RULES[tf_op](Context(model, sg, op, attrs))
        builtin = rewrite.builtin or verdict.builtin
        version = rewrite.version or verdict.version or 1
        inserted = rewrite.apply(edit, sg, index, builtin, version)
    except NoRule as e:
        return {**entry, "reason": str(e) if verdict.rewritable else f"{verdict.reason} ({e})"}
    record = {**entry, "rule": kind, "builtin": builtin, "version": version}
    if rewrite.bypass:
        record.update(builtin=None, version=None, removed=True)
    if inserted:
        record["inserted"] = inserted
    return record


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
