"""How the engine reports progress without printing: an observer the caller implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Observer:
    """No-op base: override what you want to show. The CLI renders these on stderr."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Once, before the first step: run dir, device, epochs, batches per epoch, ..."""

    def on_step(self, epoch: int, batch: int, batches: int, running_loss: Callable[[], float]) -> None:
        """After each optimizer step. ``running_loss()`` syncs with the device: call it sparingly."""

    def on_epoch(self, record: dict[str, Any]) -> str | None:
        """After each epoch, with its metrics.jsonl record.

        Return a reason (such as ``"pruned"``) to end the run after this epoch: it stops with
        status ``interrupted`` and that ``stop_reason``, resumable from ``last.pt``. Raising
        fails the run (status ``failed``, the error in summary.json) and propagates.
        """
        return None

    def on_message(self, text: str) -> None:
        """A line for the user: a warning or a note."""
