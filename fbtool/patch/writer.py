"""Surgical edits of a verified flatbuffer.

FlatBuffers offsets are unsigned and point forward. So new tables go in a *head* block placed
between the file's 8-byte header (root offset, "TFL3") and the whole original file: from there
they can refer to any original object. A change is made by writing new copies of the changed
table and of its parents up to a new root Model, each copy pointing at the original children
it keeps (:meth:`Editor.clone`); the cost grows with the graph's tables, never with weights.
Scalars can also be overwritten in place (:meth:`Editor.put`).

Every other byte of the input follows unchanged, shifted by the head's size (a multiple of
64, so weight alignment is kept): weights, names, metadata, the data stored outside the
flatbuffer (whose absolute ``Buffer.offset`` values are shifted) and anything appended.
Tables that nothing points to any more stay as dead bytes, like a converter's padding.
"""
from __future__ import annotations

import os
import shutil
import struct
import tempfile

from ..output import open_output
from ..reader.model import SCHEMA, Model, coverage_of, open_model
from ..reader.table import Span, Table

ALIGN = 64
HEADER = 8
CHUNK = 1 << 20


class Orig(int):
    """A position in the input file (new objects are addressed by output position)."""


class SharedBytes(Exception):
    """An in-place edit would change bytes another object (or another reference) also covers."""


def table_span(table: Table) -> tuple[int, int]:
    """The inline bytes of an original table: (position, position + its vtable's object size)."""
    vt = table.pos - struct.unpack_from("<i", table.buf, table.pos)[0]
    return table.pos, table.pos + struct.unpack_from("<H", table.buf, vt + 2)[0]


def vector_span(buf, pos: int, elem_size: int) -> tuple[int, int]:
    """An original vector's bytes, its length word included."""
    return pos, pos + 4 + elem_size * struct.unpack_from("<I", buf, pos)[0]


def data_span(span: Span, external: bool) -> tuple[int, int]:
    """The object holding a buffer's bytes: its [ubyte] vector, or the stretch outside the flatbuffer."""
    return (span.offset, span.offset + span.size) if external else (span.offset - 4, span.offset + span.size)


class Editor:
    def __init__(self, model: Model):
        self.model = model
        self.edits: dict[int, bytes] = {}
        self.head = bytearray()
        self.fixups: list[tuple[int, Orig]] = []   # head offset fields aimed at original objects
        self.root: int | None = None

    # -- positions -----------------------------------------------------------------------------
    def here(self) -> int:
        return HEADER + len(self.head)

    def _pad(self, align: int) -> None:
        self.head += bytes(-self.here() % align)

    def target(self, table: Table, name: str) -> Orig | None:
        """Where a present offset field of an original table points, or None."""
        at = table.field_pos(name)
        return Orig(at + int.from_bytes(self.model.buf[at:at + 4], "little")) if at is not None else None

    # -- in-place edits of the original bytes --------------------------------------------------
    def put(self, pos: int, fmt: str, value, owner: tuple[int, int], shared_ok: bool = False) -> None:
        self.put_bytes(pos, struct.pack("<" + fmt, value), owner, shared_ok)

    def put_bytes(self, pos: int, data: bytes, owner: tuple[int, int], shared_ok: bool = False) -> None:
        """Overwrite original bytes (flatbuffer or data stored after it), by input position, inside
        the object ``owner`` (its (start, end)). Raises :class:`SharedBytes` when another object
        overlaps it or (unless ``shared_ok``: the new bytes are right for every reference) when
        more than one reference points at it."""
        if not owner[0] <= pos <= pos + len(data) <= owner[1] or owner[1] > self.model.size:
            raise ValueError(f"an edit at {pos} outside its object {owner}")
        refs = self.coverage.references(*owner)
        if refs == 0 or (refs > 1 and not shared_ok):
            raise SharedBytes(f"bytes {owner[0]}..{owner[1]} are shared with another object")
        self.edits[pos] = bytes(data)

    @property
    def coverage(self):
        return coverage_of(self.model)

    # -- new objects, in the head ----------------------------------------------------------------
    def point(self, at: int, target: int) -> None:
        """Make the offset field at head position ``at`` refer to ``target`` (head or :class:`Orig`)."""
        if not HEADER <= at < self.here():
            raise ValueError(f"offsets are written only in the new head, not at byte {at}")
        if isinstance(target, Orig):
            self.fixups.append((at, target))
            return
        if target <= at:
            raise ValueError(f"offset from {at} to {target} cannot be encoded")
        struct.pack_into("<I", self.head, at - HEADER, target - at)

    def vector(self, fmt: str, values, align: int = 4) -> int:
        size = struct.calcsize(fmt)
        self._pad(4)
        while (self.here() + 4) % max(size, align):
            self.head += bytes(4)
        at = self.here()
        self.head += struct.pack(f"<I{len(values)}{fmt}", len(values), *values)
        return at

    def bytes_vector(self, data: bytes, align: int = 16) -> int:
        self._pad(4)
        while (self.here() + 4) % align:
            self.head += bytes(4)
        at = self.here()
        self.head += struct.pack("<I", len(data)) + data + b"\0"   # a NUL, as strings need
        return at

    def string(self, text: str) -> int:
        return self.bytes_vector(text.encode(), align=4)

    def offsets_vector(self, targets: list[int]) -> int:
        """A vector of offsets to tables or strings (head positions after it, or :class:`Orig`)."""
        self._pad(4)
        at = self.here()
        self.head += struct.pack("<I", len(targets)) + bytes(4 * len(targets))
        for i, target in enumerate(targets):
            if target is not None:
                self.point(at + 4 + 4 * i, target)
        return at

    def table(self, fields: dict[int, tuple[str, object]]) -> tuple[int, dict[int, int]]:
        """Append a table: ``{slot: (struct format, value)}``. A value that is an :class:`Orig`
        is pointed at; ``None`` leaves a zero to :meth:`point` later, its position returned
        in ``{slot: field position}``."""
        layout, size, refs = {}, 4, {}
        for slot in sorted(fields, key=lambda s: -struct.calcsize(fields[s][0])):
            width = struct.calcsize(fields[slot][0])
            size += -size % width
            layout[slot] = size
            size += width
        size += -size % 4
        nslots = max(fields) + 1 if fields else 0
        self._pad(2)
        vt_at = self.here()
        self.head += struct.pack(f"<HH{nslots}H", 4 + 2 * nslots, size, *(layout.get(s, 0) for s in range(nslots)))
        self._pad(8)
        at = self.here()
        body = bytearray(size)
        struct.pack_into("<i", body, 0, at - vt_at)
        self.head += body
        for slot, (fmt, value) in fields.items():
            if value is None:
                refs[slot] = at + layout[slot]
            elif isinstance(value, Orig):
                self.point(at + layout[slot], value)
            else:
                struct.pack_into("<" + fmt, self.head, at + layout[slot] - HEADER, value)
        return at, refs

    def clone(self, table: Table, changes: dict[str, object]) -> tuple[int, dict[str, int]]:
        """A copy of an original table with some fields changed: scalars copied, offsets aimed
        at the original children. ``changes``: field name -> scalar, :class:`Orig` or ``None`` (a
        placeholder, returned by name)."""
        values = {name: table.get(name) if f.kind == "scalar" else self.target(table, name)
                  for name, f in table.tdef.fields.items() if table.has(name)}
        values.update(changes)
        return self.new_table(table.tdef.name, values)

    def new_table(self, tname: str, values: dict[str, object]) -> tuple[int, dict[str, int]]:
        """A table of schema type ``tname`` from field values (as for :meth:`clone`)."""
        tdef = SCHEMA.tables[tname].fields
        fields = {tdef[n].slot: (tdef[n].fmt if tdef[n].kind == "scalar" else "I", v) for n, v in values.items()}
        at, refs = self.table(fields)
        names = {tdef[n].slot: n for n in values}
        return at, {names[slot]: pos for slot, pos in refs.items()}

    # -- output ----------------------------------------------------------------------------------
    def _shift(self) -> int:
        return HEADER + len(self.head) + (-(HEADER + len(self.head)) % ALIGN)

    def _shift_external(self, shift: int) -> None:
        """Data stored after the flatbuffer moves with everything else: its absolute offsets too."""
        for b in self.model.buffers:
            if b.external:
                table = self.model.root.get("buffers")[b.index]
                self.put(table.field_pos("offset"), "Q", b.external.offset + shift, table_span(table), shared_ok=True)
        for sg in self.model.subgraphs:
            for op in sg.operators:
                if op.t.get("large_custom_options_size"):
                    self.put(op.t.field_pos("large_custom_options_offset"), "Q",
                             op.t.get("large_custom_options_offset") + shift, table_span(op.t), shared_ok=True)

    def trusted(self):
        """The input's verified tables where they are in the output. Sound because in-place edits
        never write an offset nor grow a vector: they cannot break what was verified, so checking
        the output walks only the new head (index and semantic checks still run in full)."""
        return self.model.structure.shifted(self._shift()) if self.model.structure else None

    def header_and_head(self) -> bytes:
        shift = self._shift()
        out = bytearray(self.head) + bytes(shift - HEADER - len(self.head))
        for at, target in self.fixups:
            struct.pack_into("<I", out, at - HEADER, target + shift - at)
        return struct.pack("<I", self.root) + self.model.buf[4:8] + bytes(out)

    def write_to(self, dst_fd: int, src_fd: int) -> None:
        """Write the header and head, then the original with the in-place edits applied. Unedited
        stretches are copied by the kernel (copy_file_range), never through this process's
        memory, so a 300 MB model costs about what `cp` does."""
        if self.root is None:
            raise ValueError("the editor has no new root")
        self._shift_external(self._shift())
        _write_all(dst_fd, self.header_and_head())
        pos = 0
        for at, data in sorted(self.edits.items()):
            if at < pos:
                raise ValueError(f"overlapping edits at byte {at}")
            _copy(src_fd, dst_fd, pos, at - pos)
            _write_all(dst_fd, data)
            pos = at + len(data)
        _copy(src_fd, dst_fd, pos, self.model.size - pos)

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
    """Write the patched model (or, with no editor, a copy of ``source``) to ``out`` through
    :func:`fbtool.output.open_output`: a temp file, verified by fbtool's own verifier, vetoed by
    ``check(temp_path)`` if it raises, then put in place; nothing is written on failure."""
    def verified(temp: str) -> None:
        with open_model(temp, trusted=editor.trusted() if editor else None):
            pass
        if check is not None:
            check(temp)

    with open_output(out, check=verified) as f, open(source, "rb") as src:
        if editor is None:
            shutil.copyfileobj(src, f, CHUNK)
        else:
            f.flush()
            editor.write_to(f.fileno(), src.fileno())
