"""Peak resident memory of a process together with its children (a DataLoader's workers,
a process pool), sampled from /proc every 20 ms — ``ru_maxrss`` counts one process only."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

PAGE = 4096


def _tree(pid: int) -> list[int]:
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                pending += [int(p) for p in (task / "children").read_text().split()]
    return pids


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0  # the process ended meanwhile


def run_peak_rss(command: list[str], **popen) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``command``; its result and the peak of (its RSS + its descendants' RSS) in bytes.
    Pages shared between the parent and forked workers count once per process, as the
    kernel's own accounting of each would (an upper bound on the memory in use)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    peak = 0
    while process.poll() is None:
        peak = max(peak, sum(_rss(pid) for pid in _tree(process.pid)))
        time.sleep(0.02)
    stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), peak
