"""Whole-process benchmark of `fbtool patch` against copying the file and a LiteRT round trip.

    python bench/patch_bench.py [--repeat N] [--write-readme]

Targets (issue #5): patching the Flex op of a 336 MB model costs under 3x `cp` of the same file with
peak RSS under 200 MB; rewriting all Flex ops of a 10,000-op all-Flex model is at least 2x faster than a
`flatbuffer_utils` read+write round trip that changes nothing. Same harness as run.py: fresh processes,
round-robin, medians, peak RSS from GNU time.
"""
import argparse
import os
import shlex
import sys
import tempfile

from run import CACHE, HERE, ROOT, machine, put_section, rounds

README = os.path.join(HERE, "README.md")
BEGIN, END = "<!-- patch:begin -->", "<!-- patch:end -->"
ROUND_TRIP = ("from ai_edge_litert.tools import flatbuffer_utils as f; import sys; "
              "f.write_model(f.read_model(sys.argv[1]), sys.argv[2])")


def models():
    paths = {m: os.path.join(CACHE, m + ".tflite") for m in ("big_flex", "many_flex")}
    if not all(os.path.exists(p) for p in paths.values()):
        import subprocess
        subprocess.run([sys.executable, os.path.join(HERE, "make_models.py"), CACHE], check=True)
    return paths


def cases(paths, scratch):
    fbtool = [sys.executable, "-m", "fbtool", "patch"]
    out = os.path.join(scratch, "out.tflite")
    yield "cp MODEL OUT", "big_flex", ["cp", paths["big_flex"], out]
    # fbtool fsyncs its output before the rename (a crash never leaves a half model); cp does not
    yield "cp MODEL OUT && sync OUT", "big_flex", ["sh", "-c", f"cp {shlex.quote(paths['big_flex'])} {out} && sync {out}"]
    yield "fbtool patch", "big_flex", fbtool + [paths["big_flex"], "-o", out, "--no-verify-run"]
    yield "read_model + write_model", "many_flex", [sys.executable, "-c", ROUND_TRIP, paths["many_flex"], out]
    yield "fbtool patch", "many_flex", fbtool + [paths["many_flex"], "-o", out, "--no-verify-run"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    paths = models()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        res = rounds(list(cases(paths, scratch)), args.repeat)
    lines = ["| command | model | median wall s | median peak RSS MB |", "|---|---|---:|---:|"]
    lines += [f"| `{label}` | {m} | {wall:.3f} | {rss:.0f} |" for (label, m), (wall, rss) in res.items()]
    checks = [
        ("`fbtool patch` / `cp`, big_flex (336 MB)", res["fbtool patch", "big_flex"][0] / res["cp MODEL OUT", "big_flex"][0],
         "< 3x", lambda v: v < 3),
        ("`fbtool patch` / `cp && sync` (both durable), big_flex",
         res["fbtool patch", "big_flex"][0] / res["cp MODEL OUT && sync OUT", "big_flex"][0], "-", lambda v: True),
        ("`fbtool patch` peak RSS MB, big_flex", res["fbtool patch", "big_flex"][1], "< 200 MB", lambda v: v < 200),
        ("round trip / `fbtool patch`, many_flex (10,000 Flex ops)",
         res["read_model + write_model", "many_flex"][0] / res["fbtool patch", "many_flex"][0], ">= 2x", lambda v: v >= 2),
    ]
    lines += ["", "| ratio | value | target | met |", "|---|---:|---|---|"]
    lines += [f"| {n} | {v:.2f} | {t} | {'-' if t == '-' else 'yes' if ok(v) else '**NO**'} |" for n, v, t, ok in checks]
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        put_section("patch", "Patch", "bench/patch_bench.py", f"{machine(argparse.Namespace(tf_python=None), load)}; "
                    f"{args.repeat} runs of each command after a warm-up round", table)

if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
