"""Find .tflite models in files, folders and archives (zip, apk, aar, jar, whl, MediaPipe .task), by content.

A model is recognised by its ``TFL3`` file identifier, not its extension. Archive members
are read straight from the archive, never extracted to disk; nested archives (an AAR
inside an APK) are opened in memory, within size limits so a zip bomb cannot exhaust it.
Locations name members with ``!``: ``app.apk!libs/vision.aar!assets/model.tflite``.
"""
from __future__ import annotations

import io
import os
import zipfile
from typing import Iterator, NamedTuple

IDENTIFIER = b"TFL3"
ZIP_MAGIC = b"PK\x03\x04"
MAX_MEMBER_BYTES = 2 << 30     # a model or nested archive larger than this is reported, not read
MAX_DEPTH = 4                  # archives inside archives inside ...


class Found(NamedTuple):
    location: str
    data: object | None        # bytes of an archive member; None for a plain file (read from `path`)
    path: str | None           # a plain file on disk
    error: str | None = None   # why it could not be read


def is_model_header(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] == IDENTIFIER


def walk(paths: list[str]) -> Iterator[str]:
    """Files under ``paths`` (folders recursively, sorted, symlinked folders not followed)."""
    for top in paths:
        if os.path.isdir(top):
            for root, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
        else:
            yield top


def models_in_file(path: str) -> Iterator[Found]:
    """The models a file is or holds."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        yield Found(path, None, None, e.strerror or str(e))
        return
    if is_model_header(head):
        yield Found(path, None, path)
    elif head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as z:
                yield from _members(z, path, 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
            yield Found(path, None, None, f"unreadable archive: {e}")


def _members(z: zipfile.ZipFile, where: str, depth: int) -> Iterator[Found]:
    for info in z.infolist():
        if info.is_dir():
            continue
        location = f"{where}!{info.filename}"
        try:
            with z.open(info) as member:
                head = member.read(8)
            if not (is_model_header(head) or head.startswith(ZIP_MAGIC)):
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                yield Found(location, None, None, f"member of {info.file_size} bytes is over the "
                                                  f"{MAX_MEMBER_BYTES >> 20} MB limit")
                continue
            with z.open(info) as member:
                data = member.read(MAX_MEMBER_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as e:
            yield Found(location, None, None, f"unreadable archive member: {e}")
            continue
        if len(data) > MAX_MEMBER_BYTES:
            yield Found(location, None, None, "member is larger than its archive entry claims")
        elif is_model_header(data[:8]):
            yield Found(location, data, None)
        elif depth >= MAX_DEPTH:
            yield Found(location, None, None, f"archives nested deeper than {MAX_DEPTH}")
        else:
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as inner:
                    yield from _members(inner, location, depth + 1)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
                yield Found(location, None, None, f"unreadable archive: {e}")
