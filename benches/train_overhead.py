"""dltool's training throughput on digits-mlp against a bare PyTorch loop, and its wall time.

Usage: python benches/train_overhead.py [--quick]

The loop row measures as benches/train_throughput.py does (its functions), on the real digits
training split and the recipe as it is: in one process, alternating two rounds, each side's
median epoch over at least 1.5 s of training (digits-mlp's epoch takes about 30 ms; the best
single epoch of 150, this bench's figure until 2026-12-06, swung by ±5% between runs):
- reference: a bare loop (randperm, index a pre-normalised float tensor, step, schedule step);
- dltool: the engine's own loop (``train_one_epoch`` over the run's ``BatchLoader``).
Both at the thread count a ``dltool.engine.train`` run of the recipe chose (``threads: auto``;
benches/cpu_threads.py compares thread counts). Then the end-to-end wall time of ``dltool
train digits-mlp`` as a subprocess (interpreter and imports included).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from dltool.config import load_config
from dltool.data.prepare import prepare_data
from dltool.engine import train
from dltool.engine.threads import usable_cores
from dltool.rundir import create_run_dir

sys.path.insert(0, str(Path(__file__).parent))
from _common import SMALL_LOOP_GOAL, Row, bench_main, scratch
from train_throughput import bare_rate, dltool_rate

RECIPE = "digits-mlp"


def loop_rates(config, runs: Path, epochs: int, min_seconds: float) -> tuple[float, float]:
    """(dltool's, the bare loop's) median-epoch samples/s, the better of two alternating rounds."""
    torch.set_num_threads(train(config, create_run_dir(runs, "bench")).summary["threads"])
    data, device = prepare_data(config.data), torch.device(config.train.device)
    ours, bare = 0.0, 0.0
    for _ in range(2):  # alternate, to share the machine's noise
        ours = max(ours, dltool_rate(config, data, device, epochs, min_seconds))
        bare = max(bare, bare_rate(config, data, device, epochs, min_seconds)[0])
    return ours, bare


def end_to_end_seconds(runs: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dltool", "train", RECIPE, "--runs-dir", str(runs), "-q"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    with scratch("dltool-bench-") as work:
        return measure(work, 2 if quick else 5, quick, device)


def measure(work: Path, repeats: int, quick: bool, device: str) -> list[Row]:
    env = {**os.environ, "DLTOOL_DATA": str(work / "data")}
    os.environ.update(env)
    config = load_config(RECIPE, [f"train.device={device}"])

    first_run = end_to_end_seconds(work / "runs", env)  # also builds the digits cache
    ours, bare = loop_rates(config, work / "runs", 3, 0.3 if quick else 1.5)
    warm = statistics.median(end_to_end_seconds(work / "runs", env) for _ in range(repeats))
    torch.set_num_threads(usable_cores())
    return [
        Row(
            "train throughput, digits-mlp, the real digits (samples/s, median epoch)",
            f"{ours:,.0f}",
            f"{bare:,.0f} bare PyTorch loop",
            ours / bare,
            id="train-overhead.digits-mlp.loop",
            goal=SMALL_LOOP_GOAL,
        ),
        Row(
            "`dltool train digits-mlp` end to end (s)",
            f"{warm:.2f}",
            "6.00 goal",
            6.0 / warm,
            id="train-overhead.digits-mlp.end-to-end",
            goal=1.0,
        ),
        Row(
            "same, first run: builds the digits cache (s)",
            f"{first_run:.2f}",
            "6.00 goal",
            6.0 / first_run,
            id="train-overhead.digits-mlp.end-to-end-first-run",
            goal=1.0,
        ),
    ]


if __name__ == "__main__":
    bench_main(run, __doc__)
