"""``fbtool log``: what a converter or runtime log says is wrong, and what to do about it."""
from __future__ import annotations

import io
import json
import sys

from ..errors import ModelError
from ..untrusted import deep
from .style import Style

SNIFF = 4096


def add_parser(sub) -> None:
    p = sub.add_parser("log", help="turn converter/runtime error text into the ops at fault and remedies",
                       description="Parse a TFLite converter or runtime log (a file, or - for stdin): which ops "
                                   "failed, where in the model they come from, and what to do.")
    p.add_argument("log", help="log file, or - to read standard input")
    p.add_argument("--model", help="join with a converted .tflite: which log ops became which Flex/custom ops")
    p.add_argument("--json", action="store_true", help="print the JSON document (schemas/log.schema.json)")
    p.set_defaults(run=run)


def run(args, out) -> int:
    from ..log import parse_log
    from ..log.join import join
    from ..log.report import describe_log
    from ..reader.model import open_model

    if args.log == "-":
        report = parse_log(text_of(sys.stdin.buffer, "standard input"))
    else:
        try:
            with open(args.log, "rb") as f:
                report = parse_log(text_of(f, args.log))
        except OSError as e:
            raise ModelError(e.strerror or str(e), path=args.log) from None
    doc = describe_log(report, args.log)
    if args.model:
        with open_model(args.model) as model:
            doc["join"] = join(doc, model)
    if args.json:
        out.write(json.dumps(doc) + "\n")
    else:
        out.write("\n".join(render(deep(doc), Style(out))) + "\n")
    return 0


def text_of(stream, name: str) -> io.TextIOWrapper:
    """The log as text: UTF-8, or UTF-16 with a byte-order mark (PowerShell's ``>`` writes that).
    Binary data is refused rather than reported as "no problems found"."""
    buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    head = buffered.peek(SNIFF)[:SNIFF]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return io.TextIOWrapper(buffered, encoding="utf-16", errors="replace")
    if head[4:8] == b"TFL3":
        raise ModelError("this is a .tflite model, not a log (fbtool inspect or fbtool flex read models)", path=name)
    if b"\0" in head:
        raise ModelError("binary data (a NUL byte in the first bytes), not converter or runtime text", path=name)
    return io.TextIOWrapper(buffered, encoding="utf-8", errors="replace")


def _where(loc: dict) -> str:
    parts = []
    if loc["node"]:
        parts.append(loc["node"] + (f" (layer {loc['layer']})" if loc["layer"] else ""))
    elif loc["layer"]:
        parts.append(f"layer {loc['layer']}")
    if loc["function"]:
        parts.append(f"in {loc['function']}")
    if loc["within"]:
        parts.append(f"within {loc['within'][0]}")
    user = [f for f in loc["python"] if not f["library"]][:3] or loc["python"][:1]
    if user:
        parts.append(" < ".join(f"{f['file']}:{f['line']}" for f in user))
    return ", ".join(parts) or "?"


def render(doc: dict, s: Style) -> list[str]:
    if not doc["ops"]:
        return [f"{doc['source']}: no TFLite conversion problems found ({doc['lines']} lines read)"]
    lines = [s(doc["source"], "bold") + f": {len(doc['ops'])} problem op(s)"
             + (f" (and at least {doc['ops_not_listed']} more not listed)" if doc["ops_not_listed"] else "")]
    colour = {"needs_flex": "yellow", "needs_custom": "red", "needs_newer_runtime": "red", "unsupported": "red"}
    for op in doc["ops"]:
        lines.append("")
        head = s(op["name"], "bold") + "  " + s(op["category"], colour.get(op["category"], "")) + f"  ({op['phase']}"
        head += f", {op['count']} place{'s' if op['count'] != 1 else ''})" if op["count"] > 1 else ")"
        lines.append(head)
        if op["operand_types"] or op["result_types"]:
            lines.append(f"    types   ({', '.join(op['operand_types'])}) -> ({', '.join(op['result_types'])})")
        if op["attrs"]:
            lines.append("    attrs   " + ", ".join(f"{k}={v}" for k, v in op["attrs"].items()))
        for loc in op["locations"][:5]:
            lines.append(f"    at      {_where(loc)}")
        lines.append(f"    remedy  {op['remedy']}")
    j = doc.get("join")
    if j:
        lines.append("")
        lines.append(s(f"In {j['model']}", "bold"))
        for m in j["matches"]:
            where = ", ".join(f"subgraph {o['subgraph']} op {o['index']} ({o['custom_code']})" for o in m["model_ops"])
            lines.append(f"    {m['log_op']} -> {where}")
        if j["unexplained_log_ops"]:
            lines.append(f"    not in the model: {', '.join(j['unexplained_log_ops'])}")
        if j["unexplained_model_ops"]:
            lines.append("    in the model, not in the log: " + ", ".join(
                f"{o['custom_code']} (subgraph {o['subgraph']} op {o['index']})" for o in j["unexplained_model_ops"]))
    return lines
