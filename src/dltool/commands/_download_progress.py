"""Download progress on stderr: rich bars on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from dltool.commands._output import say, stderr, stderr_observer
from dltool.data.download import DownloadObserver


def _size(count: int | None) -> str:
    return "unknown size" if count is None else f"{count / 1e6:,.1f} MB"


class PlainDownloadProgress(DownloadObserver):
    """For logs and batch jobs: a line per transfer and per message, and one every few seconds."""

    EVERY_S = 5.0

    def __init__(self) -> None:
        self.last_line = 0.0

    def on_transfer(self, file: str, url: str, done: int, total: int | None) -> None:
        resumed = f", resuming at {_size(done)}" if done else ""
        say(f"downloading {url} ({_size(total)}{resumed})")
        self.last_line = time.monotonic()

    def on_bytes(self, file: str, done: int, total: int | None) -> None:
        if (now := time.monotonic()) - self.last_line >= self.EVERY_S:
            self.last_line = now
            share = f" ({100 * done / total:.0f}%)" if total else ""
            say(f"{file}: {_size(done)}{share}")

    def on_message(self, text: str) -> None:
        say(text)


class RichDownloadProgress(DownloadObserver):
    """For a terminal: one bar per file, messages printed above the bars."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=stderr,
        )
        self.tasks: dict[str, TaskID] = {}

    def on_transfer(self, file: str, url: str, done: int, total: int | None) -> None:
        if file not in self.tasks:
            self.tasks[file] = self.bar.add_task(file, total=total)
        self.bar.update(self.tasks[file], completed=done, total=total)

    def on_bytes(self, file: str, done: int, total: int | None) -> None:
        self.bar.update(self.tasks[file], completed=done, total=total)

    def on_message(self, text: str) -> None:
        say(text)  # the bar's console: printed above the bars


def download_progress(quiet: bool) -> AbstractContextManager[DownloadObserver]:
    """The observer that suits stderr: nothing, plain lines, or live bars."""
    return stderr_observer(quiet, DownloadObserver, PlainDownloadProgress, RichDownloadProgress)


@contextmanager
def downloading(quiet: bool) -> Iterator[DownloadObserver]:
    """Download progress for the block, whose SIGINT or SIGTERM ends the command at once (exit
    130/143) saying how to resume: a download is safe to cut anywhere, a rerun picks it up."""
    from dltool.commands._signals import stop_on_signals

    with stop_on_signals(None) as received, download_progress(quiet) as observer:
        try:
            yield observer
        except KeyboardInterrupt:
            stderr.print("interrupted: run the same command again to resume the download", soft_wrap=True)
            raise typer.Exit(128 + (received[0] if received else signal.SIGINT)) from None
