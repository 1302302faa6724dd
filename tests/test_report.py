"""`fbtool report`: a page for every Flex fixture and a before/after page for a patched model,
opened in headless Chromium (Debian's, driven by Playwright without downloading a browser):
no console errors, no network request, and the counts, Flex rows and graph nodes that
`fbtool inspect --json` and `fbtool flex --json` say should be there. The pages and their
screenshots are left in test-artifacts/report/.

Without Chromium or Playwright the browser tests skip, unless FBTOOL_REQUIRE_BROWSER=1 (CI sets
it in .ci/run): then they fail.
"""
import json
import os
import re
import shutil
import time

import networkx as nx
import pytest

from conftest import FIXTURES, ROOT
from fbtool.cli.patch_cmd import flex_runtime_here
from fbtool.graph import find_islands
from fbtool.report import changes as ch
from fbtool.report.drawing import COLLAPSE_OVER, draw, dot_program
from helpers import mutated, run_fbtool

ARTIFACTS = ROOT / "test-artifacts" / "report"
REQUIRED = os.environ.get("FBTOOL_REQUIRE_BROWSER") == "1"
FLEX_FIXTURES = ["mixed_flex", "select_only_cnn", "string_flex", "tensorlist_flex", "cast_bf16", "custom_op"]


def unavailable(reason):
    if REQUIRED:
        pytest.fail(f"{reason} (FBTOOL_REQUIRE_BROWSER=1: CI must run this test)")
    pytest.skip(reason)


def needs_dot():
    if dot_program() is None:
        unavailable("Graphviz `dot` is not installed (Debian: apt-get install graphviz)")


def json_of(*args):
    r = run_fbtool(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def report(out, *args, env=None):
    r = run_fbtool("report", *args, "-o", out, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[test]')")
    executable = os.environ.get("FBTOOL_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if executable is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable)   # never `playwright install`: Debian's build
        except Error as e:
            unavailable(f"Chromium {executable} does not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


class Page:
    """A report opened in the browser, with everything that went wrong while loading it."""

    def __init__(self, browser, path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.on("request", lambda r: r.url.startswith(("file:", "data:", "about:")) or
                     self.problems.append(f"network request: {r.url}"))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")

    def count(self, selector):
        return self.page.locator(selector).count()

    def number(self, selector):
        return int(self.page.locator(selector).inner_text())

    def attrs(self, selector, *names):
        return self.page.eval_on_selector_all(
            selector, "(els, names) => els.map(e => names.map(n => e.getAttribute(n)))", list(names))

    def screenshot(self, path):
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000


@pytest.fixture(scope="module")
def pages(artifacts):
    return {name: report(artifacts / f"{name}.html", FIXTURES / f"{name}.tflite") for name in FLEX_FIXTURES}


@pytest.fixture(scope="module")
def before_after(artifacts):
    """select_only_cnn patched by fbtool patch, verified when this Python has the Flex delegate."""
    from fbtool.patch.rewrite import patch_model

    patched = artifacts / "select_only_cnn.patched.tflite"
    doc = patch_model(FIXTURES / "select_only_cnn.tflite", patched)
    verify = ["--verify"] if flex_runtime_here() else []
    page = report(artifacts / "select_only_cnn.before_after.html", FIXTURES / "select_only_cnn.tflite",
                  "--patched", patched, *verify)
    return page, patched, doc, bool(verify)


def test_pages_are_self_contained(pages, before_after):
    for path in [*pages.values(), before_after[0]]:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("<!DOCTYPE html>")
        assert re.search(r'http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;;', text)
        assert not re.search(r"""\b(?:src|href)\s*=\s*(?!["']?#)""", text), path   # only in-page links
        assert not re.search(r"\b(?:https?:)?//(?!www\.w3\.org/2000/svg)[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), path


@pytest.mark.parametrize("name", FLEX_FIXTURES)
def test_report_in_browser(name, pages, browser, artifacts):
    needs_dot()
    inspect = json_of("inspect", "--json", FIXTURES / f"{name}.tflite")
    flex = json_of("flex", "--json", FIXTURES / f"{name}.tflite")
    p = Page(browser, pages[name])
    assert p.problems == []
    for key in ("total", "builtin", "flex", "custom"):
        assert p.number(f'[data-count="{key}"][data-model="original"]') == inspect["op_counts"][key], key
    for key in ("islands", "partitions"):
        assert p.number(f'[data-count="{key}"][data-model="original"]') == flex["summary"][key], key
    assert p.count("table.histogram tr[data-opcode]") == len(inspect["op_histogram"])
    rows = p.attrs("tr.flex-op", "data-subgraph", "data-index", "data-kind", "data-tf-op")
    assert rows == [[str(o["subgraph"]), str(o["index"]), o["kind"], o["tf_op"]] for o in flex["ops"]]
    for sg in inspect["subgraphs"]:
        fig = f'figure.graph[data-model="original"][data-subgraph="{sg["index"]}"]'
        assert p.count(f'{fig}[data-drawn="true"]') == 1
        assert p.count(f"{fig} svg g.node.op") == len(sg["operators"])
        kinds = {o["index"]: o["kind"] for o in sg["operators"]}
        for kind in ("flex", "custom", "builtin"):
            drawn = {int(n.removeprefix("op")) for (n,) in p.attrs(f"{fig} svg g.node.op.{kind}", "data-node")}
            assert drawn == {i for i, k in kinds.items() if k == kind}, kind
        islands = [i for i in flex["islands"] if i["subgraph"] == sg["index"]]
        assert p.count(f"{fig} svg g.cluster.island") == len(islands)
    if flex["ops"]:   # a row click finds its op in the drawing
        first = flex["ops"][0]
        p.page.locator("tr.flex-op").first.click()
        assert p.count(f'#o{first["subgraph"]}-op{first["index"]}.hit') == 1
    fig = p.page.locator("figure.graph[data-drawn=true]").first
    before = fig.locator("svg").get_attribute("viewBox")
    fig.locator('button[data-act="in"]').click()
    assert fig.locator("svg").get_attribute("viewBox") != before
    assert p.problems == []
    p.screenshot(artifacts / f"{name}.png")


def test_before_after_in_browser(before_after, browser, artifacts):
    needs_dot()
    page, patched, doc, verified = before_after
    original = FIXTURES / "select_only_cnn.tflite"
    a, b = json_of("inspect", "--json", original), json_of("inspect", "--json", patched)
    p = Page(browser, page)
    assert p.problems == []
    for side, doc_ in (("original", a), ("patched", b)):
        for key in ("total", "builtin", "flex", "custom"):
            assert p.number(f'[data-count="{key}"][data-model="{side}"]') == doc_["op_counts"][key], (side, key)
        assert p.number(f'[data-count="size"][data-model="{side}"]') == doc_["file"]["size"]
    statuses = dict(((int(s), int(i)), st) for s, i, st in p.attrs("tr.change[data-index]", "data-subgraph",
                                                                   "data-index", "data-status"))
    flex_ops = {(0, o["index"]) for o in a["subgraphs"][0]["operators"] if o["kind"] == "flex"}
    assert set(statuses) == flex_ops                   # every Flex op of the original has its fate
    gone = {(r["subgraph"], r["index"]) for r in doc["rewrites"]}
    assert all(statuses[k] in (ch.REWRITTEN, ch.FOLDED, ch.REMOVED) for k in gone)
    assert all(statuses[(k["subgraph"], k["index"])] == ch.STILL_FLEX for k in doc["kept"])
    assert sum(st == ch.STILL_FLEX for st in statuses.values()) == b["op_counts"]["flex"]
    after = 'figure.graph[data-model="patched"]'
    assert p.count(f"{after} svg g.node.op") == b["op_counts"]["total"]
    builtins = sum(o["kind"] == "builtin" for o in b["subgraphs"][0]["operators"])
    assert p.count(f"{after} svg g.node.op.rewritten") == builtins     # all were Flex ops
    if verified:
        assert p.count('[data-verification="ok"]') == 1
        assert p.count('tr[data-output][data-ok="true"]') == p.count("tr[data-output]") >= 1
    else:
        assert p.count('[data-verification="not-run"]') == 1
    p.screenshot(artifacts / "select_only_cnn.before_after.png")


def test_unpatched_ops_say_why_they_stay(tmp_path):
    """A model with nothing to rewrite comes out the same: every Flex op stays, with the patcher's reason."""
    from fbtool.patch.rewrite import patch_model

    patch_model(FIXTURES / "string_flex.tflite", tmp_path / "same.tflite")
    page = report(tmp_path / "r.html", FIXTURES / "string_flex.tflite", "--patched", tmp_path / "same.tflite")
    text = page.read_text()
    assert text.count('data-status="still flex"') == 4
    assert "no TFLite builtin for StringLength" in text and "no TFLite builtin for AsString" in text
    assert 'data-verification="not-run"' in text


def test_focus_on_a_subgraph_or_an_island(tmp_path):
    needs_dot()
    text = report(tmp_path / "sg.html", FIXTURES / "tensorlist_flex.tflite", "--subgraph", "2").read_text()
    assert re.findall(r'<figure class="graph"[^>]*data-subgraph="(\d+)"', text) == ["2"]
    assert len(re.findall(r'class="node op ', text)) == 9
    text = report(tmp_path / "isl.html", FIXTURES / "mixed_flex.tflite", "--island", "1").read_text()
    assert re.findall(r'data-node="(op\d+)"', text) == ["op6"]          # FlexRoll alone, with its tensors
    assert len(re.findall(r'class="node tensor"', text)) == 2


def test_without_graphviz_the_page_lists_the_ops(tmp_path, browser):
    page = report(tmp_path / "nodot.html", FIXTURES / "string_flex.tflite", env={"PATH": ""})
    text = page.read_text()
    assert "Graphviz `dot` was not found" in text and "<svg" not in text
    p = Page(browser, page)
    assert p.problems == []
    assert p.count('figure.graph[data-drawn="false"] tr.op-row') == 7
    assert p.count('figure.graph[data-drawn="false"] tr.op-row[data-kind="flex"]') == 4


def test_untrusted_names_stay_text(tmp_path, browser):
    evil_op, evil_tensor = '<img src=x onerror="alert(1)">', "</script><script>alert(2)</script>"

    def change(m):
        m.operatorCodes[[c.customCode for c in m.operatorCodes].index(b"Erfinv")].customCode = evil_op.encode()
        m.subgraphs[0].tensors[7].name = evil_tensor.encode()

    model = mutated(tmp_path, "custom_op.tflite", change, name="evil.tflite")
    page = report(tmp_path / "evil.html", model)
    text = page.read_text()
    assert evil_op not in text and evil_tensor not in text
    if dot_program() is None and not REQUIRED:
        return
    p = Page(browser, page)
    assert p.problems == []                      # no alert, no request for "x"
    assert evil_op in p.page.locator("tr.flex-op").inner_text()
    assert p.count("img") == 0 and p.count("script") == 1


@pytest.mark.parametrize("bad", ["truncated", "bad_index"])
def test_bad_model_one_line_and_no_file(tmp_path, bad):
    if bad == "truncated":
        model = tmp_path / "cut.tflite"
        model.write_bytes((FIXTURES / "mixed_flex.tflite").read_bytes()[:2000])
    else:
        model = mutated(tmp_path, "mixed_flex.tflite", lambda m: m.subgraphs[0].operators[0].inputs.__setitem__(0, 999))
    out = tmp_path / "out" / "r.html"
    out.parent.mkdir()
    r = run_fbtool("report", model, "-o", out)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("fbtool: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert list(out.parent.iterdir()) == []


def test_refuses_to_overwrite_the_model(tmp_path):
    model = tmp_path / "m.tflite"
    shutil.copy(FIXTURES / "mixed_flex.tflite", model)
    r = run_fbtool("report", model, "-o", model)
    assert r.returncode == 2 and "refusing" in r.stderr
    assert model.read_bytes() == (FIXTURES / "mixed_flex.tflite").read_bytes()


def synthetic_graph(ops: int, island_every: int = 10, island_size: int = 3) -> nx.DiGraph:
    """A chain of ``ops`` ops shaped like fbtool.graph.build's graphs, with a Flex island every
    ``island_every`` ops and one input read by every tenth op (a fan-out)."""
    g = nx.DiGraph(index=0, name="main", inputs=[0, 1], outputs=[ops + 1])

    def tensor(j):
        g.add_node(("t", j), kind="tensor", index=j, name=f"t{j}", dtype="float32", shape=[1, 8], constant=False,
                   bytes=32)

    tensor(0)
    tensor(1)
    for i in range(ops):
        flex = i % island_every < island_size
        g.add_node(("op", i), kind="flex" if flex else "builtin", index=i, opcode="FlexRoll" if flex else "ADD",
                   version=1, calls=[])
        tensor(i + 2)
        g.add_edge(("t", i + 1), ("op", i), slot=0)
        if i % 10 == 5:
            g.add_edge(("t", 0), ("op", i), slot=1)
        g.add_edge(("op", i), ("t", i + 2), slot=0)
    g.graph["outputs"] = [ops + 1]
    return g


def test_a_few_hundred_ops_draw_in_seconds_and_islands_collapse():
    needs_dot()
    g = synthetic_graph(400)
    islands = find_islands(g)
    assert len(islands) == 40 and 400 > COLLAPSE_OVER
    start = time.monotonic()
    full = draw(g, islands, "o0", "all", collapse="never")
    small = draw(g, islands, "o0", "auto")
    assert time.monotonic() - start < 60
    assert full.svg.count('class="node op ') == 400 and full.svg.count('class="cluster island"') == 40
    assert small.collapsed == list(range(40))
    assert small.svg.count('class="node op ') == 400 - 40 * 3 and small.svg.count('class="node island"') == 40


def test_compare_matches_ops_by_output_tensors():
    """Conv2D+BiasAdd+Relu fused into CONV_2D, an Identity dropped, a dead op removed, an op added."""
    def op(i, opcode, kind, ins, outs, version=1):
        return {"index": i, "opcode": opcode, "kind": kind, "version": version, "inputs": ins, "outputs": outs}

    before = {"subgraphs": [{"index": 0, "operators": [
        op(0, "FlexConv2D", "flex", [0, 10], [1]), op(1, "FlexBiasAdd", "flex", [1, 11], [2]),
        op(2, "FlexRelu", "flex", [2], [3]), op(3, "FlexIdentity", "flex", [3], [4]),
        op(4, "ADD", "builtin", [4, 4], [5]), op(5, "FlexRoll", "flex", [5, 12], [6]),
        op(6, "TANH", "builtin", [0], [7])]}]}
    after = {"subgraphs": [{"index": 0, "operators": [
        op(0, "CONV_2D", "builtin", [0, 10, 11], [3], version=3), op(1, "ADD", "builtin", [3, 3], [5]),
        op(2, "FlexRoll", "flex", [5, 12], [6]), op(3, "SHAPE", "builtin", [6], [8])]}]}
    kept = ([], [{"subgraph": 0, "index": 2, "tf_op": "Roll", "reason": "no TFLite builtin for Roll"}])
    diff = ch.compare(before, after, kept)
    fate = {r["index"]: (r["status"], r["after"] and r["after"]["index"], r["group"]) for r in diff["rows"]}
    assert fate == {0: (ch.FOLDED, 0, [0, 1, 2]), 1: (ch.FOLDED, 0, [0, 1, 2]), 2: (ch.REWRITTEN, 0, [0, 1, 2]),
                    3: (ch.FOLDED, 1, [3, 4]), 4: (ch.CHANGED, 1, [3, 4]), 5: (ch.STILL_FLEX, 2, []),
                    6: (ch.REMOVED, None, [])}
    assert diff["rows"][5]["reason"] == "no TFLite builtin for Roll"
    assert diff["added"] == [{"subgraph": 0, "index": 3, "opcode": "SHAPE", "kind": "builtin", "version": 1}]
    assert ch.marks(diff, 0) == ({0: "rewritten", 1: "rewritten", 2: "rewritten", 3: "rewritten", 4: "rewritten"},
                                 {0: "rewritten", 1: "rewritten"})
