"""The protocol-buffer wire format, read with bounds checks (no protobuf package needed).

Facts from protobuf's encoding documentation: each field is a varint key
``field_number << 3 | wire_type``; wire types 0 varint, 1 fixed 64-bit, 2
length-delimited, 5 fixed 32-bit (3 and 4, groups, are not used by TensorFlow's
protos); repeated scalars may be packed into one length-delimited field.
"""
from __future__ import annotations

import struct


class ProtoError(ValueError):
    """Malformed protocol-buffer bytes."""


def varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtoError("varint runs past the end")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes")


def fields(data: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) for every field: ints for 0/1/5, bytes for 2."""
    out, pos, n = [], 0, len(data)
    while pos < n:
        key, pos = varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(data, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise ProtoError("fixed64 runs past the end")
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            if pos + 4 > n:
                raise ProtoError("fixed32 runs past the end")
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == 2:
            size, pos = varint(data, pos)
            if size > n - pos:
                raise ProtoError(f"field {number} of {size} bytes runs past the end")
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ProtoError(f"unsupported wire type {wire} for field {number}")
        if number == 0:
            raise ProtoError("field number 0")
        out.append((number, wire, value))
    return out


def signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def as_bytes(wire: int, value) -> bytes:
    """A length-delimited field (bytes, string or message); another wire type is malformed."""
    if wire != 2:
        raise ProtoError(f"wire type {wire} where a length-delimited field belongs")
    return value


def as_varint(wire: int, value) -> int:
    if wire != 0:
        raise ProtoError(f"wire type {wire} where a varint belongs")
    return value


def repeated_varints(wire: int, value) -> list[int]:
    """A repeated varint field, packed (wire 2) or not (wire 0)."""
    if wire == 0:
        return [value]
    as_bytes(wire, value)
    out, pos = [], 0
    while pos < len(value):
        v, pos = varint(value, pos)
        out.append(v)
    return out


def repeated_fixed(wire: int, value, fmt: str) -> list:
    """A repeated fixed-size field (``fmt`` 'f', 'd', 'i', 'q'...), packed or not."""
    size = struct.calcsize(fmt)
    if wire not in (2, 5 if size == 4 else 1):
        raise ProtoError(f"wire type {wire} where {fmt!r} values belong")
    if wire == 2 and len(value) % size:
        raise ProtoError(f"packed field of {len(value)} bytes is not a multiple of {size}")
    return list(struct.unpack(f"<{len(value) // size}{fmt}", value))
