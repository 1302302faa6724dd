"""``fbtool flex``: what still needs the Flex delegate or a custom kernel, and why."""
from __future__ import annotations

import json

from ..errors import UsageError
from ..untrusted import deep
from .style import Style

FAIL_KINDS = ("flex", "custom")


def add_parser(sub) -> None:
    p = sub.add_parser("flex", help="decode the Flex and custom ops and say which have builtin equivalents",
                       description="List every Flex and custom op: TF op, attributes, tensors, layer, "
                                   "island, and whether a TFLite builtin could replace it.")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print the JSON document (schemas/flex.schema.json)")
    p.add_argument("--fail-on", default="", metavar="KINDS",
                   help="exit 1 when ops of these kinds are present: flex, custom or flex,custom (for CI)")
    p.add_argument("--no-verify", action="store_true", help="skip the semantic checks (bounds checks always run)")
    p.set_defaults(run=run)


def _kinds(text: str) -> set[str]:
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    unknown = kinds - set(FAIL_KINDS)
    if unknown:
        raise UsageError(f"--fail-on takes {', '.join(FAIL_KINDS)}, not {', '.join(sorted(unknown))}")
    return kinds


def run(args, out) -> int:
    from ..flex.analyze import analyze_flex

    fail_on = _kinds(args.fail_on)
    doc = analyze_flex(args.model, verify=not args.no_verify)
    if args.json:
        out.write(json.dumps(doc) + "\n")
    else:
        out.write("\n".join(render(deep(doc), Style(out))) + "\n")
    present = {"flex"} if doc["summary"]["flex_ops"] else set()
    present |= {"custom"} if doc["summary"]["custom_ops"] > doc["summary"]["stock_custom_ops"] else set()
    return 1 if present & fail_on else 0


def _attrs(attrs: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in attrs.items())


def _tensors(refs: list[dict]) -> str:
    return ", ".join("-" if r["tensor"] < 0 else f"{r['name'] or '#' + str(r['tensor'])} {r['dtype']}{r['shape']}"
                     for r in refs)


def render(doc: dict, s: Style) -> list[str]:
    sm = doc["summary"]
    stock = f" ({sm['stock_custom_ops']} run on stock LiteRT)" if sm["stock_custom_ops"] else ""
    lines = [s(doc["file"], "bold") + f": {sm['flex_ops']} Flex ops, {sm['custom_ops']} custom ops{stock}"]
    if not doc["ops"]:
        lines.append(s("  nothing needs the Flex delegate or a custom kernel", "green"))
        return lines
    lines.append(f"  {sm['rewritable']} could become TFLite builtins, {sm['must_stay']} must stay"
                 + (f", {sm['undecodable']} did not decode" if sm["undecodable"] else ""))
    lines.append(f"  {sm['islands']} Flex islands, {sm['partitions']} Flex delegate partitions (as the runtime cuts the graph)")
    lines.append("")
    for row in sm["by_op"]:
        verdict = s("rewritable", "green") if row["rewritable"] else \
            s("runs on stock LiteRT", "green") if row.get("stock") else s("must stay", "red")
        lines.append(f"  {row['count']:>5}  " + s.kind(f"{row['tf_op']:<28}", row["kind"]) + f"  {row['kind']:<6}  {verdict}")
    for op in doc["ops"]:
        lines.append("")
        head = f"subgraph {op['subgraph']} op {op['index']}: " + s.kind(op["custom_code"], op["kind"])
        if op["layer"]:
            head += f"  layer {op['layer']}"
        if op["island"] is not None:
            head += f"  island {op['island']}"
        lines.append(head)
        if op["attrs"]:
            lines.append(f"    attrs   {_attrs(op['attrs'])}")
        lines.append(f"    in      {_tensors(op['inputs'])}")
        lines.append(f"    out     {_tensors(op['outputs'])}")
        if op["rewritable"] and op["builtin"] is None:
            lines.append("    " + s(f"-> {op['reason']}", "green"))
        elif op["rewritable"]:
            lines.append("    " + s(f"-> {op['builtin']} v{op['version']}", "green")
                         + (f" (runtime >= {op['min_runtime']})" if op["min_runtime"] else "") + f": {op['reason']}")
        elif op.get("stock"):
            lines.append("    " + s("stock", "green") + f": {op['reason']}")
        else:
            lines.append("    " + s("stays", "red") + f": {op['reason']}")
            if op.get("remedy"):
                lines.append(f"    fix:    {op['remedy']}")
    return lines
