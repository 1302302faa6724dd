"""The command line's rough edges, each as a user meets it: bad option values, output paths that
cannot or must not be written, file modes, several models at once. Every error is one line on
stderr and exit 2, never an internal error."""
import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT
from fbtool import open_model
from helpers import run_fbtool

MLP = FIXTURES / "e2e" / "mlp.tflite"
CNN = FIXTURES / "select_only_cnn.tflite"


def one_error_line(r, *parts):
    assert r.returncode == 2, (r.stdout[-500:], r.stderr)
    assert r.stderr.startswith("fbtool: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "internal error" not in r.stderr
    for part in parts:
        assert part in r.stderr, r.stderr


@pytest.mark.parametrize("target", ["missing/out.x", "folder", "file.txt/out.x"])
def test_outputs_that_cannot_be_written(tmp_path, target):
    """A missing folder, a folder as the output, a file used as a folder: `cannot write PATH: reason`,
    blamed on the output (not the model), for every command that writes."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / target
    commands = [("patch", MLP, "-o", out, "--no-verify-run"), ("graph", CNN, "-o", out),
                ("report", FIXTURES / "mixed_flex.tflite", "-o", out), ("audit", FIXTURES / "e2e", "-o", out),
                ("audit", FIXTURES / "e2e", "--write-baseline", out)]
    for args in commands:
        r = run_fbtool(*args)
        one_error_line(r, f"cannot write {out}:")
        assert r.stdout == "", (args, r.stdout)       # the audit table is not printed before the error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_special_files_are_streamed_not_replaced(tmp_path):
    """-o /dev/null stays a device and -o through a symlink writes its target (like cp): before, both
    were replaced by a regular file (as root, /dev/null itself)."""
    r = run_fbtool("patch", CNN, "-o", "/dev/null", "--no-verify-run")
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    target = tmp_path / "real.html"
    target.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    r = run_fbtool("report", FIXTURES / "mixed_flex.tflite", "-o", link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and target.read_text().startswith("<!DOCTYPE html>")
    r = run_fbtool("graph", FIXTURES / "mixed_flex.tflite", "-o", "/dev/stdout")
    assert r.returncode == 0 and r.stdout.startswith("digraph")
    dangling = tmp_path / "dangling.dot"
    dangling.symlink_to(tmp_path / "nowhere" / "x.dot")
    one_error_line(run_fbtool("graph", CNN, "-o", dangling), "symlink to", "does not exist")


def test_file_modes(tmp_path):
    """A new output gets the mode open() would give it (0666 less the umask); --in-place keeps the
    model's own mode (it used to become 0600)."""
    env_umask = "import os, runpy, sys; os.umask(0o022); sys.argv = ['fbtool'] + sys.argv[1:]; runpy.run_module('fbtool', run_name='__main__')"
    out = tmp_path / "p.tflite"
    r = subprocess.run([sys.executable, "-c", env_umask, "patch", str(CNN), "-o", str(out), "--no-verify-run"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    model = tmp_path / "m.tflite"
    model.write_bytes(CNN.read_bytes())
    model.chmod(0o640)
    r = run_fbtool("patch", model, "--in-place", "--no-verify-run")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(model.stat().st_mode) == 0o640
    link = tmp_path / "link.tflite"
    other = tmp_path / "other.tflite"
    other.write_bytes(CNN.read_bytes())
    link.symlink_to(other)
    assert run_fbtool("patch", link, "--in-place", "--no-verify-run").returncode == 0
    assert link.is_symlink()
    with open_model(other) as m:                              # the target was patched through the link
        assert {op.opcode.kind for op in m.subgraphs[0].operators} == {"builtin"}


def test_patch_option_conflicts(tmp_path):
    one_error_line(run_fbtool("patch", MLP, "--in-place", "-o", tmp_path / "x.tflite"), "not both")
    copy = tmp_path / "m.tflite"
    copy.write_bytes(MLP.read_bytes())
    one_error_line(run_fbtool("patch", copy, "-o", copy), "use --in-place")
    for option in ("--only", "--skip"):
        r = run_fbtool("patch", CNN, option, "Bogus,Conv2D", "--dry-run")
        one_error_line(r, f"{option}: no rule named Bogus", "fuse_bias_activation", "Conv2D")
    assert list(tmp_path.iterdir()) == [copy]


@pytest.mark.parametrize("args,words", [
    (("audit", "fixtures/e2e", "--jobs", "-3"), "--jobs: must be a whole number of at least 1"),
    (("audit", "fixtures/e2e", "--jobs", "0"), "--jobs: must be a whole number of at least 1"),
    (("audit", "fixtures/e2e", "--target-runtime", "abc"), "target_runtime must be a release"),
    (("verify", str(MLP), str(MLP), "--runs", "0"), "--runs 0 leaves nothing to run"),
    (("verify", str(MLP), str(MLP), "--rtol", "-1"), "--rtol: must be a finite number of at least 0"),
    (("verify", str(MLP), str(MLP), "--atol", "nan"), "--atol: must be a finite number of at least 0"),
    (("verify", str(MLP), str(MLP), "--shape", "nope=1,2"), "has no input 'nope'"),
    (("verify", str(MLP), str(MLP), "--shape", "features=1,2,3"), "does not fit the input's shape"),
    (("graph", str(CNN), "--subgraph", "-1"), "--subgraph: must be a whole number of at least 0"),
])
def test_option_values_are_checked(args, words):
    one_error_line(run_fbtool(*args, env={"PWD": str(ROOT)}), words)


def test_verify_unrelated_models_is_an_error_in_json_too():
    for extra in ((), ("--json",)):
        r = run_fbtool("verify", MLP, FIXTURES / "mixed_flex.tflite", *extra, timeout=300)
        assert r.returncode == 2, r
        assert "do not have the same signatures and inputs" in r.stderr
        if extra:
            assert json.loads(r.stdout)["ok"] is False


def test_inspect_and_ops_take_many_models_and_go_on_past_a_bad_one(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(MLP.read_bytes()[:100])
    r = run_fbtool("inspect", "--json", MLP, bad, FIXTURES / "mixed_flex.tflite")
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["file"]["path"] for d in docs] == [str(MLP), str(FIXTURES / "mixed_flex.tflite")]
    one_error_line(r, str(bad))
    r = run_fbtool("ops", "--json", bad, FIXTURES / "mixed_flex.tflite")
    one_error_line(r, str(bad))
    doc = json.loads(r.stdout)
    assert [f["tf_op"] for f in doc["flex"]] == ["MatrixDeterminant", "Roll"] and doc["errors"][0]["model"] == str(bad)


def test_a_killed_patch_leaves_nothing_a_later_run_keeps(tmp_path):
    """A run killed mid-write leaves `.NAME.PID.fbtool-tmp`; the next write to NAME removes it."""
    stale = tmp_path / ".out.tflite.999999999.fbtool-tmp"    # no such process
    stale.write_bytes(b"partial")
    live = tmp_path / f".out.tflite.{os.getpid()}.fbtool-tmp"   # a running process's: left alone
    live.write_bytes(b"in progress")
    r = run_fbtool("patch", MLP, "-o", tmp_path / "out.tflite", "--no-verify-run")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.tflite", live.name])


def test_verify_sizes_dynamic_dimensions_and_says_when_a_model_cannot_run(tmp_path):
    """An audio model whose length is dynamic but must hold whole 160-sample frames: random inputs
    take the stored size (1), which it cannot run on, so verify says so (exit 2, naming the model and
    the input shape) until --shape gives one it can; then both runs agree (exit 0)."""
    tf = pytest.importorskip("tensorflow")
    fn = tf.function(lambda audio: {"energy": tf.reduce_sum(tf.reshape(audio, [-1, 100, 160]) ** 2, axis=-1)},
                     input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio")])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    path = tmp_path / "frames.tflite"
    path.write_bytes(converter.convert())
    for extra in ((), ("--json",)):
        r = run_fbtool("verify", path, path, *extra, timeout=300)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert f"{path}: the original model cannot run" in r.stderr and "audio[1, 1]" in r.stderr
    r = run_fbtool("verify", path, path, "--shape", "audio=2,16000", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    (out,) = json.loads(r.stdout)["outputs"].values()
    assert out["ok"] and out["max_ref"] > 0
