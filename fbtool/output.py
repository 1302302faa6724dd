"""Writing a file the user named, and nothing else.

Every command that writes (``patch -o``, ``--in-place``, ``report -o``, ``graph -o``, ``audit -o``,
``--write-baseline``) goes through :func:`open_output`:

- a regular file (new or existing) is written to a temp file in its folder, flushed, fsynced,
  checked, then renamed over it: a reader never sees half a file, a failure leaves no file
  behind. An existing file keeps its permission bits; a new one gets what ``open()`` would
  give it (0666 less the umask), like ``cp``;
- a symlink is written through to its target (like ``cp``), never replaced by a file; a
  dangling one is refused;
- a device, FIFO or socket (``-o /dev/stdout``, ``/dev/null``) is streamed to as it is: the
  content is still made and checked in a temp file first, then copied into it;
- a folder, a missing folder, a read-only place: one line, ``cannot write PATH: reason``.

Temp files are named ``.<name>.<pid>.fbtool-tmp``; a run that was killed leaves one behind, and
the next write to the same path removes those whose process is gone.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from typing import Callable, Iterator

from .errors import UsageError

SUFFIX = ".fbtool-tmp"
CHUNK = 1 << 20


class OutputError(UsageError):
    """An output path fbtool cannot or will not write: ``cannot write PATH: reason``."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _umask_mode() -> int:
    """0666 less the process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


class Destination:
    """What ``path`` is, decided once: where to write and how."""

    def __init__(self, path: str):
        self.path = path
        try:
            st = os.stat(path)      # through symlinks: what a write would reach
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise OutputError(path, _reason(e)) from None
        if st is None and os.path.islink(path):
            raise OutputError(path, f"it is a symlink to {os.path.realpath(path)}, which does not exist")
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(path, "it is a folder")
        self.stream = st is not None and not stat.S_ISREG(st.st_mode)
        # a device or pipe is opened by the name given (/dev/stdout resolves to no real path)
        self.target = path if self.stream else os.path.realpath(path)
        self.folder = os.path.dirname(self.target)
        self.mode = stat.S_IMODE(st.st_mode) if st is not None and not self.stream else _umask_mode()
        if not self.stream and not os.path.isdir(self.folder):
            raise OutputError(path, f"no such folder {self.folder}")

    def same_file(self, other: str) -> bool:
        try:
            return os.path.samefile(self.target, other)
        except OSError:
            return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # exists, but not ours to signal
        return True
    return True


def _sweep(folder: str, name: str) -> None:
    """Remove temp files for ``name`` left by fbtool runs that were killed."""
    prefix = f".{name}."
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix) and e.name.endswith(SUFFIX)]
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(prefix):-len(SUFFIX)]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _temp(dest: Destination) -> tuple[int, str]:
    name = os.path.basename(dest.target)
    folder = tempfile.gettempdir() if dest.stream else dest.folder
    _sweep(folder, name)
    temp = os.path.join(folder, f".{name}.{os.getpid()}{SUFFIX}")
    try:
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as e:
        raise OutputError(dest.path, _reason(e)) from None
    return fd, temp


@contextlib.contextmanager
def open_output(path: str | os.PathLike, binary: bool = True,
                check: Callable[[str], None] | None = None) -> Iterator:
    """A file object to write ``path``'s new content into; the content lands there when the block
    ends without an exception (after ``check(temp_path)``, which vetoes by raising), and nowhere
    otherwise. Raises :class:`OutputError` for a path that cannot be written."""
    dest = Destination(os.fspath(path))
    fd, temp = _temp(dest)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            try:
                yield f
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS):
                    raise OutputError(dest.path, _reason(e)) from None
                raise
        if check is not None:
            check(temp)
        _finish(dest, temp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _finish(dest: Destination, temp: str) -> None:
    try:
        if dest.stream:
            with open(temp, "rb") as src, open(dest.target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            return
        os.chmod(temp, dest.mode)
        os.replace(temp, dest.target)
    except OSError as e:
        raise OutputError(dest.path, _reason(e)) from None
    _sync_folder(dest.folder)


def _sync_folder(folder: str) -> None:
    """Make the rename durable; some file systems cannot fsync a folder, and the rename is done anyway."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    with open_output(path, binary=False) as f:
        f.write(text)
