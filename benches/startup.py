"""How fast the command line answers: `dltool --help` and `dltool list` against `python -c pass`.

Usage: python benches/startup.py [--quick]

Each command runs as a fresh process; the figure is the best of several runs (the least
disturbed by a busy machine). Neither command may import torch, so both should sit a few
hundred milliseconds above the bare interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main, slug


def best_seconds(command: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    repeats = 3 if quick else 7
    bare = best_seconds([sys.executable, "-c", "pass"], repeats)
    rows = []
    for args in (["--help"], ["list"], ["list", "--json"]):
        seconds = best_seconds([sys.executable, "-m", "dltool", *args], repeats)
        rows.append(
            Row(
                f"`dltool {' '.join(args)}` (s)",
                f"{seconds:.3f}",
                f"{bare:.3f} `python -c pass`",
                bare / seconds,
                id=f"startup.{slug(' '.join(args))}",
            )
        )
    return rows


if __name__ == "__main__":
    bench_main(run, __doc__)
