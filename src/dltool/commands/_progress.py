"""Training progress on stderr: a rich bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

import dltool.tasks as tasks
from dltool._text import counted
from dltool.commands._output import say, stderr, stderr_observer
from dltool.engine.observer import Observer


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """'epoch 3/20  train_loss 0.1234  ...' with the metrics this task measures."""
    known = tasks.record_metrics()
    metrics = "  ".join(f"{k} {_number(value)}" for k, value in record.items() if k in known)  # record order
    return f"epoch {record['epoch']}/{epochs}  {metrics}  lr {record['lr']:.3g}  {record['epoch_time_s']:.2f}s"


def _number(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4f}"


def start_line(info: dict[str, Any]) -> str:
    resumed = f", resumed after epoch {info['resumed_at']}" if info["resumed_at"] else ""
    return (
        f"training {info['run_dir']} on {info['device']} (amp {info['amp']}, "
        f"{counted(info['threads'], 'CPU thread')}): "
        f"{counted(info['epochs'], 'epoch')} × {counted(info['batches'], 'batch', 'batches')}{resumed}"
    )


class PlainProgress(Observer):
    """For logs and batch jobs: a line at start, per epoch and per message."""

    def __init__(self) -> None:
        self.epochs = 0

    def on_start(self, info: dict[str, Any]) -> None:
        self.epochs = info["epochs"]
        say(start_line(info))

    def on_epoch(self, record: dict[str, Any]) -> None:
        say(epoch_line(record, self.epochs))

    def on_message(self, text: str) -> None:
        say(text)


class RichProgress(PlainProgress):
    """For a terminal: an epoch bar with the running loss, epoch lines printed above it."""

    REFRESH_S = 0.1

    def __init__(self) -> None:
        super().__init__()
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
        )
        self.task: TaskID | None = None
        self.last_draw = 0.0

    def on_start(self, info: dict[str, Any]) -> None:
        super().on_start(info)
        self.task = self.bar.add_task("train", total=info["batches"], epoch="-", loss="-")

    def on_step(self, epoch: int, batch: int, batches: int, running_loss: Callable[[], float]) -> None:
        now = time.monotonic()
        if now - self.last_draw < self.REFRESH_S and batch < batches:
            return  # reading the loss syncs with the GPU: only as often as we redraw
        self.last_draw = now
        assert self.task is not None  # on_start came first
        self.bar.update(
            self.task, completed=batch, total=batches, epoch=f"{epoch + 1}/{self.epochs}", loss=f"{running_loss():.4f}"
        )


def training_progress(quiet: bool, live: bool = True) -> AbstractContextManager[Observer]:
    """The observer that suits stderr: nothing, plain lines, or (``live``) a live bar."""
    return stderr_observer(quiet, Observer, PlainProgress, RichProgress if live else PlainProgress)
