"""The run directory: the shared record that train writes and later commands read.

This is the only code that knows the layout (DESIGN.md, Run directory): every other module
asks a ``RunDir`` for a path or a record. Names are claimed in ``dltool.rundir.claims``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from dltool._io import append_line, atomic_write_json, atomic_write_text, json_text, read_json, sweep_stale_temporaries
from dltool._safetensors import Header, read_header
from dltool._yaml import dump_yaml, load_yaml
from dltool.errors import CheckpointError, RunInUseError
from dltool.rundir.records import EpochRecord, Summary, checked_classes

CONFIG, WEIGHTS, LAST = "config.yaml", "model.safetensors", "last.pt"
LOCK = ".train.lock"  # held while training writes the run (see RunDir.training)
STUDY = "study.json"  # the mark of a tune study dir (written by dltool.tuning.study)
BEST = "best.yaml"  # a study's best trial's config, for `dltool train STUDY/best.yaml`
CV = "cv.json"  # the record of a cross-validation's parent folder


@dataclass(frozen=True)
class RunDir:
    """One run directory: the paths of its files, and its records read and written."""

    path: Path
    # The folders above ``path`` that create_run_dir made for it, deepest first: a run
    # discarded before it was used takes them along if they are left empty.
    made: tuple[Path, ...] = field(default=(), compare=False)

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def lr_curve(self) -> Path:
        """A ``train --find-lr`` dir's range test (it holds no metrics nor summary)."""
        return self.path / "lr_find.json"

    @property
    def classes(self) -> Path:
        return self.path / "classes.json"

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / LAST

    def epoch_checkpoint(self, epoch: int) -> Path:
        """The training state after ``epoch`` (from 1), kept by ``train.keep_checkpoints``."""
        return self.path / "checkpoints" / f"epoch-{epoch:04d}.pt"

    def epoch_checkpoints(self) -> dict[int, Path]:
        """The kept epochs' checkpoints, by epoch."""
        found = (re.fullmatch(r"epoch-(\d+)\.pt", p.name) for p in (self.path / "checkpoints").glob("epoch-*.pt"))
        return {int(m.group(1)): self.epoch_checkpoint(int(m.group(1))) for m in found if m}

    @property
    def tensorboard(self) -> Path:
        """The folder of TensorBoard event files (``train.tensorboard``)."""
        return self.path / "tensorboard"

    @property
    def mlflow(self) -> Path:
        """The MLflow run this run reports to (``train.tracking: mlflow``): its id, for resume."""
        return self.path / "mlflow.json"

    @property
    def plots(self) -> Path:
        """The default folder of ``dltool visualize``'s plots and report."""
        return self.path / "plots"

    def export_file(self, suffix: str) -> Path:
        """Where ``dltool export`` writes the model in the format of file ``suffix`` by default."""
        return self.path / "export" / f"model{suffix}"

    def eval_report(self, stem: str) -> Path:
        """``eval-<stem>.json``: ``stem`` is the split, or ``<dataset>-<split>`` for other data."""
        return self.path / f"eval-{stem}.json"

    def read_config(self) -> dict[str, Any]:
        """``config.yaml`` as a raw tree (validate it with ``dltool.config``)."""
        try:
            document = load_yaml(self.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as error:
            raise self._damaged(f"{self.config}: not a readable config ({error})".replace("\n", " ")) from None
        if not isinstance(document, dict):
            raise self._damaged(f"{self.config}: not a dltool config")
        return document

    def read_summary(self) -> dict[str, Any] | None:
        """``summary.json`` as written (None: not written yet, the run is going or was killed);
        ``Summary.from_dict`` types it. A damaged one is an error that says how to write it again."""
        try:
            return read_json_object(self.summary)
        except CheckpointError as error:
            raise self._damaged(str(error), "remove it to read the run without it") from None

    def read_classes(self) -> list[str] | None:
        """The class names of ``classes.json`` (None when it is missing)."""
        try:
            return checked_classes(self.classes, "classes", read_json(self.classes)) if self.classes.is_file() else None
        except CheckpointError as error:
            raise self._damaged(str(error)) from None

    def _damaged(self, message: str, otherwise: str = "") -> CheckpointError:
        """A damaged record's error, with the next step: a resume writes it again from last.pt."""
        again = f"dltool train --resume {self.path} writes it again" if self.last_checkpoint.is_file() else otherwise
        return CheckpointError(f"{message}; {again}" if again else message)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The per-epoch records of ``metrics.jsonl`` (none when it is missing). A last line cut
        short by a kill is ignored; the records before it are what the run finished."""
        if not self.metrics.is_file():
            return []
        records = []
        for line in self.metrics.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(record, dict) and "epoch" in record:
                records.append(record)
        return records

    def weights_header(self) -> Header:
        """``model.safetensors``'s header (tensor shapes and metadata), without its tensors."""
        return read_weights_header(self.weights)

    def write_config(self, header: str, config: dict[str, Any]) -> None:
        atomic_write_text(self.config, header + dump_yaml(config))

    def write_classes(self, classes: list[str]) -> None:
        atomic_write_json(self.classes, classes)

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl with ``records`` (on resume: exactly the checkpoint's history)."""
        atomic_write_text(self.metrics, "".join(json_text(r) + "\n" for r in records))

    def append_metrics(self, record: EpochRecord) -> None:
        append_line(self.metrics, json_text(record.to_dict()))

    def write_summary(self, summary: Summary) -> None:
        atomic_write_json(self.summary, summary.to_dict())

    @contextmanager
    def training(self) -> Iterator[None]:
        """Hold the run's lock while training writes it, so a ``--resume`` of a run that is
        still being trained is refused instead of interleaving two writers. The lock is an
        OS file lock: a killed process releases it. Once held, temporary files that a killed
        writer left behind (see ``dltool._io``) are swept."""
        lock = FileLock(self.path / LOCK)
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

    @contextmanager
    def discarded_if_unused(self) -> Iterator[None]:
        """Whatever fails inside removes this run dir if nothing but its training lock is in
        it: a run that stopped before writing its first file (its data could not be prepared,
        say) leaves no empty folder behind to take its name. Anything else in it keeps it."""
        try:
            yield
        except BaseException:
            self._discard_if_unused()
            raise

    def _discard_if_unused(self) -> None:
        try:
            if set(os.listdir(self.path)) - {LOCK}:
                return
            (self.path / LOCK).unlink(missing_ok=True)
            self.path.rmdir()
        except OSError:
            return  # gone already, or someone else's file arrived: leave it
        self._remove_made_folders()

    def discard(self) -> None:
        """Remove this run dir with everything in it, and the folders made for it if left empty."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._remove_made_folders()

    def _remove_made_folders(self) -> None:
        for folder in self.made:
            try:
                folder.rmdir()
            except OSError:
                return  # another run's dir is in it now, or it is gone

    def _sweep_partial_files(self) -> None:
        # Training's own, however named: under the lock no one else writes them. Other commands'
        # (eval's reports, visualize's plots, export's files): those no live writer holds.
        for folder in (self.path, self.plots, self.path / "export"):
            sweep_stale_temporaries(folder)
        for final in (self.config, self.classes, self.metrics, self.summary, self.weights, self.last_checkpoint):
            for partial in final.parent.glob(f".{final.name}.*.tmp"):
                partial.unlink(missing_ok=True)
        for partial in self.last_checkpoint.parent.glob(".epoch-*.pt.*.tmp"):
            partial.unlink(missing_ok=True)


def cv_record(parent: Path) -> Path:
    """``cv.json`` of a cross-validation's parent folder (``train --folds``), beside its fold runs."""
    return parent / CV


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory (it holds a ``config.yaml``). A path this user may
    not look into is none (``Path.is_file`` raises there before Python 3.12)."""
    return os.path.isfile(Path(path) / CONFIG)


def run_dir_of(file: Path) -> RunDir | None:
    """The run dir holding ``file`` (``RUN/model.safetensors`` or ``RUN/checkpoints/last.pt``)."""
    for candidate in (file.parent, file.parent.parent):
        if is_run_dir(candidate):
            return RunDir(candidate)
    return None


@contextmanager
def stand_in_named(weights: Path) -> Iterator[None]:
    """A ``CheckpointError`` raised in the block, for a run's best weights (``model.safetensors``),
    names the checkpoint that every command takes instead, when the run has one."""
    try:
        yield
    except CheckpointError as error:
        run = run_dir_of(weights)
        if run is None or weights.name != run.weights.name or not run.last_checkpoint.is_file():
            raise
        stand_in = f"the run's last epoch can stand in for its best: give {run.last_checkpoint} instead"
        raise CheckpointError(f"{error}; {stand_in}") from None


def holds_only_lock(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but a run's training lock: what a train stopped
    during its setup leaves when it cannot clean up (SIGKILL)."""
    try:
        return os.listdir(folder) == [LOCK]
    except OSError:
        return False


def read_weights_header(path: Path) -> Header:
    """The header of safetensors weights at ``path``; an unreadable one is a ``CheckpointError``."""
    try:
        return read_header(path)
    except PermissionError:  # the file may be fine: the CLI names the permission missing
        raise
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not readable safetensors weights ({error})") from None


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is missing or holds another JSON value
    (an invalid file is a ``CheckpointError``)."""
    if not path.is_file():
        return None
    document = read_json(path)
    return document if isinstance(document, dict) else None
