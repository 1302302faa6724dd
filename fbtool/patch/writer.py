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
import shutil
import struct
import tempfile

from ..errors import ModelError
from ..reader.model import Model, open_model
from ..reader.table import Table

ALIGN = 16
CHUNK = 1 << 20


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

    def target(self, table: Table, name: str) -> int | None:
        """Where a present offset field of an original table points, or None."""
        at = table.field_pos(name)
        return at + int.from_bytes(self.model.buf[at:at + 4], "little") if at is not None else None

    # -- in-place edits of the original bytes --------------------------------------------------
    def put(self, pos: int, fmt: str, value) -> None:
        self.put_bytes(pos, struct.pack("<" + fmt, value))

    def put_bytes(self, pos: int, data: bytes) -> None:
        """Overwrite original bytes (inside the flatbuffer or in data stored after it), by their
        position in the input; the new block is addressed by output position (:meth:`point`)."""
        if pos < 0 or pos + len(data) > self.model.size:
            raise ValueError("in-place edits are for the original bytes")
        self.edits[pos] = bytes(data)

    def point(self, at: int, target: int) -> None:
        """Make the uoffset stored at ``at`` (original bytes or the new block) refer to ``target``."""
        offset = target - at
        if not 0 < offset < 1 << 31:
            raise ValueError(f"offset from {at} to {target} cannot be encoded")
        if self.base <= at < self.base + len(self.tail):   # in the new block (output positions)
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
    def _shift_external(self) -> None:
        delta = len(self.tail) + (-len(self.tail) % ALIGN)
        for b in self.model.buffers:   # data stored after the flatbuffer moves by the block's size
            if b.external and delta:
                table = self.model.root.get("buffers")[b.index]
                self.put(table.field_pos("offset"), "Q", b.external.offset + delta)

    def write_to(self, dst_fd: int, src_fd: int) -> None:
        """Write the output: the original with edits applied and the new block after the flatbuffer.
        Unedited stretches are copied by the kernel (copy_file_range), never through this
        process's memory, so a 300 MB model costs about what `cp` does."""
        if self.tail:
            self._shift_external()
        edits = sorted(self.edits.items())
        self._original(src_fd, dst_fd, 0, self.base, edits)
        if self.tail:
            _write_all(dst_fd, bytes(self.tail) + bytes(-len(self.tail) % ALIGN))
        self._original(src_fd, dst_fd, self.base, self.model.size, edits)

    def _original(self, src_fd: int, dst_fd: int, start: int, end: int, edits) -> None:
        pos = start
        for at, data in edits:
            if at + len(data) <= start or at >= end:
                continue
            lo = max(at, start)
            if lo < pos:
                raise ValueError(f"overlapping edits at byte {lo}")
            _copy(src_fd, dst_fd, pos, lo - pos)
            hi = min(at + len(data), end)
            _write_all(dst_fd, data[lo - at:hi - at])
            pos = max(pos, hi)
        _copy(src_fd, dst_fd, pos, end - pos)

    def render(self) -> bytes:
        """The output as bytes (small models, tests)."""
        with tempfile.TemporaryFile() as dst, open(self.model.path, "rb") as src:
            self.write_to(dst.fileno(), src.fileno())
            dst.seek(0)
            return dst.read()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _copy(src_fd: int, dst_fd: int, offset: int, count: int) -> None:
    while count > 0:
        try:
            n = os.copy_file_range(src_fd, dst_fd, min(count, 1 << 30), offset)
        except (AttributeError, OSError):   # not Linux, or a file system that cannot: read and write
            n = len(chunk := os.pread(src_fd, min(count, CHUNK), offset))
            _write_all(dst_fd, chunk)
        if n == 0:
            raise OSError("the model file ended early while copying it")
        offset += n
        count -= n


def write_patched(source: str, editor: Editor | None, out: str, check=None) -> None:
    """Write the patched model (or, with no editor, a copy of ``source``) to a temp file beside
    ``out``, stream by stream; verify it with fbtool's own verifier, let ``check(temp_path)`` veto
    it by raising, then fsync and rename: ``out`` is never partial, and nothing is written on failure."""
    folder = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=".fbtool-", suffix=".tflite", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            with open(source, "rb") as src:
                if editor is None:
                    shutil.copyfileobj(src, f, CHUNK)
                else:
                    f.flush()
                    editor.write_to(f.fileno(), src.fileno())
            f.flush()
            os.fsync(f.fileno())
        with open_model(tmp):
            pass
        if check is not None:
            check(tmp)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _sync_folder(folder, out)


def _sync_folder(folder: str, out: str) -> None:
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
