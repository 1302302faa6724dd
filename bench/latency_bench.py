"""Latency of `fbtool patch`ed models on ai-edge-litert against the same Keras models converted
with TFLITE_BUILTINS (the default converter), side by side.

    python bench/latency_bench.py [--rounds N] [--invokes K] [--write-readme]

Target (issue #13): each patched SELECT_TF_OPS-only model within 1.02x of its TFLITE_BUILTINS twin,
float32 and float16. The models: fixtures/e2e (twins from fixtures/make_e2e.py) and the Keras zoo of
fixtures/make_zoo.py (MobileNetV2, MobileNetV3-small, ResNet, transformer, dilated Conv1D audio
net, U-Net, PReLU/LeakyReLU CNN), made in a child process with TensorFlow and cached. Both models of
a pair are loaded in one fresh process on one thread and invoked in alternation: a round is K
invokes of each, the figure is the median over rounds of the per-invoke time, so drift in the
machine's speed hits both alike.
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
ZOO = os.path.join(CACHE, "zoo")
MODELS = ["mlp", "mobilenet_style", "resnet_style", "transformer_block", "preprocessing"]
ARCHS = ["mobilenet_v2", "mobilenet_v3_small", "resnet_style", "transformer_block", "dilated_conv1d_audio", "unet",
         "prelu_leaky"]
TARGET = 1.02
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


def _patch(src, out):
    subprocess.run([sys.executable, "-m", "fbtool", "patch", src, "-o", out, "--no-verify-run"], check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)


def prepare():
    """(name, builtins twin, patched, inputs .npz) for every pair, built once into bench/.cache."""
    os.makedirs(TWINS, exist_ok=True)
    missing = [n for n in MODELS if not os.path.exists(os.path.join(TWINS, n + ".builtins.tflite"))]
    if missing:
        subprocess.run([sys.executable, os.path.join(ROOT, "fixtures", "make_e2e.py"), "--builtins", TWINS,
                        "--out", os.path.join(TWINS, "select"), "--only", *missing], check=True)
    pairs = []
    for n in MODELS:
        patched = os.path.join(TWINS, n + ".patched.tflite")
        _patch(os.path.join(E2E, n + ".tflite"), patched)
        pairs.append((f"e2e {n}", os.path.join(TWINS, n + ".builtins.tflite"), patched, os.path.join(E2E, n + ".npz")))
    variants = ["select_f32", "builtins_f32", "select_f16", "builtins_f16"]
    missing = [a for a in ARCHS if not all(os.path.exists(os.path.join(ZOO, f"{a}.{v}.tflite")) for v in variants)]
    if missing:
        subprocess.run([sys.executable, os.path.join(ROOT, "fixtures", "make_zoo.py"), "--out", ZOO, "--no-check",
                        "--only", *missing, "--variants", *variants], check=True, stdout=subprocess.DEVNULL)
    for a in ARCHS:
        for precision in ("f32", "f16"):
            patched = os.path.join(ZOO, f"{a}.patched_{precision}.tflite")
            _patch(os.path.join(ZOO, f"{a}.select_{precision}.tflite"), patched)
            pairs.append((f"{a} {precision}", os.path.join(ZOO, f"{a}.builtins_{precision}.tflite"), patched,
                          os.path.join(ZOO, f"{a}.npz")))
    return pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--invokes", type=int, default=50)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    pairs = prepare()
    load = os.getloadavg()[0]
    lines = [f"| model | TFLITE_BUILTINS ms | fbtool patch ms | ratio | target <= {TARGET}x |", "|---|---:|---:|---:|---|"]
    for name, builtins_path, patched_path, npz in pairs:
        out = subprocess.run([sys.executable, "-c", TIMER, builtins_path, patched_path, str(args.rounds),
                              str(args.invokes), npz], check=True, capture_output=True, text=True)
        builtins, patched = json.loads(out.stdout)
        ratio = patched / builtins
        lines.append(f"| {name} | {builtins * 1e3:.4f} | {patched * 1e3:.4f} | {ratio:.3f} | "
                     f"{'yes' if ratio <= TARGET else '**NO**'} |")
        print(lines[-1], file=sys.stderr)
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        put_section("latency", "Latency of patched models", "bench/latency_bench.py",
                    f"{machine(argparse.Namespace(tf_python=None), load)}; one thread, {args.rounds} rounds of "
                    f"{args.invokes} invokes of each model, alternating", table)

if __name__ == "__main__":
    main()
