"""Latency of `fbtool patch`ed models on ai-edge-litert against the same Keras models converted
with TFLITE_BUILTINS (the default converter), side by side.

    python bench/latency_bench.py [--rounds N] [--invokes K] [--write-readme]

Target (issue #5): each patched SELECT_TF_OPS-only model within 1.15x of its TFLITE_BUILTINS twin.
The twins come from fixtures/make_e2e.py (`build(name, builtins=True)`, needs TensorFlow, run in a
child process and cached). Both models of a pair are loaded in one fresh process on one thread and
invoked in alternation: a round is K invokes of each, the figure is the median over rounds of the
per-invoke time, so drift in the machine's speed hits both alike.
"""
import argparse
import json
import os
import subprocess
import sys

from run import CACHE, HERE, ROOT, machine, put_section

README = os.path.join(HERE, "README.md")
BEGIN, END = "<!-- latency:begin -->", "<!-- latency:end -->"
E2E = os.path.join(ROOT, "fixtures", "e2e")
TWINS = os.path.join(CACHE, "e2e")
MODELS = ["mlp", "mobilenet_style", "resnet_style", "transformer_block", "preprocessing"]
TIMER = r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
paths, rounds, invokes = sys.argv[1:3], int(sys.argv[3]), int(sys.argv[4])
runners = [Interpreter(model_path=p, num_threads=1).get_signature_runner() for p in paths]
data = np.load(sys.argv[5])
feeds = {k.split(":", 1)[1]: v for k, v in data.items() if k.startswith("input:")}
times = [[], []]
for r in range(rounds + 1):
    for i, run in enumerate(runners):
        t = time.perf_counter()
        for _ in range(invokes):
            run(**feeds)
        if r:                         # round 0 warms caches and allocations up
            times[i].append((time.perf_counter() - t) / invokes)
print(json.dumps([float(np.median(t)) for t in times]))
"""


def prepare(names):
    """The TFLITE_BUILTINS twins (built once) and the patched fixtures, in bench/.cache/e2e."""
    os.makedirs(TWINS, exist_ok=True)
    missing = [n for n in names if not os.path.exists(os.path.join(TWINS, n + ".builtins.tflite"))]
    if missing:
        subprocess.run([sys.executable, os.path.join(ROOT, "fixtures", "make_e2e.py"), "--builtins", TWINS,
                        "--out", os.path.join(TWINS, "select"), "--only", *missing], check=True)
    for n in names:
        subprocess.run([sys.executable, "-m", "fbtool", "patch", os.path.join(E2E, n + ".tflite"), "-o",
                        os.path.join(TWINS, n + ".patched.tflite"), "--no-verify-run"], check=True,
                       stdout=subprocess.DEVNULL, cwd=ROOT)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--invokes", type=int, default=50)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    prepare(MODELS)
    load = os.getloadavg()[0]
    lines = ["| model | TFLITE_BUILTINS ms | fbtool patch ms | ratio | target < 1.15x |", "|---|---:|---:|---:|---|"]
    for n in MODELS:
        pair = [os.path.join(TWINS, f"{n}.{kind}.tflite") for kind in ("builtins", "patched")]
        out = subprocess.run([sys.executable, "-c", TIMER, *pair, str(args.rounds), str(args.invokes),
                              os.path.join(E2E, n + ".npz")], check=True, capture_output=True, text=True)
        builtins, patched = json.loads(out.stdout)
        ratio = patched / builtins
        lines.append(f"| {n} | {builtins * 1e3:.4f} | {patched * 1e3:.4f} | {ratio:.2f} | "
                     f"{'yes' if ratio < 1.15 else '**NO**'} |")
        print(lines[-1], file=sys.stderr)
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        put_section("latency", "Latency of patched models", "bench/latency_bench.py",
                    f"{machine(argparse.Namespace(tf_python=None), load)}; one thread, {args.rounds} rounds of "
                    f"{args.invokes} invokes of each model, alternating", table)

if __name__ == "__main__":
    main()
