"""Crash-safe file writing: every file is written to a temporary sibling, fsynced, then renamed.

A crash or a kill at any moment leaves either the old file or the new one under the final
name, never a half-written one. ``read_json`` is the matching reader of a JSON file. A kill
does leave the temporary (``.NAME.XXXXXXXX.tmp``): its writer holds an OS lock on it while it
lives (the kernel drops it when the process dies, even by SIGKILL), so
``sweep_stale_temporaries`` removes those no process holds when their folder is next used. A full disk is a ``DiskFullError`` naming the file and
the filesystem, whatever layer (torch's zip writer included) the OS error surfaced through. ``open_regular`` is the one way dltool opens a
file it reads by a user-given name: a FIFO or a device is refused before it can block.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from dltool.errors import CheckpointError, DiskFullError

# The process's umask, read once (reading it means setting it): files written here get the
# permissions an ordinary open() would give them, not mkstemp's private 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

# What atomic_open names its temporaries: "." + final name + "." + mkstemp's 8 characters
# (lowercase letters, digits, "_") + ".tmp". The sweep matches exactly this, nothing else.
TEMPORARY = re.compile(r"\.(?P<final>.+)\.[a-z0-9_]{8}\.tmp")
# The errors that mean "the filesystem has no room for these bytes".
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


@contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A temporary file beside ``path``; on a clean exit it is fsynced and renamed into place,
    on an exception removed. Lets long outputs stream to disk and still appear atomically."""
    path = Path(path)
    fd, tmp = _held_temporary(path)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        # A name of bytes that are not UTF-8 (held as surrogates) goes out as those bytes, as on stdout.
        text: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8", "newline": "", "errors": "surrogateescape"}
        with os.fdopen(fd, mode, **text) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
            os.replace(tmp, path)  # still held: no sweep can take it for a dead writer's
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        raise_if_disk_full(error, path)
        raise
    fsync_dir(path.parent)


def _held_temporary(path: Path) -> tuple[int, str]:
    """A new temporary beside ``path`` (``TEMPORARY``), under an exclusive lock for as long as it
    is open. A sweep may find it in the moment before the lock and remove it as unheld: then
    the name no longer leads to it, and another is made."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks: a sweep cannot lock it either, so keeps it
            return fd, tmp
        if _names(tmp, fd):
            return fd, tmp
        os.close(fd)


def _names(path: str, fd: int) -> bool:
    """Whether ``path`` leads to the file open as ``fd``."""
    try:
        return os.path.samestat(os.stat(path, follow_symlinks=False), os.fstat(fd))
    except OSError:
        return False


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it into place."""
    with atomic_open(path) as file:
        write(file)


def atomic_copy(source: Path, path: Path) -> None:
    """``source``'s bytes under ``path``, appearing whole: a hard link when the filesystem has
    them (a file replaced with ``os.replace`` keeps its old inode for the link), else a copy."""
    path = Path(path)
    link = path.parent / f".{path.name}.{os.getpid()}.link.tmp"
    try:
        os.link(source, link)
    except OSError:
        with atomic_open(path) as file, open(source, "rb") as original:
            shutil.copyfileobj(original, file)
        return
    os.replace(link, path)
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda file: file.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))  # non-UTF-8 names as escapes, as on stderr


def atomic_write_json(path: Path, document: Any) -> None:
    atomic_write_text(path, json_text(document, indent=2) + "\n")


def file_stamp(path: Path) -> tuple[int, int]:
    """(bytes, mtime in ns) of the file at ``path``, for a cache's fingerprint; (0, 0) when it
    cannot be read (decoding names it)."""
    try:
        status = path.stat()
    except OSError:
        return 0, 0
    return status.st_size, status.st_mtime_ns


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; a ``CheckpointError`` naming the file when it cannot be
    read or is not JSON (a truncated or foreign file is a clear error, never a traceback)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not readable JSON ({error})") from None


def slug(name: str, fallback: str, strip: str = "_") -> str:
    """A file-name part from ``name``'s last path component: every run of characters other
    than letters, digits, ``.``, ``-`` and ``_`` made one ``_``, ``strip`` trimmed from both
    ends; ``fallback`` when nothing is left."""
    return re.sub(r"[^\w.-]+", "_", Path(name).name or name).strip(strip) or fallback


def json_text(document: Any, indent: int | None = None) -> str:
    """Strict JSON (NaN and infinities become null, which every JSON reader takes; one line
    without ``indent``) as people and pipes read it: names as written (``"chiens é"``, which grep
    finds, not ``"chiens \\u00e9"``), to be written as UTF-8; a name of bytes that are not UTF-8
    (held as surrogates) with JSON's escape (``"caf\\udce9"``), which reads back as the same name."""
    text = json.dumps(json_safe(document), indent=indent, allow_nan=False, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def append_line(path: Path, line: str) -> None:
    """Append one line and make it durable (for logs such as metrics.jsonl)."""
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(line.rstrip("\n") + "\n")
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        raise_if_disk_full(error, path)
        raise


def raise_if_disk_full(error: BaseException, path: Path) -> None:
    """Raise ``DiskFullError`` for ``path`` when ``error`` (or what caused it: torch wraps
    the OS error in a RuntimeError) is a full disk or an exceeded quota."""
    if is_disk_full(error):
        raise DiskFullError(path, mount_point(Path(path))) from error


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` or any error behind it is ENOSPC or EDQUOT."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in _DISK_FULL:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem ``path`` lies on (what ``df`` calls it)."""
    current = Path(os.path.abspath(path))
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return current


def sweep_stale_temporaries(folder: Path, of: Collection[str] | None = None) -> list[Path]:
    """Remove the temporaries of killed atomic writes in ``folder`` (not below it): files named
    as ``atomic_open`` names them (``of``: those of these file names only, in a user's folder
    where other programs may name theirs alike) that no process holds (``_held_temporary``),
    however recent. A live writer's is left alone, and anything else. Returns what was removed."""
    try:
        names = [(entry.path, TEMPORARY.fullmatch(entry.name)) for entry in os.scandir(folder)]
    except OSError:
        return []  # no folder yet (or unreadable): nothing of ours to sweep
    ours = [path for path, match in names if match and (of is None or match["final"] in of)]
    return [Path(path) for path in ours if _removed_if_unheld(path)]


def _removed_if_unheld(path: str) -> bool:
    """Remove the regular file ``path`` if no process holds its lock; whether it was."""
    try:  # read-write: an exclusive lock on NFS needs it
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False  # gone meanwhile, a link, or not ours to open
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live writer: BlockingIOError
        if not (stat.S_ISREG(os.fstat(fd).st_mode) and _names(path, fd)):
            return False
        os.unlink(path)  # under the lock: its writer, if it only now locks, makes another
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class NotRegularFileError(OSError):
    """A path that names a FIFO, a device, a socket or a folder where a file was expected."""


def open_regular(path: str | Path) -> IO[bytes]:
    """Open ``path`` for reading only if it is a regular file (after following links).

    Opened non-blocking first and checked with fstat on the open descriptor (no race with
    a rename): a FIFO never blocks the caller, a device is never read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(errno.EINVAL, f"not a regular file ({_kind(mode)})", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket"}
    kinds |= {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    return next((name for test, name in kinds.items() if test(mode)), "a special file")


def fsync_dir(directory: Path) -> None:
    """Make a rename into ``directory`` durable (a no-op where the filesystem cannot open a folder)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
