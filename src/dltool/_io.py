"""Crash-safe file writing: every file is written to a temporary sibling, fsynced, then renamed.

A crash or a kill at any moment leaves either the old file or the new one under the final
name, never a half-written one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

# The process's umask, read once (reading it means setting it): files written here get the
# permissions an ordinary open() would give them, not mkstemp's private 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """A temporary file beside ``path``; on a clean exit it is fsynced and renamed into place,
    on an exception removed. Lets long outputs stream to disk and still appear atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows opening a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
