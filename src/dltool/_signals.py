"""SIGINT/SIGTERM ask long-running work to stop at its next safe point (exit 130/143).

The handlers are installed whatever the process inherited: a command started in the
background by a script inherits SIGINT as ignored, and ``kill -INT`` must still stop it.

A foundation rather than a command helper: the commands use it, and so does the process of
a tune worker (``dltool.tuning.worker``), which is library code.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals(stop: threading.Event | None) -> Iterator[list[int]]:
    """Set ``stop`` on the first SIGINT/SIGTERM; a second one interrupts at once. Without
    ``stop`` (work that is safe to interrupt anywhere, such as a resumable download) the
    first one interrupts at once (KeyboardInterrupt).

    Yields the list of signals received, so the caller can exit with 128 + signal number.
    """
    received: list[int] = []

    def handle(signum: int, _frame: object) -> None:
        received.append(signum)
        if stop is None or stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, handle) for s in watched}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
