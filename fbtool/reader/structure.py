"""Bounds verification of a FlatBuffer against a schema, before any byte is trusted.

Modelled on the FlatBuffers C++ ``Verifier`` (flatbuffers/verifier.h): every
offset aligned, in bounds and overflow-safe; vtables aligned, even-sized and in
bounds; strings NUL-terminated; vector lengths bounded before multiplying;
nesting depth and table count limited; the file identifier checked.  Two
additions: every scalar field must lie inside its table's declared inline size,
and shared ("aliased") sub-objects are verified once and charged by the size
they expand to, so a small file that references one huge vector thousands of
times is rejected in linear time instead of making later readers do quadratic
work.  Weight bytes are never read: a ``[ubyte]`` vector costs one length check.
"""
from __future__ import annotations

import bisect
import itertools
import struct
from typing import NamedTuple

from ..errors import ModelError
from .schema import Schema, TableDef

MAX_DEPTH = 64
MAX_TABLES = 1_000_000
SHARED_CHARGE = 64     # bytes a repeated reference to a table counts for, at least (real models: a few hundred)
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U16x2 = struct.Struct("<HH").unpack_from
_VECTOR_FORMATS: dict[tuple[int, str], object] = {}


def unpack_vector(n: int, fmt: str):
    """``struct.unpack_from`` for ``n`` little-endian ``fmt`` items, cached for small ``n``."""
    key = (n, fmt)
    unpack = _VECTOR_FORMATS.get(key)
    if unpack is None:
        unpack = struct.Struct(f"<{n}{fmt}").unpack_from
        if n <= 64:  # vtables, shapes and operand lists repeat; keep their Structs
            _VECTOR_FORMATS[key] = unpack
    return unpack


def _where(path) -> str:
    parts = []
    while path:
        path, name = path
        parts.append(f"[{name}]" if isinstance(name, int) else name)
    return "".join(reversed(parts)).lstrip(".")


class _Verifier:
    """Each check has an inline fast path; the slow path (``check``, ``offset``) names the failure."""

    def __init__(self, buf, schema: Schema, limit: int, spans: list | None = None):
        self.buf = buf
        self.n = limit
        self.schema = schema
        self.memo: dict[tuple[int, str], int] = {}
        self.extent = 0
        self.spans = spans                  # (start, end) per object reference, when asked for
        self.table_end: dict[int, int] = {}

    def fail(self, what: str, path, pos: int | None = None):
        at = f" (byte {pos:#x})" if pos is not None else ""
        raise ModelError(what + at, _where(path) or "root")

    def check(self, pos: int, size: int, align: int, what: str, path) -> None:
        if pos < 0 or size > self.n or pos > self.n - size:
            self.fail(f"{what} out of bounds (file is {self.n} bytes)", path, pos)
        if pos % align:
            self.fail(f"{what} misaligned", path, pos)

    def offset(self, at: int, path) -> int:
        """Follow the uoffset stored at ``at``; return the absolute target."""
        if at & 3 or at + 4 > self.n:
            self.check(at, 4, 4, "offset", path)
        o = _U32(self.buf, at)[0]
        if o == 0 or o >= 0x80000000:
            self.fail(f"invalid offset {o}", path, at)
        if at + o >= self.n:
            self.check(at + o, 1, 1, "offset target", path)
        return at + o

    def vector_len(self, pos: int, elem_size: int, path, terminator: int = 0) -> int:
        if pos & 3 or pos + 4 > self.n:
            self.check(pos, 4, 4, "vector length", path)
        count = _U32(self.buf, pos)[0]
        if count > (self.n - pos - 4) // elem_size:
            self.fail(f"vector of {count} elements of {elem_size} bytes overruns the file", path, pos)
        end = pos + 4 + count * elem_size
        if end > self.extent:
            self.extent = end
        if self.spans is not None:
            self.spans.append((pos, end + terminator))
        return count

    def string(self, pos: int, path) -> int:
        count = self.vector_len(pos, 1, path, terminator=1)
        end = pos + 4 + count
        if end >= self.n:
            self.check(end, 1, 1, "string terminator", path)
        if self.buf[end] != 0:
            self.fail("string not NUL-terminated", path, pos)
        if end + 1 > self.extent:
            self.extent = end + 1
        return count + 5

    def table(self, pos: int, tdef: TableDef, path, depth: int) -> int:
        """Verify the table at ``pos``; return the bytes it expands to."""
        key = (pos, tdef.name)
        memo = self.memo
        if key in memo:
            if self.spans is not None:      # another reference to the same table
                self.spans.append((pos, self.table_end[pos]))
            # a shared table costs readers an object each time they meet it: charged at least
            # SHARED_CHARGE, so 1M operators aliasing one empty table (4 MB) cannot pass as 8 MB
            return max(memo[key], SHARED_CHARGE)
        if depth > MAX_DEPTH:
            self.fail(f"nesting deeper than {MAX_DEPTH}", path, pos)
        if len(memo) >= MAX_TABLES:
            self.fail(f"more than {MAX_TABLES} tables", path, pos)
        buf, n = self.buf, self.n
        if pos & 3 or pos + 4 > n:
            self.check(pos, 4, 4, f"{tdef.name} table", path)
        vt = pos - _I32(buf, pos)[0]
        if vt & 1 or vt < 0 or vt + 4 > n:
            self.check(vt, 4, 2, f"{tdef.name} vtable", path)
        vt_size, obj_size = _U16x2(buf, vt)
        if vt_size & 1 or vt_size < 4:
            self.fail(f"{tdef.name} vtable size {vt_size} invalid", path, vt)
        if vt + vt_size > n:
            self.check(vt, vt_size, 2, f"{tdef.name} vtable", path)
        if obj_size < 4:
            self.fail(f"{tdef.name} table size {obj_size} invalid", path, pos)
        if pos + obj_size > n:
            self.check(pos, obj_size, 4, f"{tdef.name} table", path)
        end = max(pos + obj_size, vt + vt_size)
        if end > self.extent:
            self.extent = end
        if self.spans is not None:
            self.table_end[pos] = pos + obj_size
            self.spans += ((pos, pos + obj_size), (vt, vt + vt_size))
        slots = unpack_vector((vt_size - 4) // 2, "H")(buf, vt + 4)
        for field_off, size in zip(slots, tdef.slot_sizes):
            if field_off and (field_off + size > obj_size or (pos + field_off) % size):
                self.fail(f"{tdef.name} field at {field_off} outside its {obj_size}-byte table or misaligned",
                          path, pos)
        expanded = obj_size
        nslots = len(slots)
        for f in tdef.refs:
            field_off = slots[f.slot] if f.slot < nslots else 0
            if not field_off:
                continue
            fpath = (path, "." + f.name)
            target = self.offset(pos + field_off, fpath)
            kind = f.kind
            if kind == "string":
                expanded += self.string(target, fpath)
            elif kind == "table":
                expanded += self.table(target, self.schema.tables[f.target], fpath, depth + 1)
            elif kind == "union":
                # The union's type byte sits in the slot before its value (see schema.py).
                type_off = slots[f.slot - 1]
                member = self.schema.unions[f.target].get(buf[pos + type_off] if type_off else 0)
                if member is not None:  # unknown or NONE: the C++ verifier accepts it unread
                    expanded += self.table(target, self.schema.tables[member], (fpath, f"<{member}>"), depth + 1)
            else:
                expanded += self.vector(target, f, fpath, depth)
        memo[key] = expanded
        return expanded

    def vector(self, pos: int, f, path, depth: int) -> int:
        if f.elem == "scalar":
            size = struct.calcsize(f.fmt)
            return 4 + size * self.vector_len(pos, size, path)
        count = self.vector_len(pos, 4, path)
        total = 4 + 4 * count
        buf, n = self.buf, self.n
        elements = unpack_vector(count, "I")(buf, pos + 4)
        tdef = self.schema.tables[f.target] if f.elem == "table" else None
        for i, o in enumerate(elements):
            at = pos + 4 + 4 * i
            if o == 0 or o >= 0x80000000 or at + o >= n:
                self.offset(at, (path, i))
            if tdef is None:
                total += self.string(at + o, (path, i))
            else:
                total += self.table(at + o, tdef, (path, i), depth + 1)
        return total


def verify_buffer(buf, schema: Schema, size: int | None = None, check_identifier: bool = True,
                  trusted: "Verified | None" = None, spans: list | None = None) -> "Verified":
    """Verify ``buf[:size]`` as a root ``schema.root`` table.

    Returns the flatbuffer's extent (one past the last byte any verified object occupies: what
    follows it is not part of the flatbuffer: external buffers, appended zips) with the tables
    verified on the way. ``trusted``: tables already verified at these positions (a patched
    file's original part, see fbtool.patch.writer), not walked again. ``spans``: a list to
    append (start, end) to for every reference to a table, vtable, vector or string (see
    :class:`Coverage`).
    Raises :class:`ModelError` naming the first problem and where it is.
    """
    n = len(buf) if size is None else size
    if n < 8:
        raise ModelError(f"file is {n} bytes, too small for a FlatBuffer")
    ident = bytes(buf[4:8])
    if check_identifier and schema.identifier and ident != schema.identifier:
        raise ModelError(f"file identifier is {ident!r}, expected {schema.identifier!r} (not a {schema.root} file?)")
    v = _Verifier(buf, schema, n, spans)
    if trusted is not None:
        if trusted.extent > n:
            raise ModelError(f"trusted tables end at byte {trusted.extent}, past the {n}-byte file")
        v.memo, v.extent = dict(trusted.tables), trusted.extent
    root = v.offset(0, None)
    expanded = v.table(root, schema.tables[schema.root], None, 1)
    if expanded > 2 * n + (1 << 20):
        raise ModelError(f"shared sub-objects expand the {n}-byte file to {expanded} bytes: "
                         "aliased offsets, refusing to read it")
    return Verified(v.extent, v.memo)


class Verified(NamedTuple):
    extent: int
    tables: dict        # (position, table name) -> bytes the table expands to

    def shifted(self, by: int) -> "Verified":
        """The same tables ``by`` bytes further into a file."""
        return Verified(self.extent + by, {(pos + by, name): size for (pos, name), size in self.tables.items()})


class Coverage:
    """Which bytes each object of a file covers, from every reference the verifier followed.

    FlatBuffers lets objects share bytes: two tensors may point at one shape vector, a bias's
    data may start inside a filter's, a name may lie inside weights. An in-place edit is safe only
    for bytes exactly one reference to exactly one object covers: :meth:`exclusive`.
    """

    def __init__(self, spans: list[tuple[int, int]]):
        spans = sorted(spans)
        self.starts = [start for start, _ in spans]
        self.ends = [end for _, end in spans]
        self.reach = list(itertools.accumulate(self.ends, max))   # furthest end of spans starting so far

    def references(self, start: int, end: int) -> int:
        """How many references point at the object [start, end), or 0 when another object overlaps it
        (or it is not an object the verifier saw)."""
        i = bisect.bisect_left(self.starts, start)
        j = bisect.bisect_left(self.starts, max(end, start + 1))
        if j == i or any(self.ends[k] != end for k in range(i, j)):
            return 0
        return j - i if i == 0 or self.reach[i - 1] <= start else 0

    def exclusive(self, start: int, end: int) -> bool:
        """Whether [start, end) is one object that one reference points at and nothing else overlaps."""
        return self.references(start, end) == 1
