"""dltool's training throughput on digits-mlp against a bare PyTorch loop, and its wall time.

Usage: python benches/train_overhead.py [--quick]

Measured in one process, alternating, on the same data, architecture, batch size, optimizer,
schedule and thread count; each side's figure is its best epoch over all repeats (a shared
2-core machine is noisy, and the best epoch is what each loop can reach):
- reference: a hand-written loop (randperm shuffle, index the normalised tensor, step);
- dltool: ``dltool.engine.train`` on the digits-mlp recipe (its train-phase samples/s).
Both at the thread count dltool's run chose (``threads: auto``; benches/cpu_threads.py compares
thread counts). Then the end-to-end wall time of ``dltool train digits-mlp`` as a subprocess
(interpreter and imports included).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from dltool.config import load_config
from dltool.data.prepare import prepare_data
from dltool.engine import train
from dltool.engine.threads import usable_cores
from dltool.rundir import create_run_dir

sys.path.insert(0, str(Path(__file__).parent))
from _common import SMALL_LOOP_GOAL, Row, bench_main

RECIPE = "digits-mlp"


def bare_loop_samples_per_s(config, threads: int) -> float:
    """Best-epoch train-phase samples/s of a plain PyTorch loop."""
    torch.set_num_threads(threads)
    torch.manual_seed(config.train.seed)
    data = prepare_data(config.data)
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    x = (torch.from_numpy(data.splits["train"].images).float() / 255 - mean) / std
    y = torch.from_numpy(data.splits["train"].labels)
    m = config.model
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = x[0].numel()
    for _ in range(m.depth):
        layers += [nn.Linear(width_in, m.width, bias=False), nn.BatchNorm1d(m.width), nn.ReLU(), nn.Dropout(m.dropout)]
        width_in = m.width
    model = nn.Sequential(*layers, nn.Linear(width_in, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optimizer.lr)
    batch, steps = config.train.batch_size, len(y) // config.train.batch_size
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.train.epochs * steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.loss.label_smoothing)
    rates = []
    for _ in range(config.train.epochs):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(y))
        for b in range(steps):
            index = order[b * batch : (b + 1) * batch]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        rates.append(steps * batch / (time.perf_counter() - started))
    return max(rates)


def dltool_samples_per_s(config, runs: Path) -> tuple[float, int]:
    """(best-epoch samples/s, the thread count the run chose)."""
    result = train(config, create_run_dir(runs, "bench"))
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    return max(r["samples_per_s"] for r in records), result.summary["threads"]


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
    repeats = 2 if quick else 5
    work = Path(tempfile.mkdtemp(prefix="dltool-bench-"))
    env = {**os.environ, "DLTOOL_DATA": str(work / "data")}
    os.environ.update(env)
    config = load_config(RECIPE, [f"train.device={device}"])

    first_run = end_to_end_seconds(work / "runs", env)  # also builds the digits cache
    bare, ours = [], []
    for _ in range(repeats):
        rate, threads = dltool_samples_per_s(config, work / "runs")
        ours.append(rate)
        bare.append(bare_loop_samples_per_s(config, threads))
    warm = statistics.median(end_to_end_seconds(work / "runs", env) for _ in range(repeats))
    torch.set_num_threads(usable_cores())
    return [
        Row(
            "train throughput, digits-mlp (samples/s, best epoch)",
            f"{max(ours):,.0f}",
            f"{max(bare):,.0f} bare PyTorch loop",
            max(ours) / max(bare),
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
