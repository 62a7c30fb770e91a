"""The one guard for files a command writes where the user points it (``predict --output``,
``export --output``): nothing the user did not name as an output is ever replaced."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from dltool.errors import ReadOnlyError, UsageError, nearest_folder, option
from dltool.rundir.layout import run_dir_of


def check_output(
    path: Path,
    *,
    kind: str,
    force: bool = False,
    same_kind: Callable[[Path], bool] | None = None,
    inputs: Iterable[Path] = (),
    elsewhere: str = "another file",
) -> None:
    """Refuse to write ``path`` where that would destroy something the user did not name as
    an output: never over a symlink, device, FIFO or other non-regular file, one of the
    command's ``inputs`` or a run's own files; over another existing, non-empty file only
    when it is an earlier output of this ``kind`` (``same_kind``; None: none is replaced
    without ``force``) or with ``force``; nor on a read-only filesystem, found before any work.
    ``elsewhere``: what the user may choose instead."""
    refuse_read_only(Path(path).parent)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path} is {_file_type(info.st_mode)}, not a regular file; write {kind} output elsewhere")
    if is_run_file(path) or any(_same_file(path, other) for other in inputs):
        owner = "a run's own file" if is_run_file(path) else f"an input of {kind}"
        raise UsageError(f"{path} is {owner}; write the output to {elsewhere}")
    if info.st_size and not force and not (same_kind is not None and same_kind(path)):
        unlike = f" (and is not a {kind} output)" if same_kind is not None else ""
        raise UsageError(
            f"{path} already exists{unlike}; pass {option('force', True)} to replace it, or choose {elsewhere}"
        )


def refuse_read_only(folder: Path, hint: str = "") -> None:
    """A ``ReadOnlyError`` (with ``hint``; none: the command names its option) when ``folder``,
    or the nearest folder above it that exists, lies on a read-only filesystem or is one this
    user may not write in."""
    nearest = nearest_folder(folder)
    if os.statvfs(nearest).f_flag & os.ST_RDONLY:
        raise ReadOnlyError(_refusal(errno.EROFS, folder), hint)
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise ReadOnlyError(_refusal(errno.EACCES, folder), hint)


def _refusal(code: int, path: Path) -> OSError:
    return OSError(code, os.strerror(code), str(path))


def is_run_file(path: Path) -> bool:
    """Whether ``path`` is one of the files a run keeps its state in (weights, checkpoint,
    config, classes, metrics, summary)."""
    resolved = Path(path).resolve()
    run = run_dir_of(resolved)
    if run is None:
        return False
    return resolved in {run.config, run.metrics, run.summary, run.classes, run.weights, run.last_checkpoint}


def _same_file(path: Path, other: Path) -> bool:
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def _file_type(mode: int) -> str:
    kinds = {stat.S_ISLNK: "a symlink", stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "a device")
