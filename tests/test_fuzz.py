"""Seeded random corruption of real fixtures, each run through the real CLI in its own process
under a time and memory limit: every case ends in exit 0 with a schema-valid report, or exit 2
with one `fbtool: error:` line. No tracebacks, no signals, no timeouts."""
import json
import random
import resource
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest

from conftest import FIXTURES
import helpers

SEED = 20261129
CASES = 400
SOURCES = ["builtin_cnn", "select_only_cnn", "while_loop", "quant_int8", "buffer_offset", "with_metadata",
           "sparse", "string_flex", "multi_signature"]
BOUNDARY_WORDS = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFF, 0x7FFFFFF0]
MEMORY_LIMIT = 1 << 30
TIME_LIMIT = 20


def corrupt(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    b = bytearray(data)
    mode = rng.choice(["flip", "word", "truncate", "scatter"])
    if mode == "flip":
        for _ in range(rng.randint(1, 4)):
            p = rng.randrange(len(b))
            b[p] ^= 1 << rng.randrange(8)
    elif mode == "word":
        p = rng.randrange(len(b) - 4) & ~3
        b[p:p + 4] = rng.choice(BOUNDARY_WORDS + [len(b), len(b) - 4]).to_bytes(4, "little")
    elif mode == "truncate":
        b = b[:rng.randrange(len(b))]
    else:
        for _ in range(16):
            b[rng.randrange(len(b))] = rng.randrange(256)
    return mode, bytes(b)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def corpus(root, sources, count, seed):
    """``count`` corrupted copies of the fixtures named in ``sources``: [(index, path)]."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        src = rng.choice(sources)
        mode, data = corrupt((FIXTURES / f"{src}.tflite").read_bytes(), rng)
        path = root / f"{i:03d}_{src.replace('/', '_')}_{mode}.tflite"
        path.write_bytes(data)
        out.append((i, path))
    return out


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return [(path, ["--no-verify"] if i % 4 == 3 else [])
            for i, path in corpus(tmp_path_factory.mktemp("fuzz"), SOURCES, CASES, SEED)]


def _run(case, command=("inspect", "--json")):
    import os
    import subprocess
    import sys
    path, extra = case
    env = {**os.environ, "PYTHONPATH": str(helpers.ROOT)}
    try:
        r = subprocess.run([sys.executable, "-m", "fbtool", *command, *extra, str(path)],
                           capture_output=True, text=True, timeout=TIME_LIMIT, env=env, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        return path, "timeout", None
    return path, r.returncode, r


def test_corrupted_models_fail_cleanly(cases, inspect_schema):
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_run, cases))
    outcomes = {"ok": 0, "error": 0}
    for path, code, r in results:
        assert code in (0, 2), f"{path.name}: exit {code}\n{r.stderr if r else ''}"
        if code == 0:
            jsonschema.validate(json.loads(r.stdout), inspect_schema)
            assert r.stderr == ""
            outcomes["ok"] += 1
        else:
            lines = r.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"fbtool: error: {path}: "), f"{path.name}: {r.stderr}"
            assert "internal error" not in lines[0] and "Traceback" not in r.stderr, f"{path.name}: {r.stderr}"
            outcomes["error"] += 1
    # Both outcomes must be exercised, or the corruption is not probing anything.
    assert outcomes["ok"] > CASES // 20 and outcomes["error"] > CASES // 4, outcomes


PATCH_SOURCES = ["select_only_cnn", "e2e/mobilenet_style", "e2e/transformer_block", "e2e/resnet_style", "mixed_flex"]
PATCH_CASES = 160


def test_corrupted_models_patch_cleanly(tmp_path, patch_schema):
    """Patching never trips over what it reads: exit 0 with a valid plan and a verifiable output file,
    or exit 2 with one line and no output; no internal error."""
    from fbtool import open_model

    cases = [(path, ["-o", str(path.with_suffix(".out")), "--json", "--no-verify-run"])
             for _, path in corpus(tmp_path, PATCH_SOURCES, PATCH_CASES, SEED + 1)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: _run(c, ("patch",)), cases))
    outcomes = {"ok": 0, "error": 0}
    for (path, _), (_, code, r) in zip(cases, results):
        out = path.with_suffix(".out")
        assert code in (0, 2), f"{path.name}: exit {code}\n{r.stderr if r else ''}"
        if code == 0:
            doc = json.loads(r.stdout)
            jsonschema.validate(doc, patch_schema)
            with open_model(out):
                pass
            outcomes["ok"] += 1
        else:
            lines = r.stderr.splitlines()
            assert len(lines) == 1 and "internal error" not in lines[0], f"{path.name}: {r.stderr}"
            assert not out.exists()
            outcomes["error"] += 1
    assert outcomes["ok"] > PATCH_CASES // 20 and outcomes["error"] > PATCH_CASES // 10, outcomes
