"""Linear-time scanners for the messages a regular expression would parse in quadratic time.

Python's ``re`` backtracks: ``loc\\(.*\\)`` tried at every ``loc(`` of a line, ``\\S+\\.py`` at every
``/``, ``(.*?)\\) -> \\((.*?)\\)`` against many arrows, a lookahead per comma: a 40 KB line took
seconds and a 1 MB one minutes. These find a literal anchor with ``str.find`` and read outward
from it, so every character of a line is looked at a bounded number of times. They return plain
dicts with the fields the handlers in :mod:`.parser` read.
"""
from __future__ import annotations

import re
from typing import Iterator

OP_NAME = re.compile(r"(tf|tfl)\.(\w{1,256})")
QUOTED_OP = re.compile(r'"(tf|tfl)\.(\w{1,256})"')
PY_TOKEN = re.compile(r"\S*\.py:\d+:\d+|<unknown>:\d+")
LINE_COL = re.compile(r":(\d{1,9}):(\d{1,9})")
WORD = re.compile(r"\w{1,256}")
OPS_CHARS = re.compile(r"\s*([\w, ]*)")
NEITHER = "' op is neither a custom op nor a flex op"
NOT_ENABLED = "' op is a TFLite builtin op but builtin emission is not enabled"


def closing(text: str, i: int, open_: str, close: str) -> int:
    """The index of the bracket closing the one at ``i`` (quoted strings skipped), or -1."""
    depth, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _quote_end(text, i)
            if i < 0:
                return -1
        elif c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _quote_end(text: str, i: int) -> int:
    """The index of the quote closing the one at ``i`` (backslash escapes honoured), or -1."""
    n = len(text)
    i += 1
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    return -1


def quoted_strings(text: str) -> Iterator[tuple[str, str | None, str | None]]:
    """(content, line, column) for each ``"..."`` of a location, with its ``:LINE:COL`` if any."""
    i = text.find('"')
    while i >= 0:
        end = _quote_end(text, i)
        if end < 0:
            return
        m = LINE_COL.match(text, end + 1)
        yield text[i + 1:end], (m[1] if m else None), (m[2] if m else None)
        i = text.find('"', (m.end() if m else end + 1))


def op_errors(line: str, anchor: str = NEITHER, dialects=("tf", "tfl")) -> Iterator[dict]:
    """Each ``LOC: error: LOC2: 'tf.Op' <anchor>`` of a line: op, dialect and the two locations."""
    start = 0
    while (a := line.find(anchor, start)) >= 0:
        q = line.rfind("'", start, a)
        m = OP_NAME.fullmatch(line, q + 1, a) if q >= 0 else None
        e = line.rfind("error:", start, q) if m and m[1] in dialects else -1
        if e >= 0:
            between = line[e + 6:q].strip().rstrip(":").strip()
            yield {"dialect": m[1], "op": m[2], "loc": _location_before(line[start:e]),
                   "loc2": between if between.startswith("loc(") and between.endswith(")") else None}
        start = a + len(anchor)


def _location_before(text: str) -> str | None:
    """The location printed before ``error:``: a ``loc(...)`` chain, ``file.py:L:C`` or ``<unknown>:L``."""
    text = text.rstrip().rstrip(":").rstrip()
    first = text.find("loc(")
    if first >= 0 and text.endswith(")"):
        return text[first:]
    token = text[text.rfind(" ") + 1:]
    return token if PY_TOKEN.fullmatch(token) else None


def py_frames(text: str) -> Iterator[tuple[str, str]]:
    """(file, line) of each ``/path/file.py:LINE:COL`` or ``file.py:LINE:COL`` in plain text."""
    start = 0
    while (p := text.find(".py:", start)) >= 0:
        m = LINE_COL.match(text, p + 3)
        begin = p
        while begin > start and text[begin - 1] not in " \t:\"'":
            begin -= 1
        if begin >= 2 and text[begin - 1] == ":" and text[begin - 2].isalpha() and text[begin:begin + 1] in "/\\" \
                and (begin == 2 or text[begin - 3] in " \t\"'"):
            begin -= 2      # a Windows drive letter
        name = _absolute_tail(text[begin:p + 3])
        if m and _is_path(name):
            yield name, m[1]
        start = p + 4


def _is_path(name: str) -> bool:
    return name[:1] in "/\\" or name[1:3] in (":\\", ":/") or WORD.fullmatch(name[:-3].replace("-", "_")) is not None


def _absolute_tail(name: str) -> str:
    """Text glued in front of a path ("FlatBuffer./a/b.py") is not part of it."""
    slash = min((i for i in (name.find("/"), name.find("\\")) if i >= 0), default=-1)
    return name[slash:] if slash > 0 and name[slash - 1] != ":" else name


def current_op(line: str) -> Iterator[dict]:
    """``see current operation: %0 = "tf.Op"(%a) {attrs} : (operands) -> results``."""
    a = line.find("see current operation: ")
    m = QUOTED_OP.search(line, a) if a >= 0 else None
    if m is None:
        return
    i = _skip(line, m.end())
    if i < len(line) and line[i] == "(":
        i = closing(line, i, "(", ")")
        if i < 0:
            return
        i = _skip(line, i + 1)
    attrs = None
    if i < len(line) and line[i] == "{":
        end = closing(line, i, "{", "}")
        if end < 0:
            return
        attrs, i = line[i:end + 1], _skip(line, end + 1)
    typed = _signature_after(line, i, colon=True)
    if typed is not None:
        yield {"dialect": m[1], "op": m[2], "attrs": attrs, "operands": typed[0], "results": typed[1]}


def _skip(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    return i


def _signature_after(text: str, i: int, colon: bool) -> tuple[str, str] | None:
    """``: (operands) -> results`` from ``i``: operands inside the parentheses, results with one
    pair of parentheses taken off."""
    if colon:
        if i >= len(text) or text[i] != ":":
            return None
        i = _skip(text, i + 1)
    if i >= len(text) or text[i] != "(":
        return None
    end = closing(text, i, "(", ")")
    if end < 0:
        return None
    operands = text[i + 1:end]
    j = _skip(text, end + 1)
    if not text.startswith("->", j):
        return None
    results = text[j + 2:].strip()
    if results.startswith("(") and results.endswith(")"):
        results = results[1:-1]
    return operands, results


def detail_line(line: str) -> dict | None:
    """``\\ttf.Op(operand types) -> (result types) : {attrs}`` or ``\\ttf.Op {attrs}``, else None."""
    if not line[:1].isspace():
        return None
    i = _skip(line, 0)
    if not line.startswith("tf.", i):
        return None
    m = WORD.match(line, i + 3)
    if m is None:
        return None
    op, i, operands, results = m[0], m.end(), None, None
    if i < len(line) and line[i] == "(":
        end = closing(line, i, "(", ")")
        j = _skip(line, end + 1) if end >= 0 else -1
        if j < 0 or not line.startswith("->", j):
            return None
        k = _skip(line, j + 2)
        close = closing(line, k, "(", ")") if line[k:k + 1] == "(" else -1
        if close < 0:
            return None
        operands, results, i = line[i + 1:end], line[k + 1:close], close + 1
    rest = line[i:].strip()
    if rest.startswith(":"):
        rest = rest[1:].strip()
    if rest and not (rest.startswith("{") and rest.endswith("}")):
        return None
    return {"op": op, "operands": operands, "results": results, "attrs": rest or None}


def mlir_block(header: str):
    """A finder for TF 2.2-2.3's ``<header> ... flag): A, B`` (the op list may be empty)."""
    def find(line: str) -> Iterator[dict]:
        start, flag = 0, -1
        while (a := line.find(header, start)) >= 0:
            if flag < a:
                flag = line.find("flag):", a)
                if flag < 0:
                    return
            yield {"ops": OPS_CHARS.match(line, flag + 6)[1]}
            start = a + len(header)
    return find


def split_types(text: str) -> list[str]:
    """``tensor<2x3xf32>, tensor<?x!tf_type.string>`` split at top-level commas (not inside ``<>``)."""
    out, depth, begin = [], 0, 0
    for i, c in enumerate(text):
        if c == "<":
            depth += 1
        elif c == ">" and depth:
            depth -= 1
        elif c == "," and depth == 0:
            out.append(text[begin:i])
            begin = i + 1
    out.append(text[begin:])
    return [t.strip() for t in out if t.strip()]


def attributes(text: str) -> dict[str, str]:
    """``{T = f32, shape = [1, 2], device = ""}`` as {name: value text}, ``device`` left out."""
    out, i, n = {}, 1 if text.startswith("{") else 0, len(text)
    while i < n:
        m = WORD.search(text, i)
        if m is None:
            break
        j = _skip(text, m.end())
        if j >= n or text[j] != "=":
            i = m.end()
            continue
        j = _skip(text, j + 1)
        if j < n and text[j] == '"':
            end = _quote_end(text, j)
            value, i = (text[j:] if end < 0 else text[j:end + 1]), (n if end < 0 else end + 1)
        elif j < n and text[j] == "[":
            end = text.find("]", j)
            value, i = (text[j:] if end < 0 else text[j:end + 1]), (n if end < 0 else end + 1)
        else:
            end = j
            while end < n and text[end] not in ",}":
                end += 1
            value, i = text[j:end], end
        if m[0] != "device":
            out[m[0]] = value.split(" : ")[0].strip().strip('"')
        i = text.find(",", i)
        if i < 0:
            break
    return out
