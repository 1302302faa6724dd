"""Surgical edits of a verified flatbuffer.

FlatBuffers offsets are unsigned and point forward, so a table can be replaced by
writing a new one after everything that refers to it and re-pointing the one offset
that led to the old one. The editor therefore (1) overwrites present scalars and
offsets in place, (2) appends new tables and vectors in a block inserted right after
the flatbuffer's own extent, and (3) leaves every other byte where it was: weights,
names, metadata, the data stored outside the flatbuffer (whose absolute Buffer.offset
values it shifts by the size of the block) and anything appended after it. Old tables
that nothing points to any more stay as dead bytes, like a converter's padding.
"""
from __future__ import annotations

import os
import struct
import tempfile

from ..errors import ModelError
from ..reader.model import Model, model_from_buffer
from ..reader.table import Table

ALIGN = 16


class Editor:
    def __init__(self, model: Model):
        self.model = model
        self.base = model.flatbuffer_extent   # the block goes right after the flatbuffer
        self.edits: dict[int, bytes] = {}
        self.tail = bytearray()

    # -- positions -----------------------------------------------------------------------------
    def _pad(self, align: int) -> None:
        self.tail += bytes(-(self.base + len(self.tail)) % align)

    def here(self) -> int:
        return self.base + len(self.tail)

    def field_pos(self, table: Table, name: str) -> int | None:
        slot = table.tdef.fields[name].slot
        slots = table._slots
        return table.pos + slots[slot] if slot < len(slots) and slots[slot] else None

    # -- in-place edits of the original bytes --------------------------------------------------
    def put(self, pos: int, fmt: str, value) -> None:
        if pos >= self.base:
            raise ValueError("in-place edits are for the original flatbuffer")
        self.edits[pos] = struct.pack("<" + fmt, value)

    def put_bytes(self, pos: int, data: bytes) -> None:
        if pos + len(data) > self.base and pos < self.model.size and not self._outside(pos):
            raise ValueError("in-place edits are for the original flatbuffer")
        self.edits[pos] = bytes(data)

    def _outside(self, pos: int) -> bool:
        """Data stored after the flatbuffer (Buffer.offset) may be edited in place too."""
        return any(b.external and b.external.offset <= pos < b.external.offset + b.external.size
                   for b in self.model.buffers)

    def point(self, at: int, target: int) -> None:
        """Make the uoffset stored at ``at`` (original bytes or the new block) refer to ``target``."""
        offset = target - at
        if not 0 < offset < 1 << 31:
            raise ValueError(f"offset from {at} to {target} cannot be encoded")
        if at >= self.base:
            struct.pack_into("<I", self.tail, at - self.base, offset)
        else:
            self.put(at, "I", offset)

    # -- new objects -----------------------------------------------------------------------------
    def vector(self, fmt: str, values) -> int:
        size = struct.calcsize(fmt)
        self._pad(max(4, size))
        if size > 4 and (self.here() + 4) % size:
            self.tail += bytes(4)
        at = self.here()
        self.tail += struct.pack(f"<I{len(values)}{fmt}", len(values), *values)
        return at

    def offsets_vector(self, targets: list[int]) -> int:
        """A vector of uoffsets to objects that lie after it (tables or strings)."""
        self._pad(4)
        at = self.here()
        self.tail += struct.pack("<I", len(targets)) + bytes(4 * len(targets))
        for i, target in enumerate(targets):
            self.point(at + 4 + 4 * i, target)
        return at

    def table(self, fields: dict[int, tuple[str, object]]) -> tuple[int, dict[int, int]]:
        """Append a table: ``{slot: (struct format, value)}``; offsets are written as 0 and returned
        as ``{slot: field position}`` to :meth:`point` at objects appended later."""
        layout, size, refs = {}, 4, {}
        for slot in sorted(fields):
            fmt, _ = fields[slot]
            width = struct.calcsize(fmt)
            size += -size % width
            layout[slot] = size
            size += width
        size += -size % 4
        nslots = max(fields) + 1 if fields else 0
        vtable = struct.pack(f"<HH{nslots}H", 4 + 2 * nslots, size, *(layout.get(s, 0) for s in range(nslots)))
        self._pad(2)
        vt_at = self.here()
        self.tail += vtable
        self._pad(8)
        at = self.here()
        body = bytearray(size)
        struct.pack_into("<i", body, 0, at - vt_at)
        for slot, (fmt, value) in fields.items():
            struct.pack_into("<" + fmt, body, layout[slot], 0 if value is None else value)
            if value is None:
                refs[slot] = at + layout[slot]
        self.tail += body
        return at, refs

    # -- output ----------------------------------------------------------------------------------
    def render(self) -> bytes:
        delta = len(self.tail) + (-len(self.tail) % ALIGN)
        for b in self.model.buffers:   # data stored after the flatbuffer moves by the block's size
            if b.external and delta:
                table = self.model.root.get("buffers")[b.index]
                self.put(self.field_pos(table, "offset"), "Q", b.external.offset + delta)
        head = bytearray(self.model.buf[:self.base])
        for pos, data in self.edits.items():
            head[pos:pos + len(data)] = data
        if not self.tail:
            return bytes(head) + bytes(self.model.buf[self.base:])
        return bytes(head) + bytes(self.tail) + bytes(-len(self.tail) % ALIGN) + bytes(self.model.buf[self.base:])


def write_verified(data: bytes, out: str, check=None) -> None:
    """Verify ``data`` with fbtool's own verifier, write it to a temp file beside ``out``, let
    ``check(temp_path)`` veto it (by raising), then fsync and rename: ``out`` is never partial."""
    with model_from_buffer(data, out):
        pass
    folder = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=".fbtool-", suffix=".tflite", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError as e:  # some file systems cannot fsync a directory; the rename itself is done
        raise ModelError(f"could not sync the folder: {e}", path=out) from None
    finally:
        os.close(dir_fd)
