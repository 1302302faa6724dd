"""The README's examples run as written, from a clone, and print what the README shows.

Every fenced block is taken in order and run in one scratch folder beside links to `fixtures` (so
`-o patched.tflite` lands there, and a later example can read it):
- `$ COMMAND` lines, with the output printed under them: run in a shell, stdout and stderr
  compared line by line; a line `...` stands for any lines, and numbers in scientific notation
  (verification errors, which depend on the CPU's float rounding) match any such number;
- ```sh blocks without `$`: each line run, exit 0 expected (the install and test commands are
  what CI itself runs, so they are skipped);
- ```toml blocks: a policy, loaded by fbtool;
- ```python blocks: run.
"""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.M | re.S)
FLOAT = re.compile(r"-?\d+(\.\d+)?e[-+]\d+")
SKIP = ("pip install", "pytest")


def blocks():
    for m in FENCE.finditer(README):
        indent = len(m.group(1))
        text = "\n".join(line[indent:] for line in m.group(3).splitlines())
        yield m.group(2), text, README[:m.start()].count("\n") + 1


def sessions(text):
    """(command, expected output lines) for each `$ ` line of a block."""
    out = []
    for line in text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


def matches(expected: list[str], got: list[str]) -> bool:
    """Line by line; `...` (alone on a line, any indent) matches any run of lines."""
    expected = [FLOAT.sub("<f>", e.rstrip()) for e in expected]
    got = [FLOAT.sub("<f>", g.rstrip()) for g in got]
    while expected and expected[-1] == "":
        expected.pop()
    while got and got[-1] == "":
        got.pop()
    memo = {}

    def match(i, j):
        if (i, j) not in memo:
            if i == len(expected):
                memo[i, j] = j == len(got)
            elif expected[i].strip() == "...":
                memo[i, j] = any(match(i + 1, k) for k in range(j, len(got) + 1))
            else:
                memo[i, j] = j < len(got) and expected[i] == got[j] and match(i + 1, j + 1)
        return memo[i, j]
    return match(0, 0)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    for name in ("fixtures", "README.md"):     # what a clone has, read-only; outputs land beside them
        (folder / name).symlink_to(ROOT / name)
    shim = folder / ".bin"
    shim.mkdir()
    (shim / "fbtool").write_text(f"#!/bin/sh\nexec {sys.executable} -m fbtool \"$@\"\n")
    (shim / "fbtool").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "NO_COLOR": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return folder, env


def run(command, cwd, env):
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


EXAMPLES = [(lang, text, line) for lang, text, line in blocks()]


def test_the_readme_has_examples():
    assert sum(bool(sessions(t)) for lang, t, _ in EXAMPLES if lang == "") >= 10


def test_every_readme_example_runs_as_written(scratch):
    folder, env = scratch
    failures = []
    for lang, text, line in EXAMPLES:
        if lang == "" and sessions(text):
            for command, expected in sessions(text):
                r = run(command, folder, env)
                got = (r.stdout + r.stderr).splitlines()
                if not matches(expected, got):
                    failures.append(f"README.md:{line}: $ {command}\n--- README\n" + "\n".join(expected)
                                    + "\n--- got\n" + "\n".join(got))
        elif lang == "sh":
            for command in text.splitlines():
                if command.strip() and not command.lstrip().startswith(SKIP + ("#",)):
                    r = run(command, folder, env)
                    if r.returncode != 0:
                        failures.append(f"README.md:{line}: {command}: exit {r.returncode}\n{r.stderr[-1000:]}")
        elif lang == "toml":
            (folder / "policy.toml").write_text(text)
            r = run("fbtool audit --policy policy.toml --write-baseline fbtool-baseline.json fixtures/e2e "
                    "&& fbtool audit --policy policy.toml fixtures/e2e", folder, env)
            if r.returncode not in (0, 1) or "error" in r.stderr:
                failures.append(f"README.md:{line}: the policy does not load: {r.stderr}")
        elif lang == "python":
            r = subprocess.run([sys.executable, "-c", text], cwd=folder, env=env, capture_output=True, text=True,
                               timeout=600)
            if r.returncode != 0:
                failures.append(f"README.md:{line}: python block fails:\n{r.stderr[-2000:]}")
    assert not failures, "\n\n".join(failures)


def test_the_matcher_is_strict():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["x 2.98e-08 ok"], ["x 1.5e-07 ok"])
    assert not matches(["a", "b"], ["a", "c"])
    assert not matches(["a"], ["a", "extra"])
    assert not matches(["max abs 2.98e-08"], ["max abs 0.5"])


def test_shipdemo_is_what_its_script_builds():
    """fixtures/shipdemo (the README's audit example) is made by fixtures/make_shipdemo.py, byte for byte."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_shipdemo", ROOT / "fixtures" / "make_shipdemo.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    built = make.build()
    assert sorted(built) == sorted(p.name for p in (ROOT / "fixtures" / "shipdemo").iterdir())
    assert all((ROOT / "fixtures" / "shipdemo" / name).read_bytes() == data for name, data in built.items())
