"""``fbtool diff A B``: what changed between two models; exit 1 when they differ, like diff(1)."""
from __future__ import annotations

import json

from ..untrusted import deep
from .style import Style

SHOW = 5  # lines per list before "... N more": the summary stays a summary


def add_parser(sub) -> None:
    p = sub.add_parser("diff", help="what changed between two models",
                       description="Compare two models: ops by type and version, Flex and custom ops, tensors, "
                                   "weights (by sha256), metadata and signatures. Exit 0 when the same, 1 when "
                                   "they differ, 2 on error.")
    # One argument holding both paths: main.py names `models` in errors it cannot attribute to a
    # file. A metavar tuple would read better but crashes argparse's missing-argument message.
    p.add_argument("models", nargs=2, metavar="MODEL", help="the two models, A (before) then B (after)")
    p.add_argument("--json", action="store_true", help="print the JSON document (schemas/diff.schema.json)")
    p.set_defaults(run=run)


def run(args, out) -> int:
    from ..diff import diff_models

    doc = diff_models(*args.models)
    if args.json:
        out.write(json.dumps(doc) + "\n")
    else:
        out.write("\n".join(render(deep(doc), Style(out))) + "\n")
    return 0 if doc["same"] else 1


def _capped(lines: list[str], show: int = SHOW) -> list[str]:
    if len(lines) <= show:
        return lines
    return lines[:show] + [f"    ... {len(lines) - show} more (--json lists all)"]


def _changes(s: Style, added: list[str], removed: list[str], changed: list[str]) -> list[str]:
    return (_capped([f"  {s('+', 'green')} {x}" for x in added]) + _capped([f"  {s('-', 'red')} {x}" for x in removed])
            + _capped([f"  {s('~', 'yellow')} {x}" for x in changed]))


def _dims(shape: list[int]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def _io(side: dict) -> str:
    return ", ".join(f"{io['name']} {io['dtype']}{_dims(io['shape'])}" for io in side["inputs"]) + " -> " + \
        ", ".join(f"{io['name']} {io['dtype']}{_dims(io['shape'])}" for io in side["outputs"])


def render(doc: dict, s: Style) -> list[str]:
    head = s(f"{doc['a']} vs {doc['b']}", "bold")
    if doc["identical"]:
        return [f"{head}: identical"]
    if doc["same"]:
        return [f"{head}: no differences in ops, tensors, weights, metadata, signatures (the bytes differ)"]
    lines = [f"{head}: differ"]
    removed, added = s("-", "red"), s("+", "green")
    # removed before added, per opcode: a version bump reads as "- CONV_2D v1 / + CONV_2D v3"
    ops = sorted([(r, removed) for r in doc["ops"]["removed"]] + [(r, added) for r in doc["ops"]["added"]],
                 key=lambda rs: (rs[0]["opcode"], rs[1] == added, rs[0]["version"]))
    if ops:
        lines.append(s("Ops", "bold"))
        lines += _capped([f"  {sign} {r['count']:>4}  " + s.kind(f"{r['opcode']} v{r['version']}", r["kind"])
                          for r, sign in ops], 2 * SHOW)
    for kind in ("flex", "custom"):
        x = doc[kind]
        if any(x.values()):
            lines.append(s(f"{kind.capitalize()} ops", "bold"))
            lines += _changes(s, x["added"], x["removed"], [
                f"{c['name']}  attributes (subgraph {c['b']['subgraph']} op {c['b']['index']})" for c in x["changed"]])
    for sg in doc["subgraphs"]:
        t = sg["tensors"]
        lines.append(s(f"Subgraph {sg['index']} tensors", "bold")
                     + f": {len(t['added'])} added, {len(t['removed'])} removed, {len(t['changed'])} changed")
        lines += _changes(s, t["added"], t["removed"], [
            f"{c['name']}  {','.join(c['what'])}: {c['a']['dtype']}{_dims(c['a']['shape_signature'])} -> "
            f"{c['b']['dtype']}{_dims(c['b']['shape_signature'])}" for c in t["changed"]])
    w = doc["weights"]
    if w["changed"]:
        lines.append(s("Weights", "bold") + f": {len(w['changed'])} changed, {w['same']} same")
        lines += _changes(s, [], [], [f"subgraph {c['subgraph']} tensor {c['tensor']} {c['name']}  "
                                      f"{c['bytes_a']} B -> {c['bytes_b']} B" for c in w["changed"]])
    m = doc["metadata"]
    if any(m.values()):
        lines.append(s("Metadata", "bold"))
        lines += _changes(s, m["added"], m["removed"],
                          [f"{c['name']}  {c['bytes_a']} B -> {c['bytes_b']} B" for c in m["changed"]])
    sig = doc["signatures"]
    if any(sig.values()):
        lines.append(s("Signatures", "bold"))
        lines += _changes(s, sig["added"], sig["removed"],
                          [f"{c['key']}  {_io(c['a'])}  =>  {_io(c['b'])}" for c in sig["changed"]])
    return lines
