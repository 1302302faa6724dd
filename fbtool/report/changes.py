"""Before/after: what a patch did to each operator of the original model.

``fbtool patch`` never renumbers tensors, so an original op and a patched op are the same op
when they produce the same output tensor. An original op whose outputs no patched op produces
was removed, or folded into a patched op: the patched op that took over reads none of the
tensors between them (a BiasAdd folded into the conv before it: the conv then produces the
BiasAdd's output and the conv's own output tensor is gone).
"""
from __future__ import annotations

from collections import Counter

# status of an original op in the patched model
REWRITTEN, FOLDED, REMOVED, STILL_FLEX, STILL_CUSTOM, CHANGED, UNCHANGED = (
    "rewritten", "folded", "removed", "still flex", "still custom", "changed", "unchanged")


def _brief(op: dict) -> dict:
    return {"index": op["index"], "opcode": op["opcode"], "kind": op["kind"], "version": op["version"]}


def _match(before: list[dict], after: list[dict]) -> tuple[dict, dict]:
    """(matched original -> patched index, folded original -> patched index)."""
    producer_after = {t: op["index"] for op in after for t in op["outputs"]}
    producer_before = {t: op["index"] for op in before for t in op["outputs"]}
    matched = {}
    for op in before:
        hits = [producer_after[t] for t in op["outputs"] if t in producer_after]
        if hits:
            matched[op["index"]] = hits[0]
    folded = {}
    for b, a in sorted(matched.items()):
        reads = set(after[a]["inputs"])
        # walk up from the op that took over through tensors the patched op no longer reads
        stack = [t for t in before[b]["inputs"] if t >= 0 and t not in reads]
        while stack:
            p = producer_before.get(stack.pop())
            if p is None or p in matched or p in folded:
                continue
            folded[p] = a
            stack += [t for t in before[p]["inputs"] if t >= 0 and t not in reads]
    return matched, folded


def _why_still(plan_after, subgraph: int, index: int) -> str:
    """Why a patched op is still Flex or custom, from fbtool patch's plan for the patched model."""
    if plan_after is None:
        return ""
    rewrites, kept = plan_after
    for k in kept:
        if (k["subgraph"], k["index"]) == (subgraph, index):
            return k["reason"]
    for r in rewrites:
        if (r["subgraph"], r["index"]) == (subgraph, index):
            would = (f"make it {r['builtin']} v{r['version']}" if r.get("builtin")
                     else "remove it or fuse it into another op")
            return f"not rewritten in this file, but fbtool patch would now {would}"
    return ""


def compare(before: dict, after: dict, plan_after=None) -> dict:
    """Each original op's fate; ``before``/``after`` are inspect documents, ``plan_after`` the
    patcher's ``(rewrites, kept)`` for the patched model (the reasons ops stayed)."""
    rows, added = [], []
    after_subgraphs = {sg["index"]: sg for sg in after["subgraphs"]}
    for sg in before["subgraphs"]:
        ops_b = sg["operators"]
        ops_a = after_subgraphs.get(sg["index"], {"operators": []})["operators"]
        matched, folded = _match(ops_b, ops_a)
        takers, heads = {}, {}
        for b, a in folded.items():
            takers.setdefault(a, []).append(b)
        for b, a in sorted(matched.items(), reverse=True):
            heads[a] = b   # the original op whose output the patched op produces (the first, if several)
        for op in ops_b:
            i = op["index"]
            row = {"subgraph": sg["index"], "index": i, "before": _brief(op), "after": None,
                   "folded": [], "group": [], "reason": ""}
            if i in matched:
                a = ops_a[matched[i]]
                row["after"] = _brief(a)
                row["folded"] = sorted(takers.get(a["index"], []))
                row["group"] = sorted([i, *row["folded"]]) if row["folded"] else []
                if op["kind"] != "builtin" and a["kind"] == "builtin":
                    row["status"] = REWRITTEN
                elif a["kind"] != "builtin":
                    row["status"] = STILL_FLEX if a["kind"] == "flex" else STILL_CUSTOM
                    row["reason"] = _why_still(plan_after, sg["index"], a["index"])
                elif (a["opcode"], a["version"]) != (op["opcode"], op["version"]) or row["folded"]:
                    row["status"] = CHANGED
                else:
                    row["status"] = UNCHANGED
            elif i in folded:
                row["status"] = FOLDED
                row["after"] = _brief(ops_a[folded[i]])
                row["group"] = sorted([heads[folded[i]], *takers[folded[i]]])
            else:
                row["status"] = REMOVED
            rows.append(row)
        taken = set(matched.values())
        added += [{"subgraph": sg["index"], **_brief(a)} for a in ops_a if a["index"] not in taken]
    for index in sorted(set(after_subgraphs) - {sg["index"] for sg in before["subgraphs"]}):
        added += [{"subgraph": index, **_brief(a)} for a in after_subgraphs[index]["operators"]]
    return {"rows": rows, "added": added, "counts": dict(Counter(r["status"] for r in rows)),
            "subgraphs": [len(before["subgraphs"]), len(after["subgraphs"])]}


def marks(changes: dict, subgraph: int) -> tuple[dict, dict]:
    """Ops to draw as rewritten: (original op index -> "rewritten", patched op index -> "rewritten")."""
    before, after = {}, {}
    for r in changes["rows"]:
        if r["subgraph"] == subgraph and r["status"] in (REWRITTEN, FOLDED, CHANGED):
            before[r["index"]] = "rewritten"
            after[r["after"]["index"]] = "rewritten"
    return before, after


def matching_ops(changes: dict, subgraph: int, ops: list[int]) -> list[int]:
    """The patched ops that took over ``ops`` of the original."""
    wanted = set(ops)
    return sorted({r["after"]["index"] for r in changes["rows"]
                   if r["subgraph"] == subgraph and r["index"] in wanted and r["after"]})
