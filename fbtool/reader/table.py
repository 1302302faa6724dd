"""Lazy, zero-copy access to the fields of a verified FlatBuffer table.

Only call this on bytes that :func:`fbtool.reader.structure.verify_buffer`
accepted: it does no bounds checking of its own.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from .schema import Schema, TableDef
from .structure import unpack_vector

_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U16 = struct.Struct("<H").unpack_from


class Span(NamedTuple):
    """A byte range of the file (absolute offset, length), never copied until asked."""
    offset: int
    size: int


class Table:
    __slots__ = ("buf", "pos", "tdef", "schema", "_slots")

    def __init__(self, buf, pos: int, tdef: TableDef, schema: Schema):
        self.buf = buf
        self.pos = pos
        self.tdef = tdef
        self.schema = schema
        vt = pos - _I32(buf, pos)[0]
        self._slots = unpack_vector((_U16(buf, vt)[0] - 4) // 2, "H")(buf, vt + 4)

    def _field_pos(self, slot: int) -> int:
        slots = self._slots
        return self.pos + slots[slot] if slot < len(slots) and slots[slot] else 0

    def field_pos(self, name: str) -> int | None:
        """Absolute position of a present field's inline value (an offset for non-scalars), or None."""
        return self._field_pos(self.tdef.fields[name].slot) or None

    def has(self, name: str) -> bool:
        return bool(self._field_pos(self.tdef.fields[name].slot))

    def get(self, name: str, default=None):
        """Value of a field: scalar, str, Table, tuple (scalar vector), list (tables/strings).

        ``[ubyte]`` vectors come back as :class:`Span` so weights are never copied.
        Absent fields give the schema default (scalars) or ``default``.
        """
        f = self.tdef.fields[name]
        slot, slots = f.slot, self._slots
        if slot >= len(slots) or not slots[slot]:
            return f.default if f.kind == "scalar" else default
        buf = self.buf
        at = self.pos + slots[slot]
        if f.unpack:
            return f.unpack(buf, at)[0]
        target = at + _U32(buf, at)[0]
        schema = self.schema
        if f.kind == "string":
            n = _U32(buf, target)[0]
            return bytes(buf[target + 4:target + 4 + n]).decode("utf-8", "replace")
        if f.kind == "table":
            return Table(buf, target, schema.tables[f.target], schema)
        if f.kind == "union":
            member = schema.unions[f.target].get(self.get(name + "_type"))
            return Table(buf, target, schema.tables[member], schema) if member else default
        n = _U32(buf, target)[0]
        if f.elem == "scalar":
            if f.fmt == "B":
                return Span(target + 4, n)
            return unpack_vector(n, f.fmt)(buf, target + 4)
        items = []
        for i in range(n):
            at = target + 4 + 4 * i
            item = at + _U32(buf, at)[0]
            if f.elem == "string":
                k = _U32(buf, item)[0]
                items.append(bytes(buf[item + 4:item + 4 + k]).decode("utf-8", "replace"))
            else:
                items.append(Table(buf, item, schema.tables[f.target], schema))
        return items

    def ints(self, name: str) -> tuple:
        """A scalar vector as a tuple, ``[ubyte]`` included (small vectors only)."""
        value = self.get(name, ())
        return tuple(self.buf[value.offset:value.offset + value.size]) if isinstance(value, Span) else value

    def to_dict(self, defaults: bool = False) -> dict:
        """Fields, recursively, enums by name; for options tables and metadata.

        Absent fields are left out, or with ``defaults`` scalars get their schema default.
        """
        out = {}
        for name, f in self.tdef.fields.items():
            if f.kind == "union" or name.endswith("_type") and name[:-5] in self.tdef.fields:
                continue
            if not self.has(name) and not (defaults and f.kind == "scalar"):
                continue
            value = self.get(name)
            if isinstance(value, Table):
                value = value.to_dict(defaults)
            elif isinstance(value, list):
                value = [v.to_dict(defaults) if isinstance(v, Table) else v for v in value]
            elif isinstance(value, Span):
                value = {"bytes": value.size}
            elif isinstance(value, tuple):
                value = [self._enum(f.enum, v) for v in value] if f.enum else list(value)
            elif f.enum:
                value = self._enum(f.enum, value)
            out[name] = value
        return out

    def _enum(self, enum: str, value):
        return self.schema.enum_name(enum, value) or value
