"""Audit output: a table for people, JSON Lines for pipelines."""
from __future__ import annotations

import json


def jsonl(record: dict) -> str:
    return json.dumps(record, separators=(",", ":")) + "\n"


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB"


def unreadable(record: dict) -> bool:
    """A container or member fbtool could not look into (not a model found broken)."""
    return not record["ok"] and any(f["rule"] == "unreadable" for f in record["findings"])


def table_row(record: dict, style) -> str:
    if unreadable(record):
        status = style("FAIL", "red") if record["violation"] else style("unread", "yellow")
        return f"{status:<10} {record['location']}\n           {record['error']}"
    if not record.get("ok"):
        status = style("MALFORMED", "red")
        return f"{status:<10} {record['location']}\n           {record['error']}"
    c = record["op_counts"]
    ops = f"{c['total']} ops" + (style(f", {c['flex']} flex", "yellow") if c["flex"] else "") \
        + (style(f", {c['custom']} custom", "red") if c["custom"] else "")
    warned = any(f["level"] != "note" for f in record["findings"])
    status = style("FAIL", "red") if record["violation"] else ("warn" if warned else style("ok", "green"))
    line = f"{status:<10} {record['location']}  {_size(record['size'])}, {ops}, needs TFLite >= {record['required_runtime'] or '?'}"
    mark = lambda f: "x" if f["violation"] else "i" if f["level"] == "note" else "-"   # noqa: E731
    details = [f"           {mark(f)} {f['message']}" for f in record["findings"]]
    return "\n".join([line, *details])


def summary(totals: dict) -> str:
    unread = f", {totals['unreadable']} file(s) or member(s) not read" if totals["unreadable"] else ""
    return (f"{totals['models']} model(s): {totals['malformed']} malformed, {totals['flex']} with Flex ops, "
            f"{totals['custom']} with custom ops, {totals['violations']} violating the policy{unread}")
