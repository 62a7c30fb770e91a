"""`dltool stats` progress on stderr: a bar per pass on a terminal (gone when it ends),
plain lines otherwise (one when a pass starts, then one every few seconds)."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from dltool.commands._output import stderr, stderr_observer

# What each pass counts, for the lines.
UNITS = {"decoding": "image files", "measuring": "training images", "hashing": "images"}


class SilentPasses:
    def __call__(self, phase: str, done: int, total: int) -> None:
        """Nothing to show."""


class PlainPasses(SilentPasses):
    """For logs and batch jobs."""

    EVERY_S = 5.0

    def __init__(self) -> None:
        self.phase, self.last_line = "", 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase != self.phase:
            self.phase, self.last_line = phase, now
            stderr.print(f"{phase} {total:,} {UNITS.get(phase, 'items')}", soft_wrap=True)
        elif now - self.last_line >= self.EVERY_S and done < total:
            self.last_line = now
            stderr.print(f"{phase}: {done:,} of {total:,}", soft_wrap=True)


class RichPasses(SilentPasses):
    """For a terminal: one transient bar per pass."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(phase, total=total)
        self.bar.update(self.tasks[phase], completed=done, total=total)


def stats_progress() -> AbstractContextManager[SilentPasses]:
    """The display that suits stderr: plain lines off a terminal, else live bars."""
    return stderr_observer(False, SilentPasses, PlainPasses, RichPasses)
