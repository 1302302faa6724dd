"""Whole-process benchmark of `fbtool audit` over a tree of 10,000 small models.

    python bench/audit_bench.py [--repeat N] [--models N] [--fbtool CMD] [--write-readme]

The tree (bench/.cache/audit_tree, rebuilt when its manifest does not match) holds copies of a few
fixtures from fixtures/ in nested folders (some named .bin: models are found by content), a text
file per folder that discovery must open and skip, and a few zips, one of them with a nested .aar.
Each measurement is one fresh process, `fbtool audit TREE --format json -o /dev/null`, with all
cores (the default) and with `--jobs 1`; both run round-robin after one untimed warm-up round that
also checks every model was reported. Wall time is taken around the process; peak RSS is GNU
time's %M, which for a process tree is the largest single process (the main process or one
worker), so the sum over the tree (main + workers) is also sampled from /proc every 0.1 s. CPU
time is GNU time's user + system time, workers included (the main process waits for them): unlike
wall time it barely moves with other load on the machine, and the difference between the two rows
is what running in worker processes costs. Medians are reported, models/s = models / median wall.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(HERE, ".cache")
TREE = os.path.join(CACHE, "audit_tree")
MANIFEST = os.path.join(TREE, "MANIFEST.json")
README = os.path.join(HERE, "README.md")
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
BEGIN, END = "<!-- audit:begin -->", "<!-- audit:end -->"
# As bench/run.py: every Python child reads cached bytecode after the warm-up round.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = os.path.join(CACHE, "pycache")
# small models of several kinds: builtin, Flex, custom op, int8, a CNN, an LSTM (1.7 to 10 KB)
FIXTURES = ["builtin_mlp", "mixed_flex", "custom_op", "quant_int8", "builtin_cnn", "lstm"]
ZIPS = 5                  # archives, 10 models each: 5 members + a nested .aar of 5
PER_FOLDER = 10           # models per leaf folder
TARGET = 200              # models/s with all cores


def build_tree(models: int) -> dict:
    """Write the tree (or keep it if its manifest matches); return the manifest."""
    blobs = {f: open(os.path.join(ROOT, "fixtures", f + ".tflite"), "rb").read() for f in FIXTURES}
    want = {"models": models, "fixtures": FIXTURES, "zips": ZIPS, "per_folder": PER_FOLDER,
            "sizes": {f: len(b) for f, b in blobs.items()}}
    try:
        with open(MANIFEST) as f:
            if json.load(f) == want:
                return want
    except (OSError, ValueError):
        pass
    print(f"building {TREE} ({models} models)", file=sys.stderr)
    shutil.rmtree(TREE, ignore_errors=True)
    plain = models - ZIPS * 10
    n = 0
    for i in range(plain):
        leaf = os.path.join(TREE, f"app{i // (PER_FOLDER * 10):03d}", f"part{i // PER_FOLDER % 10}")
        if i % PER_FOLDER == 0:
            os.makedirs(leaf)
            with open(os.path.join(leaf, "README.txt"), "w") as f:
                f.write("not a model\n")
        name = FIXTURES[i % len(FIXTURES)]
        ext = ".bin" if i % 7 == 0 else ".tflite"
        with open(os.path.join(leaf, f"{name}_{i}{ext}"), "wb") as f:
            f.write(blobs[name])
        n += 1
    os.makedirs(os.path.join(TREE, "dist"))
    for z in range(ZIPS):
        aar_buf = tempfile.SpooledTemporaryFile()
        with zipfile.ZipFile(aar_buf, "w", zipfile.ZIP_DEFLATED) as aar:
            for k in range(5):
                aar.writestr(f"assets/m{k}.tflite", blobs[FIXTURES[k % len(FIXTURES)]])
        aar_buf.seek(0)
        with zipfile.ZipFile(os.path.join(TREE, "dist", f"app{z}.apk"), "w", zipfile.ZIP_DEFLATED) as apk:
            apk.writestr("classes.dex", b"dex\n035\0" + bytes(1000))
            for k in range(5):
                apk.writestr(f"assets/model{k}.tflite", blobs[FIXTURES[(k + z) % len(FIXTURES)]])
            apk.writestr("libs/vision.aar", aar_buf.read())
        n += 10
    assert n == models
    with open(MANIFEST, "w") as f:
        json.dump(want, f)
    return want


def _tree_rss(root: int) -> int:
    """Sum of VmRSS (KiB) over ``root`` and its descendants, from /proc."""
    parent, rss = {}, {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        parent[int(pid)] = int(fields["PPid"])
        rss[int(pid)] = int(fields.get("VmRSS", "0 kB").split()[0])
    total = 0
    for pid in rss:
        p = pid
        while p and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += rss[pid]
    return total


def measure(argv):
    """Run argv once; return (wall s, GNU time peak RSS MB, sampled peak tree RSS MB, CPU s)."""
    with tempfile.NamedTemporaryFile("r") as rss, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([TIME, "-f", "%M %U %S", "-o", rss.name] + argv,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, env=ENV)
        peak, done = [0], threading.Event()

        def sample():
            while not done.wait(0.1):
                peak[0] = max(peak[0], _tree_rss(proc.pid))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        if code not in (0, 1):   # 1: findings the policy denies; anything else is a failure
            err.seek(0)
            sys.exit(f"exit {code}: {shlex.join(argv)}\n{err.read().decode(errors='replace')[-3000:]}")
        kib, user, system = rss.read().split()[-3:]
        return wall, int(kib) * 1024 / 1e6, peak[0] * 1024 / 1e6, float(user) + float(system)


def cases(args):
    fbtool = shlex.split(args.fbtool)
    tree = os.path.relpath(TREE, ROOT)
    yield "python -c pass", [sys.executable, "-c", "pass"]
    yield "all cores", fbtool + ["audit", tree, "--format", "json", "-o", "/dev/null"]
    yield "--jobs 1", fbtool + ["audit", tree, "--format", "json", "-o", "/dev/null", "--jobs", "1"]


def check_count(args, models):
    """One untimed run to a file: every model reported exactly once."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as out:
        argv = shlex.split(args.fbtool) + ["audit", os.path.relpath(TREE, ROOT), "--format", "json", "-o", out.name]
        proc = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True)
        records = [json.loads(line) for line in out]
    if proc.returncode not in (0, 1) or len(records) != models or len({r["location"] for r in records}) != models:
        sys.exit(f"audit reported {len(records)} records for {models} models (exit {proc.returncode}): "
                 f"{proc.stderr[-2000:]}")
    return sum(r["violation"] for r in records), sum(bool(r["findings"]) for r in records)


def run(args):
    todo = list(cases(args))
    samples = {label: [] for label, _ in todo}
    for rep in range(args.repeat + 1):
        print(f"round {rep}/{args.repeat}" + (" (warm-up)" if rep == 0 else ""), file=sys.stderr)
        for label, argv in todo:
            result = measure(argv)
            if rep:
                samples[label].append(result)
    return {label: tuple(statistics.median(s[i] for s in v) for i in range(4)) + ([round(s[0], 2) for s in v],)
            for label, v in samples.items()}, {label: argv for label, argv in todo}


def report(res, argvs, models):
    lines = ["| command | median wall s (runs) | models/s | CPU s (user+sys) | GNU time peak RSS MB "
             "(largest process) | sampled peak RSS MB (whole tree) |", "|---|---:|---:|---:|---:|---:|"]
    for label, (wall, rss, tree, cpu, runs) in res.items():
        rate = f"{models / wall:,.0f}" if label != "python -c pass" else "-"
        argv = argvs[label]
        cmd = shlex.join(["python"] + argv[1:]) if argv[0] == sys.executable else shlex.join(argv)
        lines.append(f"| `{cmd}` | {wall:.2f} ({', '.join(map(str, runs))}) | {rate} | {cpu:.1f} | {rss:.0f} "
                     f"| {f'{tree:.0f}' if tree else '- (ended before a sample)'} |")
    rate = models / res["all cores"][0]
    lines += ["", "| check | value | target | met |", "|---|---:|---|---|",
              f"| models/s, all cores ({os.cpu_count()}) | {rate:,.0f} | >= {TARGET} | "
              f"{'yes' if rate >= TARGET else '**NO**'} |",
              f"| speed-up all cores / `--jobs 1` | {res['--jobs 1'][0] / res['all cores'][0]:.2f}x | - | - |",
              f"| CPU all cores / `--jobs 1` | {res['all cores'][3] / res['--jobs 1'][3]:.2f}x | - | - |"]
    return "\n".join(lines)


def machine(load, after):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()} ({platform.platform()}), "
            f"1-min load average {load:.2f} before the run and {after:.2f} after it")


def write_readme(table, args, load, after, manifest, counts):
    command = shlex.join(["python", "bench/audit_bench.py"] + sys.argv[1:])
    sizes = ", ".join(f"{f} {s / 1e3:.1f} KB" for f, s in manifest["sizes"].items())
    section = (f"{BEGIN}\nMeasured {datetime.date.today()} on {machine(load, after)}; {args.repeat} runs of each command "
               f"after a warm-up round.\n\n```\n{command}\n```\n\n"
               f"Tree: {manifest['models']:,} models ({manifest['models'] - ZIPS * 10:,} files in "
               f"{(manifest['models'] - ZIPS * 10 + PER_FOLDER - 1) // PER_FOLDER:,} folders, each with a README.txt, "
               f"plus {ZIPS} zips of 10 models, 5 of them in a nested .aar), copies of: {sizes}. "
               f"{counts[1]:,} models have findings, {counts[0]:,} violate the default policy.\n\n{table}\n{END}")
    text = open(README).read()
    if BEGIN in text:
        start, end = text.index(BEGIN), text.index(END) + len(END)
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n## `fbtool audit` throughput\n\n" \
            "`audit_bench.py` times `fbtool audit` over a tree of 10,000 small models (see its docstring).\n\n" \
            + section + "\n"
    with open(README, "w") as f:
        f.write(text)
    print(f"updated {README}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each command (default 3)")
    ap.add_argument("--models", type=int, default=10_000, help="models in the tree (default 10,000)")
    ap.add_argument("--fbtool", default=shlex.join([sys.executable, "-m", "fbtool"]),
                    help="command that runs fbtool (default: this Python -m fbtool, run from the repo root)")
    ap.add_argument("--write-readme", action="store_true", help="put the results into bench/README.md")
    args = ap.parse_args()
    if not os.access(TIME, os.X_OK):
        sys.exit(f"{TIME} (GNU time) is needed for peak RSS: apt-get install time")
    manifest = build_tree(args.models)
    counts = check_count(args, args.models)
    load = os.getloadavg()[0]  # other work on the machine skews every number: worth recording
    res, argvs = run(args)
    after = os.getloadavg()[0]
    table = report(res, argvs, args.models)
    print(table)
    print(f"1-min load average {load:.2f} before, {after:.2f} after", file=sys.stderr)
    if args.write_readme:
        write_readme(table, args, load, after, manifest, counts)


if __name__ == "__main__":
    main()
