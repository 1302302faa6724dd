"""A streaming parser of converter and runtime logs: one pass, memory bounded by distinct ops."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import IO, Iterable

from ..reader.model import FLEX_PREFIX
from .formats import DETAIL_LINE, FORMATS, GLUED, PREFIXES, SUMMARY_LINE, TRIGGER
from .location import parse_location, signature
from .scan import attributes, split_types

MAX_LINE = 1 << 20          # longer lines are cut: a loc chain is long, not that long
MAX_LOCATIONS = 50          # per op; the count goes on
MAX_PLACES = 10_000         # distinct places remembered per op to count each once; past it, every place counts
MAX_OPS = 10_000            # distinct ops; a log naming more (100 MB of made-up names) keeps the first ones
_PREFIX_STARTS = frozenset("0123456789IWEF")
CATEGORY_OF_CODE = {"ERROR_NEEDS_FLEX_OPS": "needs_flex", "ERROR_NEEDS_CUSTOM_OPS": "needs_custom"}


@dataclass
class LogOp:
    name: str                       # TF op without "tf." (TFLite ops keep "tfl."), or the builtin name
    category: str                   # needs_flex | needs_custom | needs_newer_runtime | unsupported
    phase: str                      # converter_error | converter_warning | runtime
    count: int = 0                  # distinct places seen (at least 1)
    operand_types: list[str] = field(default_factory=list)
    result_types: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    locations: list[dict] = field(default_factory=list)
    version: int | None = None      # needs_newer_runtime: the builtin version asked for
    _seen: set = field(default_factory=set, repr=False)

    def add_location(self, loc: dict) -> None:
        sig = signature(loc)
        frames = {(f["file"], f["line"]) for f in loc["python"]}
        if sig in self._seen:
            return
        if len(self._seen) >= MAX_PLACES:
            self.count += 1
            return
        # The exception text repeats an op located in full on stderr with a bare file:line: one of
        # the chain's frames, or a library frame that says nothing more. Same place, not another one.
        if loc["node"] is None and self.locations and (
                all(f["library"] for f in loc["python"])
                or any(frames <= {(f["file"], f["line"]) for f in known["python"]} for known in self.locations)):
            return
        self._seen.add(sig)
        self.count += 1
        if len(self.locations) < MAX_LOCATIONS:
            self.locations.append(loc)


@dataclass
class LogReport:
    ops: list[LogOp]
    formats: list[str]              # which kinds of message were recognised
    lines: int
    dropped_ops: int = 0            # distinct ops past MAX_OPS, not reported


class _Parser:
    def __init__(self):
        self.ops: dict[tuple[str, str], LogOp] = {}
        self.by_name: dict[str, dict[str, LogOp]] = {}   # name -> category -> entry: no scan over all ops
        self.dropped: set[str] = set()
        self.overflow = 0
        self.formats: list[str] = []
        self.block: str | None = None       # details | mlir_flex | mlir_custom | summary
        self.block_category = "needs_flex"
        self.block_phase = "converter_error"
        self.last_error: LogOp | None = None
        self.runtime_flex = False
        self.summary: dict[str, int] = {}   # TF 2.15's table: instances of each op left unconverted

    def op(self, name: str, category: str, phase: str) -> LogOp:
        """The entry for (name, category). A per-op error starts "undetermined" until the list or
        error code that follows says whether the op needs Flex or a custom op. Past MAX_OPS distinct
        names, a new name gets a throwaway entry: memory stays bounded, the report says how many."""
        key = (name, category)
        entry = self.ops.get(key)
        if entry is None:
            entry = LogOp(name, category, phase)
            if name not in self.by_name and len(self.by_name) >= MAX_OPS:
                if len(self.dropped) < MAX_OPS:
                    self.dropped.add(name)
                else:
                    self.overflow += 1
                return entry
            self._put(entry)
        return entry

    def _put(self, entry: LogOp) -> None:
        self.ops[entry.name, entry.category] = entry
        self.by_name.setdefault(entry.name, {})[entry.category] = entry

    def _drop(self, entry: LogOp) -> None:
        del self.ops[entry.name, entry.category]
        del self.by_name[entry.name][entry.category]

    def seen(self, kind: str) -> None:
        if kind not in self.formats:
            self.formats.append(kind)

    def feed(self, line: str) -> None:
        parts = GLUED.split(line) if "Ops that" in line or "Node number" in line else [line]
        for part in parts:
            if part:
                self._feed(part)

    def _feed(self, line: str) -> None:
        if line[:1] in _PREFIX_STARTS:
            for prefix in PREFIXES:
                line = prefix.sub("", line, count=1)
        if self.block and self._block_line(line):
            return
        self.block = None
        if not TRIGGER.search(line):
            return
        for fmt in FORMATS:
            for m in fmt.find(line):
                self.seen(fmt.kind)
                getattr(self, "on_" + fmt.kind)(m)

    def _block_line(self, line: str) -> bool:
        if self.block == "summary":
            m = SUMMARY_LINE.match(line)
            if m:
                if m["dialect"] == "tf":
                    self.summary[m["op"]] = self.summary.get(m["op"], 0) + int(m["count"])
                return True
            return not line.strip() or line.lstrip().startswith(("*", "-", "("))
        m = DETAIL_LINE(line)
        if not m:
            return False
        entry = self.op(m["op"], self.block_category, self.block_phase)
        _signature(entry, m["operands"], m["results"], m["attrs"])
        if not entry.count:
            entry.count = 1
        return True

    # -- handlers, one per format kind --------------------------------------------------------
    def on_op_error(self, m):
        name = m["op"] if m["dialect"] == "tf" else f"tfl.{m['op']}"
        entry = self.op(name, "undetermined", "converter_error")
        loc = m["loc2"] or m["loc"]
        if loc and not loc.startswith("<unknown>"):
            entry.add_location(parse_location(loc))
        elif not entry.count:
            entry.count = 1
        self.last_error = entry

    def on_error_code(self, m):
        category = CATEGORY_OF_CODE.get(m["code"])
        last = self.last_error
        if last is not None and category and self.ops.get((last.name, last.category)) is last:
            self.last_error = self._recategorize(last, category)

    def on_current_op(self, m):
        name = m["op"] if m["dialect"] == "tf" else f"tfl.{m['op']}"
        for entry in list(self.by_name.get(name, {}).values()):
            _signature(entry, m["operands"], m["results"], m["attrs"])

    def _list(self, m, category, phase, strip_flex=False):
        for raw in m["ops"].split(","):
            name = raw.strip().rstrip(".")
            if strip_flex:
                name = name.removeprefix(FLEX_PREFIX)
            if name:
                entry = self.op(name, category, phase)
                pending = self.ops.get((name, "undetermined"))
                if pending is not None and pending is not entry:
                    self._recategorize(pending, category)
                elif not entry.count:
                    entry.count = 1
        self.block_category, self.block_phase = category, phase

    def on_select_list(self, m):
        self._list(m, "needs_flex", "converter_error")

    def on_custom_list(self, m):
        self._list(m, "needs_custom", "converter_error")

    def on_flex_list(self, m):
        self._list(m, "needs_flex", "converter_warning", strip_flex=True)

    def on_toco_custom(self, m):
        # TOCO called every non-builtin op "custom"; whether Flex could run it is the allowlist's call.
        self._list(m, "undetermined", "converter_error")

    def on_details(self, m):
        self.block = "details"

    def on_mlir_flex_block(self, m):
        self._mlir_block(m, "needs_flex")

    def on_mlir_custom_block(self, m):
        self._mlir_block(m, "needs_custom")

    def _mlir_block(self, m, category):
        if m["ops"].strip():
            self._list(m, category, "converter_error")
        self.block, self.block_category, self.block_phase = "details", category, "converter_error"

    def on_summary_table(self, m):
        self.block = "summary"

    def on_builtin_disabled(self, m):
        entry = self.op(f"tfl.{m['op']}", "unsupported", "converter_error")
        loc = m["loc2"] or m["loc"]
        if loc:
            entry.add_location(parse_location(loc))
        entry.count |= 1

    def on_not_legalized(self, m):
        name = m["op"] if m["dialect"] == "tf" else f"tfl.{m['op']}"
        self.op(name, "unsupported", "converter_error").count |= 1

    def on_tensorlist_lowering(self, m):
        pass  # recorded in formats; the ops involved come from their own messages

    def on_runtime_flex(self, m):
        self.runtime_flex = True

    def on_unresolved_custom(self, m):
        self.op(m["op"], "needs_custom", "runtime").count |= 1

    def on_node_failed(self, m):
        name = m["op"]
        if name.startswith(FLEX_PREFIX):
            self.op(name.removeprefix(FLEX_PREFIX), "needs_flex", "runtime").count |= 1
        elif (name, "needs_custom") not in self.ops and not name.isupper():
            self.op(name, "needs_custom", "runtime").count |= 1

    def on_missing_builtin(self, m):
        entry = self.op(m["op"], "needs_newer_runtime", "runtime")
        entry.version = max(entry.version or 0, int(m["version"]))
        entry.count |= 1

    def _recategorize(self, entry: LogOp, category: str) -> LogOp:
        """Move an entry to ``category``, merging it into one already there; return where it went."""
        if entry.category == category:
            return entry
        self._drop(entry)
        target = self.ops.get((entry.name, category))
        if target is None:
            entry.category = category
            self._put(entry)
            return entry
        for loc in entry.locations:
            target.add_location(loc)
        target.count = max(target.count, entry.count, 1)
        target.attrs = target.attrs or entry.attrs
        target.operand_types = target.operand_types or entry.operand_types
        target.result_types = target.result_types or entry.result_types
        return target

    def finish(self) -> list[LogOp]:
        # The table counts instances; on its own (nothing else recognised) it is the only report there is.
        if not self.ops:
            for name, count in self.summary.items():
                self.op(name, "undetermined", "converter_error").count = count
        for entry in self.ops.values():
            entry.count = max(entry.count, self.summary.get(entry.name, 0))
        # An error no list or code classified (TF 2.2 printed none) joins the one classified entry of its op.
        for (name, category), entry in list(self.ops.items()):
            if category == "undetermined":
                known = [c for c in self.by_name[name] if c not in ("undetermined", "unsupported")]
                if len(known) == 1:
                    self._recategorize(entry, known[0])
        ops = []
        for entry in self.ops.values():
            if entry.category == "undetermined":  # no list or error code said which: the allowlist decides later
                entry.category = "needs_flex_or_custom"
            entry.count = max(entry.count, 1)
            ops.append(entry)
        return sorted(ops, key=lambda e: (e.phase, e.category, e.name))


def _signature(entry: LogOp, operands, results, attrs) -> None:
    if operands and not entry.operand_types:
        entry.operand_types = split_types(operands)
    if results and not entry.result_types:
        entry.result_types = split_types(results)
    if attrs and not entry.attrs:
        entry.attrs = attributes(attrs[:-1] if attrs.endswith("}") else attrs)


def _lines(stream: IO[str]) -> Iterable[str]:
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            return
        if not line.endswith("\n"):  # an over-long line: skip its rest
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith("\n"):
                pass
        yield line.rstrip("\n")


def parse_lines(lines: Iterable[str]) -> LogReport:
    """Parse log lines (any iterable of str)."""
    p = _Parser()
    n = 0
    for n, line in enumerate(lines, 1):
        p.feed(line)
    return LogReport(p.finish(), p.formats, n, len(p.dropped) + p.overflow)


def parse_log(stream: IO[str] | str) -> LogReport:
    """Parse a log from a text stream (read line by line, never whole) or a string."""
    if isinstance(stream, str):
        stream = io.StringIO(stream)
    return parse_lines(_lines(stream))
