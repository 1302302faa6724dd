"""`fbtool audit` on hostile trees, archives and policies (all generated here, nothing large committed).

Each case was a failure of an adversarial run: a member read whole into memory until MemoryError
ended the whole audit, archive bombs that took minutes, a FIFO that hung it, a deep tree that
overflowed the recursion, an encrypted text file called a malformed model, a policy that read
/dev/zero, 100,000 overrides that cost 9 s a model, and option values that were accepted silently
or were internal errors. Now a budget per file, only regular files, an iterative walk: a finding
for the one file, and the audit goes on."""
import json
import os
import struct
import time
import zipfile

import pytest

from conftest import FIXTURES
from fbtool.audit import discover
from fbtool.audit.discover import models_in_file
from helpers import fbtool_peak_rss, run_fbtool

MODEL = (FIXTURES / "builtin_mlp.tflite").read_bytes()
FAKE_HEAD = b"\x1c\x00\x00\x00TFL3"          # starts like a model: read whole


def audit_json(*args, timeout=120):
    r = run_fbtool("audit", "--format", "json", *args, timeout=timeout)
    return r, [json.loads(line) for line in r.stdout.splitlines()]


def _zeros_member(z: zipfile.ZipFile, name: str, size: int, head: bytes = FAKE_HEAD) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with z.open(info, "w", force_zip64=True) as w:
        w.write(head)
        block = bytes(1 << 20)
        left = size - len(head)
        while left > 0:
            w.write(block[:min(left, len(block))])
            left -= len(block)


def _zip(path, members: dict, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression, compresslevel=1) as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_a_gigabyte_member_that_starts_like_a_model_costs_its_budget_not_the_audit(tmp_path):
    """A 1 MB zip holding a 1 GB deflated member that starts like a model: read in chunks, spilled to
    an unlinked temp file past 64 MB, and stopped at 100x the file's size plus 256 MB. The other model
    beside it is still audited, and the process stays small."""
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        _zeros_member(z, "assets/model.tflite", 1 << 30)
    assert (tmp_path / "bomb.zip").stat().st_size < 8 << 20
    (tmp_path / "good.tflite").write_bytes(MODEL)
    r, peak = fbtool_peak_rss(["audit", "--format", "json", "--jobs", "1", tmp_path], timeout=300)
    records = {rec["location"].rsplit("/", 1)[-1]: rec for rec in map(json.loads, r.stdout.splitlines())}
    assert records["good.tflite"]["ok"]
    assert "expands past 100 times its size" in records["bomb.zip"]["error"]
    assert [f["rule"] for f in records["bomb.zip"]["findings"]] == ["unreadable"]
    assert peak < 300 * 1024, "peak RSS (KB)"


def test_overlapping_entries_are_stopped_by_the_budget(tmp_path, monkeypatch):
    """One 64 MB member listed 2,000 times in the central directory (a 64 KB file that expands to
    128 GB): the budget (here 100x + 1 MB) stops it after a few entries, in well under a second."""
    path = tmp_path / "overlap.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        _zeros_member(z, "m.tflite", 64 << 20)
    raw = path.read_bytes()
    eocd = raw.rindex(b"PK\x05\x06")
    cd_offset, = struct.unpack_from("<I", raw, eocd + 16)
    entry = raw[cd_offset:eocd]
    if b"PK\x06\x06" in entry:           # zip64 end records follow the central directory entry
        entry = entry[:entry.index(b"PK\x06\x06")]
    body = raw[:cd_offset] + entry * 2000
    tail = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 2000, 2000, len(entry) * 2000, cd_offset, 0)
    path.write_bytes(body + tail)
    monkeypatch.setattr(discover, "BASE_BYTES", 1 << 20)
    start = time.perf_counter()
    found = list(models_in_file(str(path)))
    assert time.perf_counter() - start < 10
    assert found[-1].kind == "unreadable" and "expands past" in found[-1].error
    assert len(found) < 20


def test_nested_archives_share_one_budget(tmp_path, monkeypatch):
    """42.zip's shape: archives of archives whose leaves start like models; the budget is the outer
    file's, however deep the nesting goes."""
    leaf = tmp_path / "leaf.zip"
    with zipfile.ZipFile(leaf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        _zeros_member(z, "m.tflite", 8 << 20)
    level = leaf.read_bytes()
    for depth in range(3):
        nxt = tmp_path / f"l{depth}.zip"
        _zip(nxt, {f"{i}.zip": level for i in range(8)}, zipfile.ZIP_STORED)
        level = nxt.read_bytes()
    monkeypatch.setattr(discover, "BASE_BYTES", 4 << 20)
    found = list(models_in_file(str(tmp_path / "l2.zip")))
    assert found[-1].kind == "unreadable" and "expands past" in found[-1].error


def test_special_files_and_deep_trees(tmp_path):
    """A FIFO named like a model hung the audit; a symlink to a device was opened; 1,500 nested
    folders overflowed os.walk's recursion and lost every record."""
    os.mkfifo(tmp_path / "model.tflite")
    (tmp_path / "zero.tflite").symlink_to("/dev/zero")
    deep = str(tmp_path)
    for _ in range(1500):          # pathlib and os.makedirs recurse per level themselves
        deep += "/d"
        os.mkdir(deep)
    with open(deep + "/m.tflite", "wb") as f:
        f.write(MODEL)
    r, records = audit_json(tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [rec["location"].count("/d") for rec in records] == [1500] and records[0]["ok"]
    r, records = audit_json(tmp_path / "model.tflite", timeout=60)      # named explicitly: said what it is
    assert r.returncode == 0 and "a FIFO, not a regular file" in records[0]["error"]
    os.remove(deep + "/m.tflite")
    while deep != str(tmp_path):       # pytest's own clean-up recurses per level: take it down here
        os.rmdir(deep)
        deep = os.path.dirname(deep)


def test_an_encrypted_member_is_unreadable_not_a_malformed_model(tmp_path):
    path = tmp_path / "docs.zip"
    _zip(path, {"readme.txt": b"hello", "m.tflite": MODEL})
    raw = bytearray(path.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):      # set the 'encrypted' flag on readme.txt's headers
        at = raw.index(sig)
        flag = at + (6 if sig == b"PK\x03\x04" else 8)
        raw[flag] |= 1
    path.write_bytes(bytes(raw))
    r, records = audit_json(path)
    assert r.returncode == 0, r.stdout
    by = {rec["location"].split("!")[-1]: rec for rec in records}
    assert by["m.tflite"]["ok"] and [f["rule"] for f in by["readme.txt"]["findings"]] == ["unreadable"]


@pytest.mark.parametrize("policy,words", [
    ('baseline = "/dev/zero"', "not a regular file"),
    ("baseline = 5", "baseline must be a file name"),
    ("override = 5", "override must be a list"),
    ("max_size_mb = nan", "max_size_mb must be a positive number"),
    ('target_runtime = ["2.14"]', "target_runtime must be a release"),
    ('target_runtime = "banana"', "target_runtime must be a release"),
    ('deny = "flex"', "deny must be a list of strings"),
])
def test_bad_policy_values_are_usage_errors(tmp_path, policy, words):
    (tmp_path / "p.toml").write_text(policy + "\n")
    r = run_fbtool("audit", FIXTURES / "builtin_mlp.tflite", "--policy", tmp_path / "p.toml")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
    assert "internal error" not in r.stderr and r.stdout == ""


def test_a_policy_that_is_not_utf8_or_huge(tmp_path):
    (tmp_path / "p.toml").write_bytes(b"deny = [\"\xff\"]\n")
    r = run_fbtool("audit", FIXTURES / "builtin_mlp.tflite", "--policy", tmp_path / "p.toml")
    assert r.returncode == 2 and "not UTF-8" in r.stderr
    with open(tmp_path / "big.toml", "wb") as f:
        f.truncate(80 << 20)
    r = run_fbtool("audit", FIXTURES / "builtin_mlp.tflite", "--policy", tmp_path / "big.toml")
    assert r.returncode == 2 and "more than the 64 MB" in r.stderr


def test_a_hundred_thousand_overrides_cost_little(tmp_path):
    """fnmatch's cache holds 32,768 patterns: 100,000 overrides were recompiled for every model."""
    lines = [f'[[override]]\npath = "nowhere/{i}/*"\ndeny = []\n' for i in range(100_000)]
    (tmp_path / "p.toml").write_text("deny = [\"flex\"]\n" + "".join(lines))
    folder = tmp_path / "models"
    folder.mkdir()
    for i in range(20):
        (folder / f"m{i}.tflite").write_bytes(MODEL)
    start = time.perf_counter()
    r = run_fbtool("audit", folder, "--policy", tmp_path / "p.toml", "--jobs", "1", timeout=300)
    assert r.returncode == 0, r.stderr
    assert time.perf_counter() - start < 60      # was 9 s a model: 3 minutes for these 20


def test_resource_limits_in_one_model_are_a_finding(tmp_path, monkeypatch):
    """MemoryError while reading one model: that model's record says so; the others are audited."""
    from fbtool.audit import record
    from fbtool.audit.policy import load_policy
    from fbtool.audit.run import audit_paths

    (tmp_path / "a.tflite").write_bytes(MODEL)
    (tmp_path / "b.tflite").write_bytes(MODEL)
    real = record._describe
    calls = []

    def exhausted(model, target):
        calls.append(model.path)
        if len(calls) == 1:
            raise MemoryError
        return real(model, target)
    monkeypatch.setattr(record, "_describe", exhausted)
    records = list(audit_paths([str(tmp_path)], load_policy(None), jobs=1))
    assert [r["ok"] for r in records] == [False, True]
    assert "out of resources" in records[0]["error"] and records[0]["violation"]
