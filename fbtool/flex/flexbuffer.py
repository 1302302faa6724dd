"""A bounds-checked FlexBuffers reader (the format of custom_options), without the flatbuffers package.

Format facts from google/flatbuffers docs/source/flexbuffers.md and flexbuffers.h: the
last byte is the root's byte width, the one before it the root's packed type
(type << 2 | log2 width); offsets point backwards; vectors and strings carry their
size just before their first byte; maps are vectors whose keys vector is referenced by
the two words before the size; untyped vectors end with one packed type per element.
"""
from __future__ import annotations

import struct

MAX_DEPTH = 32
MAX_ITEMS = 100_000

NULL, INT, UINT, FLOAT, KEY, STRING = 0, 1, 2, 3, 4, 5
INDIRECT_INT, INDIRECT_UINT, INDIRECT_FLOAT, MAP, VECTOR = 6, 7, 8, 9, 10
VECTOR_INT, VECTOR_UINT, VECTOR_FLOAT, VECTOR_KEY, VECTOR_STRING_DEPRECATED = 11, 12, 13, 14, 15
BLOB, BOOL, VECTOR_BOOL = 25, 26, 36
_FIXED = {16: (INT, 2), 17: (UINT, 2), 18: (FLOAT, 2), 19: (INT, 3), 20: (UINT, 3), 21: (FLOAT, 3),
          22: (INT, 4), 23: (UINT, 4), 24: (FLOAT, 4)}
_TYPED = {VECTOR_INT: INT, VECTOR_UINT: UINT, VECTOR_FLOAT: FLOAT, VECTOR_KEY: KEY,
          VECTOR_STRING_DEPRECATED: STRING, VECTOR_BOOL: BOOL}
_UINT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
_INT = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}
_FLOAT = {4: "<f", 8: "<d"}


class Blob(bytes):
    """A FlexBuffer BLOB, told apart from a STRING (plain ``bytes``)."""


class FlexBufferError(ValueError):
    """The bytes are not a well-formed FlexBuffer; the message says what and where."""


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.items = 0
        # offsets may share ("alias") one string from many slots: decoded bytes are charged, so a
        # small buffer cannot expand to gigabytes (as shared tables are charged by the model verifier)
        self.budget = 2 * len(data) + (1 << 20)

    def charge(self, size: int, at: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise FlexBufferError(f"shared values expand the {len(self.data)}-byte buffer past "
                                  f"{2 * len(self.data) + (1 << 20)} bytes (at {at}): aliased offsets")

    def need(self, pos: int, size: int) -> None:
        if pos < 0 or size < 0 or pos + size > len(self.data):
            raise FlexBufferError(f"read of {size} bytes at {pos} outside the {len(self.data)}-byte buffer")

    def scalar(self, table: dict, pos: int, width: int):
        if width not in table:
            raise FlexBufferError(f"invalid width {width} at {pos}")
        self.need(pos, width)
        return struct.unpack_from(table[width], self.data, pos)[0]

    def target(self, pos: int, width: int) -> int:
        off = self.scalar(_UINT, pos, width)
        if off > pos:
            raise FlexBufferError(f"offset {off} at {pos} points before the buffer")
        return pos - off

    def value(self, pos: int, parent_width: int, packed: int, depth: int):
        if depth > MAX_DEPTH:
            raise FlexBufferError("nested deeper than %d" % MAX_DEPTH)
        self.items += 1
        if self.items > MAX_ITEMS:
            raise FlexBufferError(f"more than {MAX_ITEMS} values")
        kind, width = packed >> 2, 1 << (packed & 3)
        if kind == NULL:
            return None
        if kind == BOOL:
            return bool(self.scalar(_UINT, pos, parent_width))
        if kind == INT:
            return self.scalar(_INT, pos, parent_width)
        if kind == UINT:
            return self.scalar(_UINT, pos, parent_width)
        if kind == FLOAT:
            return self.scalar(_FLOAT, pos, parent_width)
        at = self.target(pos, parent_width)
        if kind == INDIRECT_INT:
            return self.scalar(_INT, at, width)
        if kind == INDIRECT_UINT:
            return self.scalar(_UINT, at, width)
        if kind == INDIRECT_FLOAT:
            return self.scalar(_FLOAT, at, width)
        if kind == KEY:
            return self.key(at)
        if kind in (STRING, BLOB):
            size = self.size(at, width, 1)      # a length in bytes, whatever width stores it
            self.need(at, size)
            self.charge(size, at)
            return (Blob if kind == BLOB else bytes)(self.data[at:at + size])
        if kind == MAP:
            return self.map(at, width, depth)
        if kind == VECTOR:
            return self.vector(at, width, depth)
        if kind in _TYPED:
            return self.typed(at, width, _TYPED[kind], self.size(at, width), depth)
        if kind in _FIXED:
            elem, count = _FIXED[kind]
            return self.typed(at, width, elem, count, depth)
        raise FlexBufferError(f"unknown value type {kind} at {pos}")

    def size(self, at: int, width: int, unit: int | None = None) -> int:
        """The element count stored before ``at``, checked against the bytes left: ``unit`` bytes per
        element (the width itself for vectors; strings and blobs count bytes)."""
        n = self.scalar(_UINT, at - width, width)
        if n > (len(self.data) - at) // (unit or width):
            raise FlexBufferError(f"size {n} at {at} overruns the buffer")
        return n

    def key(self, at: int) -> str:
        end = self.data.find(b"\0", at)
        if at < 0 or end < 0:
            raise FlexBufferError(f"key at {at} not NUL-terminated")
        self.charge(end - at, at)
        return self.data[at:end].decode("utf-8", "replace")

    def vector(self, at: int, width: int, depth: int) -> list:
        n = self.size(at, width)
        self.need(at, n * width + n)
        types = self.data[at + n * width:at + n * width + n]
        return [self.value(at + i * width, width, types[i], depth + 1) for i in range(n)]

    def typed(self, at: int, width: int, elem: int, n: int, depth: int) -> list:
        self.need(at, n * width)
        packed = elem << 2 | {1: 0, 2: 1, 4: 2, 8: 3}[width]
        return [self.value(at + i * width, width, packed, depth + 1) for i in range(n)]

    def map(self, at: int, width: int, depth: int) -> dict:
        values = self.vector(at, width, depth)
        keys_at = self.target(at - 3 * width, width)
        key_width = self.scalar(_UINT, at - 2 * width, width)
        if key_width not in _UINT:
            raise FlexBufferError(f"invalid key width {key_width} at {at}")
        keys = self.typed(keys_at, key_width, KEY, self.size(keys_at, key_width), depth)
        if len(keys) != len(values):
            raise FlexBufferError(f"map at {at} has {len(keys)} keys for {len(values)} values")
        return dict(zip(keys, values))


def loads(data: bytes):
    """Decode a FlexBuffer into Python values (strings as bytes, blobs as :class:`Blob`, keys as str).

    Raises :class:`FlexBufferError` on malformed input, never anything else.
    """
    if len(data) < 3:
        raise FlexBufferError(f"{len(data)} bytes is too short for a FlexBuffer")
    width = data[-1]
    if width not in _UINT:
        raise FlexBufferError(f"invalid root width {width}")
    try:
        return _Reader(data).value(len(data) - 2 - width, width, data[-2], 0)
    except RecursionError:
        raise FlexBufferError("nested too deeply") from None
