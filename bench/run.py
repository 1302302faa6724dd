"""Whole-process benchmark: `fbtool inspect` vs LiteRT's read_model vs TensorFlow's Analyzer.

    python bench/run.py [--repeat N] [--fbtool CMD] [--tf-python PATH] [--write-readme]

Every measurement is one fresh process (start-up, imports, reading the model, output), timed from
the outside: wall time around the process and its peak RSS as GNU time reports it. All commands
run round-robin in each repetition, after one untimed warm-up round; the table shows medians.
Models are made by make_models.py into bench/.cache/ when missing (delete that folder to remake them).
"""

import argparse
import datetime
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(HERE, ".cache")
# Every Python child reads cached bytecode after the warm-up round, as after a pip install, even
# where PYTHONDONTWRITEBYTECODE is set (an editable fbtool would otherwise compile on every run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = os.path.join(CACHE, "pycache")
MODELS = ["small_weights", "big_weights", "many_ops"]
README = os.path.join(HERE, "README.md")
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
READ_MODEL = "from ai_edge_litert.tools import flatbuffer_utils as f; import sys; f.read_model(sys.argv[1])"
ANALYZER = "import sys, tensorflow as tf; tf.lite.experimental.Analyzer.analyze(model_path=sys.argv[1])"


def ensure_models():
    paths = {m: os.path.join(CACHE, m + ".tflite") for m in MODELS}
    if not all(os.path.exists(p) for p in paths.values()):
        subprocess.run([sys.executable, os.path.join(HERE, "make_models.py"), CACHE], check=True)
    return paths


def measure(argv):
    """Run argv once, stdout to /dev/null; return (wall s, peak RSS MB) of that process.

    The peak RSS comes from GNU time, not from our own wait4: Linux carries the parent's peak RSS
    over exec into the child's ru_maxrss, so wait4 here would never report less than this script.
    """
    with tempfile.NamedTemporaryFile("r") as rss, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M", "-o", rss.name] + argv,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, env=ENV)
        wall = time.perf_counter() - t0
        if proc.returncode:
            err.seek(0)
            sys.exit(f"exit {proc.returncode}: {shlex.join(argv)}\n{err.read().decode(errors='replace')[-3000:]}")
        return wall, int(rss.read()) * 1024 / 1e6  # %M is in KiB


def cases(args, models, scratch):
    """(command label, model, argv) for every measured command."""
    py, fbtool = sys.executable, shlex.split(args.fbtool)
    yield "python -c pass", "-", [py, "-c", "pass"]
    yield "cp MODEL /tmp/x", "big_weights", ["cp", models["big_weights"], os.path.join(scratch, "x")]
    for m in MODELS:
        yield "fbtool inspect", m, fbtool + ["inspect", models[m]]
        yield "fbtool inspect --json", m, fbtool + ["inspect", models[m], "--json"]
        if m == "big_weights":
            yield "fbtool inspect --sha256", m, fbtool + ["inspect", models[m], "--sha256"]
        yield "read_model", m, [py, "-c", READ_MODEL, models[m]]
        if args.tf_python:
            yield "TF Analyzer", m, [args.tf_python, "-c", ANALYZER, models[m]]


def rounds(todo, repeat):
    """Run (label, model, argv) commands round-robin: a warm-up round, then ``repeat`` timed ones;
    return {(label, model): (median wall s, median peak RSS MB)}."""
    samples = {(label, m): [] for label, m, _ in todo}
    for rep in range(repeat + 1):
        print(f"round {rep}/{repeat}" + (" (warm-up)" if rep == 0 else ""), file=sys.stderr)
        for label, m, argv in todo:
            result = measure(argv)
            if rep:
                samples[label, m].append(result)
    return {k: (statistics.median(w for w, _ in v), statistics.median(r for _, r in v)) for k, v in samples.items()}


def run(args, models):
    with tempfile.TemporaryDirectory() as scratch:
        return rounds(list(cases(args, models, scratch)), args.repeat)


def report(res, args):
    lines = ["| command | model | median wall s | median peak RSS MB |", "|---|---|---:|---:|"]
    lines += [f"| `{label}` | {m} | {wall:.3f} | {rss:.0f} |" for (label, m), (wall, rss) in res.items()]
    lines += ["", "| ratio | value | target | met |", "|---|---:|---|---|"]
    for cmd in ("fbtool inspect", "fbtool inspect --json"):
        checks = [
            (f"read_model wall / `{cmd}` wall, many_ops",
             res["read_model", "many_ops"][0] / res[cmd, "many_ops"][0], ">= 2x", lambda v: v >= 2),
            (f"`{cmd}` peak RSS MB, big_weights", res[cmd, "big_weights"][1], "< 100 MB", lambda v: v < 100),
            (f"`{cmd}` wall big_weights / small_weights",
             res[cmd, "big_weights"][0] / res[cmd, "small_weights"][0], "~1x (<= 1.2)", lambda v: v <= 1.2),
        ]
        lines += [f"| {name} | {value:.2f} | {target} | {'yes' if ok(value) else '**NO**'} |"
                  for name, value, target, ok in checks]
    if not args.tf_python:
        lines += ["", "TF Analyzer not measured: pass `--tf-python PATH` (a Python with TensorFlow installed)."]
    return "\n".join(lines)


def machine(args, load):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    out = [f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()} ({platform.platform()})"]
    out.append(f"ai-edge-litert {version('ai-edge-litert')}")
    if args.tf_python:
        tf = subprocess.run([args.tf_python, "-c", "import tensorflow as tf; print(tf.__version__)"],
                            capture_output=True, text=True, check=True).stdout.strip()
        out.append(f"TensorFlow {tf} ({args.tf_python})")
    out.append(f"1-min load average {load:.2f} before the run")
    return ", ".join(out)


def write_readme(table, args, load):
    put_section("bench", "Speed", "bench/run.py", f"{machine(args, load)}; {args.repeat} runs of each command "
                "after a warm-up round", table)


def put_section(marker, heading, script, how, table):
    """Replace (or append, under ``heading``) the README section between this script's markers."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    command = shlex.join(["python", script] + sys.argv[1:])
    section = f"{begin}\nMeasured {datetime.date.today()} on {how}.\n\n```\n{command}\n```\n\n{table}\n{end}"
    text = open(README).read()
    if begin in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text += f"\n## {heading}\n\n{section}\n"
    with open(README, "w") as f:
        f.write(text)
    print(f"updated {README}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each command (default 5)")
    ap.add_argument("--fbtool", default=shlex.join([sys.executable, "-m", "fbtool"]),
                    help="command that runs fbtool (default: this Python -m fbtool, run from the repo root)")
    ap.add_argument("--tf-python", help="Python with TensorFlow, for the Analyzer column (skipped without it)")
    ap.add_argument("--write-readme", action="store_true", help="put the results into bench/README.md")
    args = ap.parse_args()
    if not os.access(TIME, os.X_OK):
        sys.exit(f"{TIME} (GNU time) is needed for peak RSS: apt-get install time")
    models = ensure_models()
    load = os.getloadavg()[0]  # other work on the machine skews every number: worth recording
    table = report(run(args, models), args)
    print(table)
    if args.write_readme:
        write_readme(table, args, load)


if __name__ == "__main__":
    main()
