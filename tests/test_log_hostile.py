"""The log parser on hostile input: linear time on long lines built to make regular expressions
backtrack, memory bounded by a cap on distinct ops, and no exception on any text (hypothesis).

Each long-line case took seconds at 40 KB and minutes at 1 MB before the scanners of
fbtool/log/scan.py replaced the backtracking patterns; a quadratic parser cannot meet the bound
below, a linear one meets it a hundred times over."""
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

from fbtool.log import parse_lines, parse_log
from fbtool.log.parser import MAX_OPS
from helpers import fbtool_peak_rss

MB = 1 << 20
ANCHOR = " error: 'tf.Op' op is neither a custom op nor a flex op"
LINES = {   # what made each pattern of the old parser quadratic, 1 MB of it on one line
    "loc( repeated": "loc(" * (MB // 4) + ANCHOR,
    "nested callsites": "loc(callsite(" * (MB // 13) + ANCHOR,
    "'tf. and letters": "'tf." + "a" * MB + "' op is neither a custom op nor a flex op",
    "a long path": "/a" * (MB // 2) + ANCHOR,
    "arrows in Details": "Details:\n\ttf.A(" + ") -> (" * (MB // 6),
    "commas in Details": "Details:\n\ttf.A(" + "," * (MB // 2) + ") -> (" + "," * (MB // 2) + ")",
    "attributes": "Details:\n\ttf.A(tensor<f32>) -> (tensor<f32>) : {" + 'a = "' * (MB // 5),
    "current operation": 'see current operation: "tf.A"(' + ") -> (" * (MB // 6),
    "escaped quotes": 'loc("' + '\\"' * (MB // 2) + ANCHOR,
    "flex block header": "Ops that can be supported by the flex runtime" * (MB // 45),
    "TOCO list": "operators for which you will need custom implementations: " + "a " * (MB // 2),
}


@pytest.mark.parametrize("name", sorted(LINES))
def test_a_megabyte_line_is_parsed_in_linear_time(name):
    start = time.perf_counter()
    parse_log(LINES[name] + "\n")
    assert time.perf_counter() - start < 5, name     # quadratic: minutes; linear: well under a second


def test_many_distinct_ops_stay_within_bounded_memory():
    """100,000 made-up ops, each with its own location: the first MAX_OPS are reported, the rest
    counted; the finishing pass is no longer quadratic in the number of ops."""
    def lines():
        for i in range(100_000):
            yield f"loc(\"m/layer_{i}/Op@__inference_f_{i}\"): error: 'tf.MadeUp{i}' op is neither a custom op nor a flex op"
            yield "note: Error code: ERROR_NEEDS_CUSTOM_OPS"
    start = time.perf_counter()
    report = parse_lines(lines())
    assert len(report.ops) == MAX_OPS and report.dropped_ops == 100_000 - MAX_OPS
    assert time.perf_counter() - start < 60


def test_a_large_log_through_a_pipe_stays_small(tmp_path):
    """40 MB of distinct ops through stdin: the process stays under 150 MB (it was 1.3 GB at 100 MB)."""
    code = ("import sys\nfor i in range(300_000):\n"
            "    sys.stdout.write(f\"loc(\\\"m/l_{i}/Op@f_{i}\\\"): error: 'tf.X{i}' op is neither a custom op nor a flex op\\n\")")
    feeder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    r, peak = fbtool_peak_rss(["log", "--json", "-"], stdin=feeder.stdout, timeout=600)
    feeder.wait()
    assert '"ops_not_listed": ' in r.stdout
    assert peak < 150 * 1024, r.stderr[-300:]


PIECES = list("loc(callsite\"at):' tf.error-> {}=,[]<>\n\tOpDetails:0123.py/")


@given(st.lists(st.text(alphabet=st.sampled_from(PIECES)) | st.text(max_size=40), max_size=30))
@settings(max_examples=400, deadline=None)
def test_any_text_parses_without_an_exception(pieces):
    parse_log("".join(pieces))
