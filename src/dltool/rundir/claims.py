"""Claiming a run directory's name: an exclusive ``mkdir`` (or ``rename``), so two runs started
at once never share a directory and an existing run is never overwritten."""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from dltool.errors import UsageError, option
from dltool.rundir.layout import LOCK, RunDir, holds_only_lock


def create_run_dir(runs_dir: Path, base_name: str, name: str | None = None) -> RunDir:
    """Claim ``runs_dir/name``, or the first free ``runs_dir/<base_name>-<n>`` (n from 1)."""
    if name is not None:
        _check_name(name)
    _refuse_file(runs_dir)
    made = _folders_to_make(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    if name is not None:
        _remove_abandoned(runs_dir / name)  # what a train killed during its setup left
        try:
            (runs_dir / name).mkdir(parents=True)  # parents: a failing run may just have removed runs_dir
        except FileExistsError:
            raise UsageError(
                f"{runs_dir / name} already exists; choose another {option('name')} or {_resume(runs_dir / name)}"
            ) from None
        return RunDir(runs_dir / name, made)
    n = 1 + max((_run_number(p.name, base_name) for p in runs_dir.iterdir()), default=0)
    while True:
        try:
            (runs_dir / f"{base_name}-{n}").mkdir(parents=True)
            return RunDir(runs_dir / f"{base_name}-{n}", made)
        except FileExistsError:
            n += 1


def _refuse_file(runs_dir: Path) -> None:
    """A usage error where ``runs_dir``, or a folder above it, is a file (mkdir's error named no setting)."""
    existing = next((p for p in (runs_dir, *runs_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UsageError(f"{option('runs_dir', str(runs_dir))}: {existing} is a file, not a folder")


@contextmanager
def claimed_with_lock(runs_dir: Path, name: str, lock_name: str) -> Iterator[RunDir]:
    """Claim ``runs_dir/name`` with the file lock ``lock_name`` inside it held until the block ends.

    The folder appears by a rename with its lock already held, so a process that finds it and
    takes that lock (``wait_until_made``) never sees it half made. Raises ``FileExistsError``
    when another process claimed the name first.
    """
    _check_name(name)
    made = _folders_to_make(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=runs_dir))
    with FileLock(building / lock_name):
        try:
            building.rename(runs_dir / name)  # atomic; replaces only an empty folder
        except OSError as error:
            shutil.rmtree(building, ignore_errors=True)
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(runs_dir / name) from None
            raise
        yield RunDir(runs_dir / name, made)


def _remove_abandoned(folder: Path) -> None:
    """Remove ``folder`` if a train killed during its setup left it: nothing in it but its
    training lock, which no process holds (it has nothing to resume). It is renamed away
    with that lock held, so that of two processes reclaiming the name at once only one
    removes it; both then race for the name with the exclusive mkdir, as for a new one."""
    grave = folder.with_name(f".{folder.name}.abandoned-{os.getpid()}")
    try:
        inode = (folder / LOCK).stat().st_ino
        with FileLock(folder / LOCK, timeout=0):
            # still the lock file just locked (not that of a folder made since), and alone
            if (folder / LOCK).stat().st_ino != inode or not holds_only_lock(folder):
                return
            folder.rename(grave)
    except (OSError, Timeout):
        return
    shutil.rmtree(grave, ignore_errors=True)


def wait_until_made(folder: Path, lock_name: str, timeout_s: float) -> bool:
    """Wait until the process that claimed ``folder`` with ``claimed_with_lock`` lets go of it.
    False when it is still held after ``timeout_s``; a folder without the lock file was not
    claimed so (it is not made to hold one)."""
    from filelock import Timeout

    if not (folder / lock_name).is_file():
        return True
    try:
        with FileLock(folder / lock_name, timeout=timeout_s):
            return True
    except Timeout:
        return False


def _resume(run: Path) -> str:
    """Resuming ``run``, as the next step an error offers (in each interface's words)."""
    return f"{option('resume', run, python=f'dltool.resume({str(run)!r})')} to go on with it"


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[\w.+-]+", name) or name in {".", ".."}:
        raise UsageError(
            f"{option('name', repr(name), python=f'name={name!r}')}: use letters, digits, '.', '_', '+' and '-' only"
        )


def _folders_to_make(runs_dir: Path) -> tuple[Path, ...]:
    """``runs_dir`` and those of its parents that do not exist yet, deepest first."""
    return tuple(folder for folder in (runs_dir, *runs_dir.parents) if not folder.exists())


def _run_number(dirname: str, base_name: str) -> int:
    match = re.fullmatch(re.escape(base_name) + r"-(\d+)", dirname)
    return int(match.group(1)) if match else 0
