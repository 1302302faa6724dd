"""``fbtool report``: a self-contained HTML page about a model, or before/after a patch."""
from __future__ import annotations

import functools
import os

from ..errors import UsageError
from .options import count
from .style import note


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report (graph drawing, Flex ops, patch results)",
                       description="Write one HTML file that opens offline: summary, op types, the Flex and "
                                   "custom ops decoded, and the op graph drawn by Graphviz with Flex ops and "
                                   "islands marked. With --patched, what a patch changed.")
    p.add_argument("model", metavar="MODEL", help="the model (the original, with --patched)")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    p.add_argument("--patched", metavar="PATCHED", help="a patched copy of MODEL (from fbtool patch): before/after")
    p.add_argument("--subgraph", type=count, help="draw only this subgraph (default: all)")
    p.add_argument("--island", type=count, help="draw only this Flex island (of --subgraph, default 0) and its tensors")
    p.add_argument("--collapse", choices=("auto", "always", "never"), default="auto",
                   help="draw each Flex island as one node: auto (above 200 ops in a drawing), always, never")
    p.add_argument("--verify", action="store_true",
                   help="with --patched: run both models on the same random inputs and show the differences")
    p.add_argument("--python", help="with --verify: the Python to run the models with (it needs TensorFlow "
                                    "<= 2.18.1 for Flex ops)")
    p.set_defaults(run=run)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def run(args, out) -> int:
    from ..report import build_report, write_report

    if args.verify and not args.patched:
        raise UsageError("--verify compares a model with its patched copy: give --patched PATCHED")
    if any(_same_file(args.output, m) for m in (args.model, args.patched) if m):
        raise UsageError(f"refusing to write the report over the model {args.output}")
    verify = None
    if args.verify:
        from ..verify.compare import verify_models
        verify = functools.partial(verify_models, python=args.python)

    text = build_report(args.model, args.patched, args.subgraph, args.island, args.collapse, verify)
    write_report(args.output, text)
    note(f"wrote {args.output}")
    return 0
