"""The run directory: the shared record that train writes and later commands read.

See DESIGN.md (Run directory). Names are claimed with an exclusive ``mkdir``, so two runs
started at once never share a directory and an existing run is never overwritten.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from dltool._io import append_line, atomic_write_json, atomic_write_text, json_line
from dltool.errors import CheckpointError, RunInUseError, UsageError


@dataclass(frozen=True)
class RunDir:
    """Paths of the files in one run directory."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def classes(self) -> Path:
        return self.path / "classes.json"

    @property
    def weights(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def tensorboard(self) -> Path:
        """The folder of TensorBoard event files (``train.tensorboard``)."""
        return self.path / "tensorboard"

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl with ``records`` (on resume: exactly the checkpoint's history)."""
        atomic_write_text(self.metrics, "".join(json_line(r) + "\n" for r in records))

    def append_metrics(self, record: dict[str, Any]) -> None:
        append_line(self.metrics, json_line(record))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary, summary)

    @contextmanager
    def training(self) -> Iterator[None]:
        """Hold the run's lock while training writes it, so a ``--resume`` of a run that is
        still being trained is refused instead of interleaving two writers. The lock is an
        OS file lock: a killed process releases it. Once held, temporary files that a killed
        writer left behind (see ``dltool._io``) are swept."""
        lock = FileLock(self.path / ".train.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunInUseError(
                f"{self.path} is being trained by another process; wait for it to end (or stop it) before resuming"
            ) from None
        try:
            self._sweep_partial_files()
            yield
        finally:
            lock.release()

    def _sweep_partial_files(self) -> None:
        # Only training's own files: eval or visualize may be writing theirs right now.
        for final in (self.config, self.classes, self.metrics, self.summary, self.weights, self.last_checkpoint):
            for partial in final.parent.glob(f".{final.name}.*.tmp"):
                partial.unlink(missing_ok=True)


def create_run_dir(runs_dir: Path, base_name: str, name: str | None = None) -> RunDir:
    """Claim ``runs_dir/name``, or the first free ``runs_dir/<base_name>-<n>`` (n from 1)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    if name is not None:
        if not re.fullmatch(r"[\w.+-]+", name) or name in {".", ".."}:
            raise UsageError(f"--name {name!r}: use letters, digits, '.', '_', '+' and '-' only")
        try:
            (runs_dir / name).mkdir()
        except FileExistsError:
            raise UsageError(f"{runs_dir / name} already exists; choose another --name or --resume it") from None
        return RunDir(runs_dir / name)
    n = 1 + max((_run_number(p.name, base_name) for p in runs_dir.iterdir()), default=0)
    while True:
        try:
            (runs_dir / f"{base_name}-{n}").mkdir()
            return RunDir(runs_dir / f"{base_name}-{n}")
        except FileExistsError:
            n += 1


def open_run_dir(path: Path) -> RunDir:
    """An existing run directory, checked to hold a config."""
    run = RunDir(Path(path))
    if not run.config.is_file():
        raise CheckpointError(f"{path}: not a dltool run directory (no config.yaml)")
    return run


def is_dltool_output(folder: Path) -> bool:
    """Whether ``folder`` is one that dltool writes: a run dir (config.yaml beside
    metrics.jsonl or summary.json, or a training lock), a tune study dir (study.json), or a
    runs dir that holds only those. Image-folder datasets leave these out, so a runs dir
    kept inside a dataset never becomes a class (nor its plots training images)."""
    if _is_run_or_study(folder):
        return True
    try:
        children = [folder / name for name in os.listdir(folder) if not name.startswith(".")]
    except OSError:
        return False
    return bool(children) and all(child.is_dir() and _is_run_or_study(child) for child in children)


def _is_run_or_study(folder: Path) -> bool:
    try:
        names = set(os.listdir(folder))
    except OSError:
        return False
    if names & {".train.lock", "study.json"}:
        return True
    return "config.yaml" in names and bool(names & {"metrics.jsonl", "summary.json"})


def _run_number(dirname: str, base_name: str) -> int:
    match = re.fullmatch(re.escape(base_name) + r"-(\d+)", dirname)
    return int(match.group(1)) if match else 0
