"""How the stream loader's decoding processes start, and what torch says of their number."""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dltool._memory import return_large_blocks

if TYPE_CHECKING:
    import torch


def init_worker(slots: torch.Tensor, worker: int) -> None:
    """A decoding process's start: it records its pid in ``slots`` (so a crash names its file)."""
    # Ctrl-C and a scheduler's SIGTERM reach the whole process group: the main process stops
    # cleanly at a step boundary and needs its workers until then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return_large_blocks()
    slots[worker, 0] = os.getpid()


@contextmanager
def worker_count_unwarned() -> Iterator[None]:
    """torch warns, twice and with its source lines, when the workers outnumber the cores; the
    run log says so once, in its own words (``dltool.engine.setup``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
        yield
