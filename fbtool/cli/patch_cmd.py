"""``fbtool patch`` and ``fbtool verify``: Flex ops into builtins, and the proof it computes the same."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os

from ..errors import UsageError
from ..output import Destination
from ..untrusted import deep
from .options import count, names, shape, tolerance
from .style import Style, error

FLEX_LAST = (2, 18)   # the last TensorFlow whose Python interpreter links the Flex delegate


def add_parser(sub) -> None:
    p = sub.add_parser("patch", help="rewrite Flex ops that have builtin equivalents, in the flatbuffer",
                       description="Rewrite Flex ops into TFLite builtins directly in the file; every other "
                                   "byte stays. The result is verified against the original when a runtime "
                                   "with the Flex delegate (TensorFlow <= 2.18.1) is available.")
    p.add_argument("model", nargs="+", metavar="MODEL",
                   help="the model; with --report-unsupported, any number of models and folders")
    p.add_argument("--report-unsupported", action="store_true",
                   help="plan every MODEL (folders: their .tflite files), write nothing, and count the Flex and "
                        "custom ops that would stay, with why and what would remove them "
                        "(--json: schemas/unsupported.schema.json)")
    p.add_argument("-o", "--output", help="patched model (required unless --dry-run or --in-place)")
    p.add_argument("--in-place", action="store_true", help="replace MODEL itself (atomically)")
    p.add_argument("--dry-run", action="store_true", help="show the plan, write nothing")
    p.add_argument("--json", action="store_true", help="print the JSON document (schemas/patch.schema.json)")
    p.add_argument("--only", metavar="RULES", help="comma-separated rules to apply (TF op names such as "
                                                   "Conv2D, or patterns: fuse_bias_activation, gelu)")
    p.add_argument("--skip", metavar="RULES", help="comma-separated rules not to apply")
    _verify_options(p)
    p.add_argument("--no-verify-run", action="store_true", help="do not run the models to compare them")
    p.set_defaults(run=run_patch)
    v = sub.add_parser("verify", help="run ORIGINAL and PATCHED on the same inputs and compare outputs",
                       description="Run both models on seeded random inputs (all in a separate process) and "
                                   "report the largest absolute and relative error per output.")
    v.add_argument("model", metavar="ORIGINAL")
    v.add_argument("patched", metavar="PATCHED")
    v.add_argument("--json", action="store_true", help="print the JSON report")
    _verify_options(v)
    v.set_defaults(run=run_verify)


def _verify_options(p) -> None:
    p.add_argument("--python", help="Python to run the models with (default: this one); it needs TensorFlow "
                                    "<= 2.18.1 for models with Flex ops, ai-edge-litert or TensorFlow otherwise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=count, default=3, help="random input sets (default 3; 0 needs --inputs)")
    p.add_argument("--inputs", metavar="NPZ", help="also run on these arrays (an .npz keyed by input name)")
    p.add_argument("--shape", type=shape, action="append", default=[], metavar="NAME=DIMS",
                   help="the shape of random inputs for input NAME, e.g. audio=1,16000 (repeatable); without it "
                        "a dynamic dimension takes the size the model was last resized to")
    p.add_argument("--rtol", type=tolerance, default=1e-5, help="relative to the output's largest value (default "
                                                                "1e-5; at least 1e-3 for float16; integers must "
                                                                "match exactly)")
    p.add_argument("--atol", type=tolerance, default=1e-6)
    p.add_argument("--no-per-op", action="store_true", help="compare whole models only, not each rewritten op "
                                                            "against TensorFlow")


def flex_runtime_here() -> bool:
    """Can this Python run Flex ops (TensorFlow <= 2.18 installed)?"""
    if importlib.util.find_spec("tensorflow") is None:
        return False
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            major, minor = importlib.metadata.version(dist).split(".")[:2]
            return (int(major), int(minor)) <= FLEX_LAST
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
    return False


def _verify_settings(args) -> dict:
    if args.runs == 0 and not args.inputs:
        raise UsageError("--runs 0 leaves nothing to run: give --inputs NPZ, or at least one random run")
    return {"python": args.python, "seed": args.seed, "runs": args.runs, "rtol": args.rtol, "atol": args.atol,
            "inputs": args.inputs, "per_op": not args.no_per_op, "shapes": dict(args.shape)}


def _verifier(args):
    from ..verify.compare import verify_models

    settings = _verify_settings(args)
    return lambda original, candidate: verify_models(original, candidate, **settings)


def run_patch(args, out) -> int:
    from ..patch.rewrite import VerificationFailed, patch_model

    if args.report_unsupported:
        return run_unsupported(args, out)
    if len(args.model) > 1:
        raise UsageError("patch takes one MODEL (several only with --report-unsupported)")
    args.model = args.model[0]

    if args.in_place and args.output:
        raise UsageError("--in-place replaces MODEL itself: give it or -o OUT, not both")
    if args.in_place:
        args.output = args.model
    elif args.output and Destination(args.output).same_file(args.model):
        raise UsageError(f"-o {args.output} is MODEL itself: use --in-place to replace it")
    if not args.output and not args.dry_run:
        raise UsageError("say where to write: -o OUT, --in-place or --dry-run")
    if args.output and not args.dry_run:
        Destination(args.output)   # a bad output path is reported before any work is done
    only, skip = _rules(args.only, "--only"), _rules(args.skip, "--skip")
    verify = None
    if not args.no_verify_run and (args.python or flex_runtime_here()):
        verify = _verifier(args)
    try:
        doc = patch_model(args.model, args.output, args.dry_run, verify, only, skip)
    except VerificationFailed as e:
        doc = e.doc
        _print(doc, args, out)
        v = doc["verification"]
        why = v["error"] if "error" in v else "the patched model does not compute what the original does"
        error(f"{args.model}: verification failed ({why}); nothing was written")
        return 2
    _print(doc, args, out)
    return 0


def run_unsupported(args, out) -> int:
    from ..patch.unsupported import report_unsupported

    if args.output or args.in_place or args.only or args.skip:
        raise UsageError("--report-unsupported writes nothing and plans every rule: drop -o, --in-place, --only, --skip")
    doc = report_unsupported(args.model)
    if args.json:
        out.write(json.dumps(doc) + "\n")
    else:
        out.write("\n".join(_unsupported_lines(deep(doc), Style(out))) + "\n")
    for e in doc["errors"]:
        error(f"{e['model']}: {e['error']}")
    return 2 if doc["errors"] else 0


def _unsupported_lines(doc: dict, s: Style) -> list[str]:
    stock = f"; {doc['stock_custom_ops']} custom ops run on stock LiteRT" if doc["stock_custom_ops"] else ""
    lines = [s(f"{doc['models']} model(s)", "bold") + ": "
             + (f"{sum(o['ops'] for o in doc['ops'])} ops fbtool patch leaves" if doc["ops"] else
                "fbtool patch leaves no Flex or custom op") + stock]
    if doc["ops"]:
        lines.append(f"  {'models':>6} {'ops':>6}  op")
    for o in doc["ops"]:
        lines.append(f"  {o['models']:>6} {o['ops']:>6}  " + s.kind(o["tf_op"], o["kind"])
                     + f"  {o['reasons'][0]['reason']}")
        if o.get("remedy"):
            lines.append(f"  {'':>13}  fix: {o['remedy']}")
    return lines


def _rules(text: str | None, option: str) -> set[str] | None:
    from ..patch.rewrite import rule_names

    if text is None:
        return None
    wanted, known = names(text), rule_names()
    unknown = sorted(wanted - known)
    if unknown or not wanted:
        raise UsageError(f"{option}: no rule named {', '.join(unknown) or repr(text)}; rules are the patterns "
                         f"{', '.join(sorted(n for n in known if n.islower()))} and the TF ops "
                         f"{', '.join(sorted(n for n in known if not n.islower()))}")
    return wanted


def _print(doc: dict, args, out) -> None:
    if args.json:
        out.write(json.dumps(doc) + "\n")
        return
    from ..patch.api import inserted_text

    doc = deep(doc)
    s = Style(out)
    action = "would rewrite" if doc["dry_run"] else "rewrote"
    lines = [s(doc["model"], "bold") + f": {action} {len(doc['rewrites'])} of {doc['flex_before']} Flex ops"
             + (f" -> {doc['output']}" if doc["output"] else "")]
    fused: dict[tuple, list] = {}
    for r in doc["rewrites"]:
        if "fused_into" in r:
            fused.setdefault((r["subgraph"], r["fused_into"]), []).append(f"{r['index']} {r['tf_op']}")
    for r in doc["rewrites"]:
        where = f"op {r['index']}" if r["subgraph"] == 0 else f"subgraph {r['subgraph']} op {r['index']}"
        if "fused_into" in r:
            continue
        if r.get("unread"):
            what = "removed: nothing reads it any more"
        elif r.get("removed"):
            what = "removed, its readers read its input" + (
                f" ({', '.join(r['inserted'])} copies it into a model output)" if r.get("inserted") else "")
        else:
            what = f"{r['builtin']} v{r['version']}"
            with_ops = fused.get((r["subgraph"], r["index"]))
            if with_ops:
                what += f", fused with op {', '.join(with_ops)} ({r['rule']})"
            if r.get("inserted"):
                what += f", after {inserted_text(r['inserted'])}"
        lines.append("  " + s(f"{where}: {r['custom_code']} -> {what}", "green"))
    for k in doc["kept"]:
        where = f"op {k['index']}" if k["subgraph"] == 0 else f"subgraph {k['subgraph']} op {k['index']}"
        lines.append(f"  {where}: {k['custom_code']} stays: {k['reason']}")
    v = doc["verification"]
    if v is None and doc["rewrites"] and not doc["dry_run"]:
        why = ("--no-verify-run" if args.no_verify_run else
               "no runtime with the Flex delegate here (pass --python with TensorFlow <= 2.18.1, or install it)")
        lines.append(s(f"  not verified: {why}", "yellow"))
    elif v is not None:
        lines += _verification_lines(v, s)
    out.write("\n".join(lines) + "\n")


def _verification_lines(v: dict, s) -> list[str]:
    if "error" in v:
        return [s(f"  verification failed: {v['error']}", "red")]
    lines = [f"  whole model, {v['runs']} seeded random input sets ({' vs '.join(v['runtimes'])}):"]
    for name, o in v["outputs"].items():
        mark = s("ok", "green") if o["ok"] else s("DIFFERS", "red")
        lines.append(f"    {name}: max abs {o['max_abs']:.3g}, max rel {o['max_rel']:.3g}  {mark}")
    per_op = v.get("per_op") or {}
    if "skipped" in per_op:
        lines.append(s(f"  per op: skipped: {per_op['skipped']}", "yellow"))
    elif per_op.get("groups") is not None:
        groups = per_op["groups"]
        lines.append(f"  per op: {len(groups)} rewritten ops checked against their NodeDefs in {per_op['runtime']}: "
                     + (s("all within tolerance", "green") if v.get("first_divergence") is None else
                        s(f"{sum(not g['ok'] for g in groups)} differ", "red")))
    first = v.get("first_divergence")
    if first:
        what = first.get("error") or f"max abs {first['max_abs']:.3g} (largest value {first.get('max_ref', 0):.3g})"
        lines.append(s(f"  first divergence: original ops {first['ops']} -> patched op {first['patched_index']} "
                       f"({first['builtin']}): {what}", "red"))
    return lines


def run_verify(args, out) -> int:
    from ..verify.compare import verify_models

    for path in (args.model, args.patched):
        if not os.path.exists(path):
            raise UsageError(f"{path}: No such file or directory")
    report = verify_models(args.model, args.patched, **_verify_settings(args))
    if "error" in report:   # nothing was compared: an error, in JSON as in text
        if args.json:
            out.write(json.dumps(report) + "\n")
        where = {"original": args.model, "patched": args.patched}.get(report.get("model"),
                                                                       f"{args.model} vs {args.patched}")
        error(f"{where}: {report['error']}")
        return 2
    if args.json:
        out.write(json.dumps(report) + "\n")
    else:
        out.write("\n".join([f"{args.model} vs {args.patched}:", *_verification_lines(report, Style(out))]) + "\n")
    return 0 if report["ok"] else 1
