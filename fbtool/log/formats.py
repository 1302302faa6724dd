"""The messages fbtool recognises, declared in one place.

Each is a finder searched anywhere in a line (messages are often glued together:
``...ops_selectNode number 0 (FlexConv2D) failed to prepare.``) and the kind of event it
is: a regular expression's ``finditer`` where no backtracking can make it quadratic, else
a linear scanner of :mod:`.scan` (every finder is linear in the line: tests/test_log_hostile.py). Templates as printed by TF 1.x TOCO, the MLIR converter of TF
2.2-2.21 (tensorflow/compiler/mlir/lite: flatbuffer_export.cc, tf_tfl_passes,
python/convert.py) and the TFLite runtime (interpreter_builder.cc, subgraph.cc,
delegates/flex); see shared notes and fixtures/logs for real samples.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable, NamedTuple

from . import scan


class Format(NamedTuple):
    kind: str
    find: Callable[[str], Iterable]     # line -> matches (re.Match or dict), each read by name


def _f(kind: str, regex: str) -> Format:
    return Format(kind, re.compile(regex).finditer)


# glog and absl prefixes in front of converter messages
PREFIXES = [
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+\] "),
    re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+\] "),
    re.compile(r"^(INFO|WARNING|ERROR):\s*"),
]

FORMATS = [
    # one op that could not be legalized; the location precedes ": error:"
    # (TF 2.18's exception text puts "error:" before the loc(...) instead of after it)
    Format("op_error", scan.op_errors),
    _f("error_code", r"Error code: (?P<code>ERROR_[A-Z_]{1,64})"),
    Format("current_op", scan.current_op),
    _f("select_list", r"TF Select ops: (?P<ops>.+)"),
    _f("custom_list", r"Custom ops: (?P<ops>.+)"),
    _f("flex_list", r"Flex ops: (?P<ops>.+)"),
    _f("details", r"^\s*Details:\s*$"),
    _f("toco_custom", r"operators for which you will need custom implementations(?: and are not recognized by TensorFlow)?: "
                      r"(?P<ops>.+)"),
    # TF 2.2-2.3: a header, then tab-indented "tf.Op {attrs}" lines, or (older) "flag): A,B." on one line
    Format("mlir_flex_block", scan.mlir_block("Ops that can be supported by the flex runtime")),
    Format("mlir_custom_block", scan.mlir_block("Ops that need custom implementation")),
    Format("builtin_disabled", lambda line: scan.op_errors(line, scan.NOT_ENABLED, ("tfl",))),
    _f("not_legalized", r"failed to legalize operation '(?P<dialect>tf|tfl)\.(?P<op>\w+)'"),
    _f("tensorlist_lowering", r"Lowering tensor list ops is failed"),
    _f("summary_table", r"Summary on the non-converted ops"),
    _f("runtime_flex", r"Select TensorFlow op\(s\), included in the given model, is\(are\) not supported by this "
                       r"interpreter|Regular TensorFlow ops are not supported by this interpreter"),
    _f("unresolved_custom", r"Encountered unresolved custom op: (?P<op>[^\s.]+)"),
    _f("node_failed", r"Node number (?P<index>\d+) \((?P<op>[^)]+)\) failed to (?:prepare|invoke)"),
    _f("missing_builtin", r"Didn't find op for builtin opcode '(?P<op>\w+)' version '(?P<version>\d+)'"),
]

# "tf.Op(tensor<?x3xf32>, ...) -> (tensor<?xf32>) : {T = f32, device = ""}" (TF 2.5+) or "tf.Op {attrs}" (2.2-2.4)
DETAIL_LINE = scan.detail_line
# TF 2.15's table: "- tf.MatrixDeterminant:    1 occurrences  (f32: 1)"
SUMMARY_LINE = re.compile(r"^\s*-\s+(?P<dialect>tf|tfl)\.(?P<op>\w+):\s+(?P<count>\d+) occurrences")

# TF printed some messages without a line break between them; these start a new line.
GLUED = re.compile(r"(?=Ops that need custom implementation|Node number \d+ \()")

# Every format above contains one of these: lines without any are skipped after one search.
TRIGGER = re.compile(r"error|Error code|ops:|Details:|custom implementations|Ops that|builtin emission|failed to "
                     r"legalize|Lowering tensor list|Summary on the|Select TensorFlow op|Regular TensorFlow|unresolved "
                     r"custom op|failed to (?:prepare|invoke)|Didn't find op|see current operation")
