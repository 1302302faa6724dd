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

import struct

from ..errors import ModelError
from .schema import Schema, TableDef

MAX_DEPTH = 64
MAX_TABLES = 1_000_000
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U16x2 = struct.Struct("<HH").unpack_from


def _where(path) -> str:
    parts = []
    while path:
        path, name = path
        parts.append(name)
    return "".join(reversed(parts)).lstrip(".")


class _Verifier:
    def __init__(self, buf, schema: Schema, limit: int):
        self.buf = buf
        self.n = limit
        self.schema = schema
        self.memo: dict[tuple[int, str], int] = {}
        self.extent = 0

    def fail(self, what: str, path, pos: int | None = None):
        at = f" (byte {pos:#x})" if pos is not None else ""
        raise ModelError(what + at, _where(path) or "root")

    def check(self, pos: int, size: int, align: int, what: str, path) -> None:
        if pos < 0 or size > self.n or pos > self.n - size:
            self.fail(f"{what} out of bounds (file is {self.n} bytes)", path, pos)
        if pos % align:
            self.fail(f"{what} misaligned", path, pos)
        if pos + size > self.extent:
            self.extent = pos + size

    def offset(self, at: int, path) -> int:
        """Follow the uoffset stored at ``at``; return the absolute target."""
        self.check(at, 4, 4, "offset", path)
        o = _U32(self.buf, at)[0]
        if o == 0 or o >= 0x80000000:
            self.fail(f"invalid offset {o}", path, at)
        target = at + o
        self.check(target, 1, 1, "offset target", path)
        return target

    def vector_len(self, pos: int, elem_size: int, path) -> int:
        self.check(pos, 4, 4, "vector length", path)
        count = _U32(self.buf, pos)[0]
        if count > (self.n - pos - 4) // elem_size:
            self.fail(f"vector of {count} elements of {elem_size} bytes overruns the file", path, pos)
        return count

    def string(self, pos: int, path) -> int:
        count = self.vector_len(pos, 1, path)
        end = pos + 4 + count
        self.check(end, 1, 1, "string terminator", path)
        if self.buf[end] != 0:
            self.fail("string not NUL-terminated", path, pos)
        return count + 5

    def table(self, pos: int, tdef: TableDef, path, depth: int) -> int:
        """Verify the table at ``pos``; return the bytes it expands to."""
        key = (pos, tdef.name)
        memo = self.memo
        if key in memo:
            return memo[key]
        if depth > MAX_DEPTH:
            self.fail(f"nesting deeper than {MAX_DEPTH}", path, pos)
        if len(memo) >= MAX_TABLES:
            self.fail(f"more than {MAX_TABLES} tables", path, pos)
        self.check(pos, 4, 4, f"{tdef.name} table", path)
        vt = pos - _I32(self.buf, pos)[0]
        self.check(vt, 4, 2, f"{tdef.name} vtable", path)
        vt_size, obj_size = _U16x2(self.buf, vt)
        if vt_size & 1 or vt_size < 4:
            self.fail(f"{tdef.name} vtable size {vt_size} invalid", path, vt)
        self.check(vt, vt_size, 2, f"{tdef.name} vtable", path)
        if obj_size < 4:
            self.fail(f"{tdef.name} table size {obj_size} invalid", path, pos)
        self.check(pos, obj_size, 4, f"{tdef.name} table", path)
        slots = struct.unpack_from(f"<{(vt_size - 4) // 2}H", self.buf, vt + 4)
        for slot, (field_off, size) in enumerate(zip(slots, tdef.slot_sizes)):
            if field_off and (field_off + size > obj_size or (pos + field_off) % size):
                self.fail(f"{tdef.name} field {slot} at {field_off} outside its {obj_size}-byte table or misaligned", path, pos)
        expanded = obj_size
        for f in tdef.refs:
            field_off = slots[f.slot] if f.slot < len(slots) else 0
            if not field_off:
                continue
            fpath = (path, "." + f.name)
            target = self.offset(pos + field_off, fpath)
            if f.kind == "union":
                # The union's type byte sits in the slot before its value (see schema.py).
                type_off = slots[f.slot - 1]
                code = self.buf[pos + type_off] if type_off else 0
                expanded += self.union(target, f, code, fpath, depth)
            else:
                expanded += self.ref(target, f, fpath, depth)
        memo[key] = expanded
        return expanded

    def ref(self, target: int, f, path, depth: int) -> int:
        kind = f.kind
        if kind == "string":
            return self.string(target, path)
        if kind == "table":
            return self.table(target, self.schema.tables[f.target], path, depth + 1)
        return self.vector(target, f, path, depth)

    def union(self, target: int, f, code: int, path, depth: int) -> int:
        member = self.schema.unions[f.target].get(code)
        if member is None:  # unknown or NONE: the C++ verifier accepts it unread
            return 0
        return self.table(target, self.schema.tables[member], (path, f"<{member}>"), depth + 1)

    def vector(self, pos: int, f, path, depth: int) -> int:
        if f.elem == "scalar":
            size = struct.calcsize(f.fmt)
            count = self.vector_len(pos, size, path)
            self.check(pos, 4 + size * count, 4, "vector", path)
            return 4 + size * count
        count = self.vector_len(pos, 4, path)
        total = 4 + 4 * count
        for i in range(count):
            epath = (path, f"[{i}]")
            target = self.offset(pos + 4 + 4 * i, epath)
            if f.elem == "string":
                total += self.string(target, epath)
            else:
                total += self.table(target, self.schema.tables[f.target], epath, depth + 1)
        return total


def verify_buffer(buf, schema: Schema, size: int | None = None, check_identifier: bool = True) -> int:
    """Verify ``buf[:size]`` as a root ``schema.root`` table; return the flatbuffer's extent.

    The extent is one past the last byte any verified object occupies: what
    follows it is not part of the flatbuffer (external buffers, appended zips).
    Raises :class:`ModelError` naming the first problem and where it is.
    """
    n = len(buf) if size is None else size
    if n < 8:
        raise ModelError(f"file is {n} bytes, too small for a FlatBuffer")
    ident = bytes(buf[4:8])
    if check_identifier and schema.identifier and ident != schema.identifier:
        raise ModelError(f"file identifier is {ident!r}, expected {schema.identifier!r} (not a {schema.root} file?)")
    v = _Verifier(buf, schema, n)
    root = v.offset(0, None)
    expanded = v.table(root, schema.tables[schema.root], None, 1)
    if expanded > 2 * n + (1 << 20):
        raise ModelError(f"shared sub-objects expand the {n}-byte file to {expanded} bytes: "
                         "aliased offsets, refusing to read it")
    return v.extent
