"""Crash-safe file writing: every file is written to a temporary sibling, fsynced, then renamed.

A crash or a kill at any moment leaves either the old file or the new one under the final
name, never a half-written one. ``read_json`` is the matching reader of a JSON file.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

from dltool.errors import CheckpointError

# The process's umask, read once (reading it means setting it): files written here get the
# permissions an ordinary open() would give them, not mkstemp's private 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A temporary file beside ``path``; on a clean exit it is fsynced and renamed into place,
    on an exception removed. Lets long outputs stream to disk and still appear atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        text: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **text) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it into place."""
    with atomic_open(path) as file:
        write(file)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda file: file.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, document: Any) -> None:
    atomic_write_text(path, json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")


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


def json_line(document: Any) -> str:
    """One-line strict JSON (NaN and infinities become null, which every JSON reader takes)."""
    return json.dumps(json_safe(document), allow_nan=False)


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dump_yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=None)


def append_line(path: Path, line: str) -> None:
    """Append one line and make it durable (for logs such as metrics.jsonl)."""
    with open(path, "a", encoding="utf-8") as file:
        file.write(line.rstrip("\n") + "\n")
        file.flush()
        os.fsync(file.fileno())


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
