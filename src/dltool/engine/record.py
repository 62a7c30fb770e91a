"""What a run writes into its run dir besides metrics.jsonl's records: the resolved config,
the classes, last.pt, the best weights' metadata, and summary.json (with TensorBoard's end)."""

from __future__ import annotations

import time
from contextlib import nullcontext, suppress
from typing import Any

import torch

from dltool._io import atomic_copy
from dltool._version import __version__
from dltool.engine.setup import Components
from dltool.engine.state import Progress, intact_checkpoint, save_state, versions
from dltool.engine.trackers import Trackers
from dltool.errors import DiskFullError
from dltool.rundir import RunDir, Summary, WeightsMetadata


class Clock:
    """Wall time of a run over all its sessions."""

    def __init__(self, before: float):
        self.before, self.started = before, time.perf_counter()

    def total(self) -> float:
        return self.before + time.perf_counter() - self.started


def save_progress(run: RunDir | None, parts: Components, progress: Progress, clock: Clock) -> None:
    """last.pt, written by rank 0 (``run``; None on the other ranks, which send it their states)."""
    progress.wall_time_s = clock.total()
    save_state(run.last_checkpoint if run else None, parts, progress)


def keep_checkpoints(run: RunDir, progress: Progress, keep: int) -> None:
    """After an epoch's last.pt: keep it as ``checkpoints/epoch-N.pt`` and drop the kept
    epochs that are neither among the last ``keep`` nor the best one (``keep`` 0: none kept)."""
    if not keep:
        return
    atomic_copy(run.last_checkpoint, run.epoch_checkpoint(progress.epoch))
    best = progress.best["epoch"] if progress.best else None
    for epoch, path in run.epoch_checkpoints().items():
        if epoch <= progress.epoch - keep and epoch != best:
            path.unlink(missing_ok=True)


def write_run_files(run: RunDir, parts: Components, progress: Progress) -> None:
    v = versions()
    header = (
        f"# Resolved config of run {run.path.name} (dltool {v['dltool']}, torch {v['torch']}).\n"
        f"# `dltool train {run.config}` reproduces it.\n"
    )
    run.write_config(header, parts.config.to_dict())
    run.write_classes(parts.data.classes)
    # metrics.jsonl may hold an epoch the checkpoint does not (killed in between): realign.
    run.write_metrics(progress.history)


def finish(run: RunDir | None, board: Trackers | None, summary: Summary, confusion: torch.Tensor | None = None) -> None:
    """summary.json, and the scores and confusion matrix that end the trackers' records."""
    if run:
        run.write_summary(summary)
    if board:
        board.log_end(summary.to_dict(), confusion)


def finish_failed(run: RunDir | None, board: Trackers | None, error: BaseException, summary: Summary) -> None:
    """summary.json of a failed run. On a full disk, a second disk-full error (writing the
    summary) does not hide the first, and the error says which checkpoint survived."""
    with suppress(DiskFullError) if isinstance(error, DiskFullError) else nullcontext():
        finish(run, board, summary)
    if isinstance(error, DiskFullError) and run:
        raise error.with_note(intact_checkpoint(run.last_checkpoint)) from error


def weights_metadata(parts: Components) -> dict[str, str]:
    """Enough to rebuild and feed the model from this one file (see evaluation.trained)."""
    metadata = WeightsMetadata(parts.config.to_dict(), parts.data.classes, parts.data.in_shape, __version__)
    return metadata.to_metadata()


def summary_record(
    status: str, reason: str, progress: Progress, clock: Clock, base: dict[str, Any], **extra: Any
) -> Summary:
    """summary.json's record: ``extra`` holds ``test`` (a scored run) or ``error`` (a failed one)."""
    return Summary(
        status=status,
        stop_reason=reason,
        epochs_run=progress.epoch,
        best=progress.best,
        final=progress.history[-1] if progress.history else None,
        **extra,
        wall_time_s=round(clock.total(), 3),
        setup_time_s=round(progress.setup_time_s, 3),
        **base,
        dltool_version=__version__,
        torch_version=str(torch.__version__),
    )
