"""Names chosen by whoever made a model, archive or log never reach a terminal, a CI log, XML or DOT
raw: ESC sequences (colour, OSC window title, cursor moves), BEL, CR and newlines that forge lines,
NUL, and bidi overrides that show text reversed. Each command's output holds no control character
but the newlines between its own lines (and no colour, since stdout is not a terminal)."""
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile

import pytest

from conftest import FIXTURES
from helpers import mutated, run_fbtool

EVIL = "x\x1b]0;pwned\x07\x1b[2J\rFAKE LINE\nfbtool: ok\x00\u202eevil\u2066"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def evil_model(tmp_path_factory):
    def change(m):
        sg = m.subgraphs[0]
        for t in sg.tensors:
            t.name = (EVIL + t.name.decode()).encode()
        m.signatureDefs[0].signatureKey = EVIL.encode()
        m.signatureDefs[0].inputs[0].name = EVIL.encode()
        m.metadata[0].name = EVIL.encode()
        m.description = EVIL.encode()
        sg.name = EVIL.encode()
    return mutated(tmp_path_factory.mktemp("evil"), "mixed_flex.tflite", change, "evil.tflite")


@pytest.fixture(scope="module")
def evil_custom_op(tmp_path_factory):
    def change(m):
        for code in m.operatorCodes:
            if code.customCode:
                code.customCode = EVIL.encode()
    return mutated(tmp_path_factory.mktemp("evil"), "custom_op.tflite", change, "evil_op.tflite")


def clean(text: str) -> bool:
    return not CONTROL.search(text) and "FAKE LINE" not in text.split("\n")[0:0] and \
        all(not line.startswith("FAKE LINE") and not line.startswith("fbtool: ok") for line in text.split("\n"))


@pytest.mark.parametrize("command", [("inspect", "--ops", "--tensors"), ("flex",), ("ops",), ("patch", "--dry-run")])
def test_model_names_are_escaped_on_the_terminal(evil_model, command):
    r = run_fbtool(*command, evil_model)
    assert r.returncode == 0, r.stderr
    assert clean(r.stdout) and clean(r.stderr), r.stdout
    if command[0] == "inspect":
        assert "\\x1b]0;pwned\\x07" in r.stdout        # shown, escaped, not dropped


@pytest.mark.parametrize("command", [("inspect",), ("flex",), ("ops",), ("patch", "--dry-run"), ("audit",)])
def test_custom_codes_are_escaped_on_the_terminal(evil_custom_op, command):
    r = run_fbtool(*command, evil_custom_op)
    assert r.returncode == 0, r.stderr
    assert clean(r.stdout) and clean(r.stderr), r.stdout
    assert "\\x1b]0;pwned\\x07" in r.stdout


def test_diff_and_errors_are_escaped(evil_model, tmp_path):
    r = run_fbtool("diff", FIXTURES / "mixed_flex.tflite", evil_model)
    assert r.returncode == 1 and clean(r.stdout), r.stdout
    bad = tmp_path / f"bad{EVIL.replace(chr(0), '').replace('/', '')}.tflite"
    bad.write_bytes(b"\0" * 64)
    r = run_fbtool("inspect", bad)
    assert r.returncode == 2 and clean(r.stderr) and r.stderr.count("\n") == 1


def test_log_lines_are_escaped(tmp_path):
    log = tmp_path / "x.log"
    one_line = re.sub("[\0\r\n]", "", EVIL)      # a log line cannot hold these; the rest it can
    log.write_text(f"loc(\"{one_line}\"): error: 'tf.EvilOp' op is neither a custom op nor a flex op\n"
                   "note: Error code: ERROR_NEEDS_FLEX_OPS\n")
    r = run_fbtool("log", log)
    assert r.returncode == 0 and "problem op" in r.stdout and clean(r.stdout), r.stdout


def test_archive_member_names_are_escaped(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"assets/{EVIL.replace(chr(0), '')}.tflite", (FIXTURES / "mixed_flex.tflite").read_bytes())
    (tmp_path / "app.apk").write_bytes(buf.getvalue())
    r = run_fbtool("audit", tmp_path / "app.apk", "--deny", "flex")
    assert r.returncode == 1 and clean(r.stdout), r.stdout


def test_graphml_is_valid_xml_and_dot_parses(evil_model, tmp_path):
    r = run_fbtool("graph", evil_model, "--format", "graphml")
    assert r.returncode == 0
    root = ET.fromstring(r.stdout.encode())          # raised on the C0 characters before
    labels = [d.text for d in root.iter() if d.text and "pwned" in d.text]
    assert labels and all("\\x1b" in t for t in labels)
    r = run_fbtool("graph", evil_model, "-o", tmp_path / "g.dot")
    assert r.returncode == 0
    if shutil.which("dot"):                           # a NUL made this a syntax error
        p = subprocess.run(["dot", "-Tsvg", str(tmp_path / "g.dot")], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        ET.fromstring(p.stdout.encode())              # and the SVG Graphviz writes from it is XML
