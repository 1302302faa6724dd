"""Models built to make fbtool slow or big: a million operators aliasing one table, forty thousand
unconnected Flex ops (as many Flex islands) for the report. Generated here, a few hundred KB each."""
import time

import flatbuffers
from ai_edge_litert import schema_py_generated as fb

from helpers import run_fbtool


def many_ops(n: int, shared: bool, flex: bool = True) -> bytes:
    """A model of ``n`` operators with no tensors: each its own (empty) table, or all one shared table."""
    b = flatbuffers.Builder(0)
    code = b.CreateString("FlexAddV2")
    ops = []
    for _ in range(1 if shared else n):
        fb.OperatorStart(b)
        fb.OperatorAddOpcodeIndex(b, 0)
        ops.append(fb.OperatorEnd(b))
    fb.SubGraphStartOperatorsVector(b, n)
    for i in reversed(range(n)):
        b.PrependUOffsetTRelative(ops[0 if shared else i])
    vec = b.EndVector()
    fb.SubGraphStart(b)
    fb.SubGraphAddOperators(b, vec)
    sg = fb.SubGraphEnd(b)
    fb.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(sg)
    sgs = b.EndVector()
    fb.OperatorCodeStart(b)
    if flex:
        fb.OperatorCodeAddBuiltinCode(b, 32)
        fb.OperatorCodeAddDeprecatedBuiltinCode(b, 32)
        fb.OperatorCodeAddCustomCode(b, code)
    oc = fb.OperatorCodeEnd(b)
    fb.ModelStartOperatorCodesVector(b, 1)
    b.PrependUOffsetTRelative(oc)
    ocs = b.EndVector()
    fb.BufferStart(b)
    empty = fb.BufferEnd(b)
    fb.ModelStartBuffersVector(b, 1)
    b.PrependUOffsetTRelative(empty)
    bufs = b.EndVector()
    fb.ModelStart(b)
    fb.ModelAddVersion(b, 3)
    fb.ModelAddSubgraphs(b, sgs)
    fb.ModelAddOperatorCodes(b, ocs)
    fb.ModelAddBuffers(b, bufs)
    b.Finish(fb.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_a_million_operators_aliasing_one_table_are_refused_at_once(tmp_path):
    """4 MB whose operators vector points 1M times at one empty table: within the old aliasing budget
    (2x the file), yet inspect took 14 s and 0.9 GB, report 28 s, 2 GB and 200 MB of HTML. A shared
    table now counts at least 64 bytes each time it is met (real models share a few hundred)."""
    path = tmp_path / "alias.tflite"
    path.write_bytes(many_ops(1_000_000, shared=True, flex=False))
    for command in ("inspect", "flex", "report"):
        start = time.perf_counter()
        r = run_fbtool(command, path, *(("-o", tmp_path / "r.html") if command == "report" else ()))
        assert r.returncode == 2 and "aliased offsets" in r.stderr, (command, r.stderr)
        assert time.perf_counter() - start < 10
    assert not (tmp_path / "r.html").exists()


def test_the_report_on_forty_thousand_flex_islands_is_linear_and_bounded(tmp_path):
    """40,000 unconnected Flex ops, each an island: the drawing code rebuilt a set of every node per
    island (58 s), and the page listed every op (23 MB). Now seconds, and tables stop at 2,000 rows."""
    path = tmp_path / "islands.tflite"
    path.write_bytes(many_ops(40_000, shared=False))
    out = tmp_path / "r.html"
    start = time.perf_counter()
    r = run_fbtool("report", path, "-o", out, timeout=300)
    assert r.returncode == 0, r.stderr
    assert time.perf_counter() - start < 30
    html = out.read_text()
    assert "and 38000 more rows" in html and out.stat().st_size < 5 << 20
