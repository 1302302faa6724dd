"""Find .tflite models in files, folders and archives (zip, apk, aar, jar, whl, MediaPipe .task), by content.

A model is recognised by its ``TFL3`` file identifier, not its extension. Archive members are
read straight from the archive, never extracted to disk; nested archives (an AAR inside an APK)
are opened from memory, or from an unlinked temp file when large. Locations name members with
``!``: ``app.apk!libs/vision.aar!assets/model.tflite``.

Hostile trees and archives are bounded by design:
- the walk is iterative (any depth), in sorted order, and opens only regular files: a FIFO or a
  device is never opened, symlinked folders are not followed;
- a member is looked at by its first bytes; only one that starts like a model or an archive is
  read whole, in chunks, into memory or (past :data:`SPILL_BYTES`) an unlinked temp file;
- each file given or found has a :class:`Budget`: bytes decompressed from it, at most
  :data:`RATIO` times its size plus :data:`BASE_BYTES` (zip bombs, overlapping entries), and
  :data:`SECONDS` of reading. Past either, the rest of it is not read: a finding, and the audit goes on.
"""
from __future__ import annotations

import io
import mmap
import os
import stat
import tempfile
import time
import zipfile
from typing import Iterator, NamedTuple

IDENTIFIER = b"TFL3"
ZIP_MAGIC = b"PK\x03\x04"
MAX_MEMBER_BYTES = 4 << 30     # a model or nested archive larger than this is reported, not read
MAX_DEPTH = 4                  # archives inside archives inside ...
SPILL_BYTES = 64 << 20         # members larger than this are read into an unlinked temp file, not memory
RATIO = 100                    # decompressed bytes per byte of the file (weights compress 1-10x; bombs far more)
BASE_BYTES = 256 << 20
SECONDS = 120.0
CHUNK = 1 << 20
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
                   RuntimeError, KeyError)


class Found(NamedTuple):
    location: str
    data: object | None        # bytes or mmap of an archive member; None for a plain file (read from `path`)
    path: str | None           # a plain file on disk
    error: str | None = None   # why it could not be read
    kind: str = "malformed"    # with error: "malformed" (a model, or what claims to be one) or "unreadable"


class BudgetExceeded(Exception):
    """A file expands past its budget: the rest of it is not read."""


class Budget:
    """What one file given or found in the walk may cost, nested archives included."""

    def __init__(self, size: int):
        self.left = RATIO * size + BASE_BYTES
        self.deadline = time.monotonic() + SECONDS

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise BudgetExceeded(f"it expands past {RATIO} times its size (a zip bomb?): the rest is not read")
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(f"reading it took more than {SECONDS:.0f} s: the rest is not read")


def is_model_header(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] == IDENTIFIER


def walk(paths: list[str]) -> Iterator[str]:
    """Files under ``paths`` in sorted order: folders walked iteratively (symlinked folders not
    followed), regular files only (a FIFO, socket or device is skipped); a path given explicitly
    is yielded whatever it is, so :func:`models_in_file` can say what it is."""
    for top in paths:
        if not os.path.isdir(top):
            yield top
            continue
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            subfolders = []
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subfolders.append(entry.path)
                    elif entry.is_file():          # follows a symlink to a regular file
                        yield entry.path
                except OSError:
                    continue
            stack.extend(reversed(subfolders))


def _open_regular(path: str):
    """A plain file, opened without blocking (a FIFO would wait for a writer) and only if regular."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
                "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
            raise OSError(f"{kind}, not a regular file: not read")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def models_in_file(path: str) -> Iterator[Found]:
    """The models a file is or holds."""
    try:
        f, size = _open_regular(path)
    except OSError as e:
        yield Found(path, None, None, e.strerror or str(e), "unreadable")
        return
    with f:
        head = f.read(8)
        if is_model_header(head):
            yield Found(path, None, path)
        elif head.startswith(ZIP_MAGIC):
            budget = Budget(size)
            try:
                f.seek(0)
                with zipfile.ZipFile(f) as z:
                    yield from _members(z, path, 1, budget)
            except BudgetExceeded as e:
                yield Found(path, None, None, str(e), "unreadable")
            except _ARCHIVE_ERRORS as e:
                yield Found(path, None, None, f"unreadable archive: {e}", "unreadable")


def _read(member, size_hint: int, budget: Budget):
    """A member's bytes, in chunks charged to the budget: bytes, or an mmap of an unlinked temp
    file past SPILL_BYTES. Raises BudgetExceeded, or ValueError past MAX_MEMBER_BYTES."""
    chunks, total, spill = [], 0, None
    try:
        while chunk := member.read(CHUNK):
            budget.spend(len(chunk))
            total += len(chunk)
            if total > MAX_MEMBER_BYTES:
                raise ValueError(f"member is larger than {MAX_MEMBER_BYTES >> 20} MB")
            if spill is None and total > SPILL_BYTES:
                spill = tempfile.TemporaryFile(prefix="fbtool-member-")
                spill.writelines(chunks)
                chunks = []
            if spill is not None:
                spill.write(chunk)
            else:
                chunks.append(chunk)
        if spill is None:
            return b"".join(chunks)
        spill.flush()
        return mmap.mmap(spill.fileno(), 0, access=mmap.ACCESS_READ)
    finally:
        if spill is not None:
            spill.close()       # the mmap keeps the unlinked file's pages


def _members(z: zipfile.ZipFile, where: str, depth: int, budget: Budget) -> Iterator[Found]:
    for info in z.infolist():
        if info.is_dir():
            continue
        location, head = f"{where}!{info.filename}", b""
        if info.flag_bits & 0x1:       # encrypted: its first bytes cannot be read, so neither can it
            yield Found(location, None, None, "encrypted member: cannot tell whether it holds a model", "unreadable")
            continue
        try:
            with z.open(info) as member:
                head = member.read(8)
                budget.spend(len(head))
                if not (is_model_header(head) or head.startswith(ZIP_MAGIC)):
                    continue
                if info.file_size > MAX_MEMBER_BYTES:
                    yield Found(location, None, None, f"member of {info.file_size} bytes is over the "
                                                      f"{MAX_MEMBER_BYTES >> 20} MB limit", "unreadable")
                    continue
                data = _read(_Prefixed(head, member), info.file_size, budget)
        except BudgetExceeded:
            raise
        except _ARCHIVE_ERRORS as e:
            yield Found(location, None, None, f"unreadable archive member: {e}",
                        "malformed" if is_model_header(head) else "unreadable")
            continue
        if is_model_header(data[:8]):
            yield Found(location, data, None)
        elif depth >= MAX_DEPTH:
            yield Found(location, None, None, f"archives nested deeper than {MAX_DEPTH}", "unreadable")
        else:
            try:
                with zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data) as inner:
                    yield from _members(inner, location, depth + 1, budget)
            except BudgetExceeded:
                raise
            except _ARCHIVE_ERRORS as e:
                yield Found(location, None, None, f"unreadable archive: {e}", "unreadable")


class _Prefixed:
    """A member stream with its first bytes, already read, put back in front."""

    def __init__(self, head: bytes, rest):
        self.head, self.rest = head, rest

    def read(self, n: int) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            return out
        return self.rest.read(n)
