"""``fbtool audit``: check every model in folders and archives against a policy, for CI."""
from __future__ import annotations

import contextlib
import json
import os
import sys

from ..errors import ModelError
from ..output import open_output
from ..untrusted import deep
from .options import positive_int
from .style import Style

PROGRESS_AFTER = 50


def add_parser(sub) -> None:
    p = sub.add_parser("audit", help="find models in folders/archives and check them against a policy (CI)",
                       description="Find .tflite models (by content) in folders and zip/apk/aar/jar/whl/.task "
                                   "archives, report what they need, and fail on what the policy denies.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--policy", help="TOML policy file (schemas/audit-policy.schema.json)")
    p.add_argument("--deny", help="comma-separated kinds that fail the audit: flex, custom, malformed, runtime, "
                                  "size, signatures, warnings, unreadable (malformed always fails)")
    p.add_argument("--target-runtime", help="TFLite/LiteRT runtime version you ship, e.g. 2.14")
    p.add_argument("--allow-custom", help="comma-separated custom ops your runtime registers")
    p.add_argument("--format", choices=("table", "json", "sarif"), default="table",
                   help="table (default), json (JSON Lines, one model per line) or sarif (SARIF 2.1.0)")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    p.add_argument("--jobs", type=positive_int, help="worker processes (default: all cores)")
    p.add_argument("--write-baseline", metavar="FILE", help="accept today's findings: write them as a baseline")
    p.set_defaults(run=run)


def _list(text: str | None) -> tuple[str, ...] | None:
    return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None


def run(args, out) -> int:
    from ..audit.policy import load_policy

    for path in args.paths:
        if not os.path.exists(path):
            raise ModelError("No such file or directory", path=path)
    policy = load_policy(args.policy, baseline_optional=bool(args.write_baseline), deny=_list(args.deny), target_runtime=args.target_runtime,
                         allow_custom=_list(args.allow_custom))
    with contextlib.ExitStack() as stack:
        # both outputs are opened (and their paths checked) before the audit starts
        sink = stack.enter_context(open_output(args.output, binary=False)) if args.output else out
        baseline = stack.enter_context(open_output(args.write_baseline, binary=False)) if args.write_baseline else None
        totals = _audit(args, policy, sink, baseline)
    return 1 if totals["violations"] else 0


def _audit(args, policy, sink, baseline) -> dict:
    from ..audit.output import jsonl, summary, table_row, unreadable
    from ..audit.run import audit_paths

    style = Style(sink)
    # a progress line only where it cannot interleave with a table on the same terminal
    progress = sys.stderr.isatty() and (args.format != "table" or sink is not sys.stdout or not sys.stdout.isatty())
    totals = {"models": 0, "malformed": 0, "flex": 0, "custom": 0, "violations": 0, "unreadable": 0}
    records = []
    for record in audit_paths(args.paths, policy, args.jobs):
        if unreadable(record):
            totals["unreadable"] += 1
        else:
            totals["models"] += 1
            totals["malformed"] += not record["ok"]
        totals["flex"] += bool(record.get("flex_ops"))
        totals["custom"] += bool(record.get("custom_ops"))
        totals["violations"] += record["violation"]
        if args.format == "json":
            sink.write(jsonl(record))
        elif args.format == "table":
            sink.write(table_row(deep(record), style) + "\n")
        if args.format == "sarif" or baseline is not None:
            records.append(record)
        if progress and totals["models"] % PROGRESS_AFTER == 0:
            print(f"\r{totals['models']} models audited", end="", file=sys.stderr, flush=True)
    if progress and totals["models"] >= PROGRESS_AFTER:
        print(file=sys.stderr)
    if args.format == "sarif":
        from ..audit.sarif import to_sarif
        sink.write(json.dumps(to_sarif(records), indent=1) + "\n")
    elif args.format == "table":
        sink.write(style(summary(totals), "bold") + "\n")
    if baseline is not None:
        accepted = [{"location": r["location"], "rule": f["rule"], "subject": f.get("subject")}
                    for r in records for f in r["findings"]]
        json.dump(accepted, baseline, indent=1)
    return totals
