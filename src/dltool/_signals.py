"""SIGINT/SIGTERM ask long-running work to stop at its next safe point (exit 130/143).

The handlers are installed whatever the process inherited: a command started in the
background by a script inherits SIGINT as ignored, and ``kill -INT`` must still stop it.

A foundation rather than a command helper: the commands use it, and so does the process of
a tune worker (``dltool.tuning.worker_process``), which is library code.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Seconds after the first signal in which another is the same request. One Ctrl-C reaches a
# process twice, milliseconds apart, when a launcher passes on a signal that the terminal sent
# to its whole process group as well (torchrun's workers shared its group before torch 2.2):
# that is one Ctrl-C, not a second one asking to stop at once.
REPEAT_WINDOW_S = 1.0


class Terminated(BaseException):
    """SIGTERM, raised where the command is (as Ctrl-C raises KeyboardInterrupt), so that what
    it was writing is discarded on the way out; the command line exits 143."""


class Stop(threading.Event):
    """A request to stop at the next safe point that knows whether a signal made it."""

    signum: int | None = None  # set by ``stop_on_signals``; None where code set it


def stop_reason(stop: threading.Event) -> str:
    """summary.json's ``stop_reason`` of a run that ``stop`` ended: ``signal`` (SIGINT or
    SIGTERM) or ``stopped`` (a caller set it: ``dltool.train(..., stop=event)``)."""
    return "signal" if isinstance(stop, Stop) and stop.signum is not None else "stopped"


def heed_interrupts() -> None:
    """SIGINT interrupts (KeyboardInterrupt) from a command's first line, also where the process
    inherited it as ignored: until ``stop_on_signals`` takes over, a ``kill -INT`` sent while
    the command starts (imports, config, data) was otherwise lost. SIGTERM raises
    ``Terminated``: killed outright, eval or predict left the temporary file of its output."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)


def _terminate(_signum: int, _frame: object) -> None:
    raise Terminated


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held until the block ends, then handled as they would have been: for
    work that must not be cut midway (on a thread other than the main one, nothing to hold)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    try:
        with _handling(lambda signum, _frame: held.append(signum)):
            yield
    finally:
        for signum in held:
            signal.raise_signal(signum)


@contextmanager
def stop_on_signals(stop: Stop | None) -> Iterator[list[int]]:
    """Set ``stop`` on the first SIGINT/SIGTERM; another one more than ``REPEAT_WINDOW_S``
    later interrupts at once (a second Ctrl-C), one within that window is the same request.
    Without ``stop`` (work that is safe to interrupt anywhere, such as a resumable download)
    the first one interrupts at once (KeyboardInterrupt).

    Yields the list of signals received, so the caller can exit with 128 + signal number.
    """
    received: list[int] = []
    asked_at: list[float] = []  # when this handler set ``stop``

    def handle(signum: int, _frame: object) -> None:
        received.append(signum)
        now = time.monotonic()
        if stop is not None and not stop.is_set():
            asked_at.append(now)
            stop.signum = signum
            stop.set()
        elif stop is None or not asked_at or now - asked_at[0] > REPEAT_WINDOW_S:
            raise KeyboardInterrupt

    with _handling(handle):
        yield received


@contextmanager
def _handling(handle: Callable[[int, Any], None]) -> Iterator[None]:
    """``handle`` for SIGINT and SIGTERM in the block, the handlers before it after it (the
    default for one that was not installed from Python)."""
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, handle) for s in watched}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


@contextmanager
def interrupts_kept() -> Iterator[None]:
    """SIGINT and SIGTERM interrupt the block as usual, and still stop it where the code in it
    catches what interrupted it (torch's ONNX exporter wraps a KeyboardInterrupt in an error
    of its own, or tries another way past it): the signal is raised again as the block ends."""
    received: list[int] = []
    if threading.current_thread() is threading.main_thread():  # only there are handlers set
        try:
            with _handling(lambda signum, _frame: _interrupt(received, signum)):
                yield
        except Exception:
            if not received:
                raise
    else:
        yield
    if received:
        _interrupt([], received[0])


def _interrupt(received: list[int], signum: int) -> None:
    received.append(signum)
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated
