"""CPU threads: each recipe's training throughput at one thread against all cores, and what
``train.threads: auto`` picks — on an idle machine, and beside another busy process.

Usage: python benches/cpu_threads.py [--quick]

For each recipe, in one process, alternating, on the same random uint8 data of the recipe
dataset's shape (augmentation off), the engine's own loop (as in train_throughput.py) runs at
1 thread and at one thread per core; each figure is the median epoch (as there). The ratio compares the
thread count ``auto`` chooses for that recipe (probing, where it probes, in the same
situation, just before) with the better of the two. Then the small
recipes again while another process keeps one core busy (a second job, a tune worker, a test
suite: the shared machine these tools often run on), where waiting for a thread that has no
core of its own costs the most. ``--quick``: only the small recipes (the digits ones and
mnist-lenet), where the choice is closest.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from dltool.engine.device import resolve_device, resolve_precision
from dltool.engine.distributed import World
from dltool.engine.probe import step_timer
from dltool.engine.setup import build_components
from dltool.engine.threads import forget_probes, resolve_threads, training_step_flops, usable_cores

sys.path.insert(0, str(Path(__file__).parent))
from _common import SMALL_LOOP_GOAL, Row, bench_main
from train_throughput import SHAPES, bench_config, dltool_rate, goal_recipes, synthetic, tensor_recipes

SMALL = ["digits-mlp", "mnist-lenet"]  # measured again beside a busy process
CPU = torch.device("cpu")


def run(quick: bool = False, device: str = "cpu", names: list[str] | None = None) -> list[Row]:
    if device != "cpu":
        return []
    samples, epochs = (512, 2) if quick else (1024, 3)
    epochs_span = 0.3 if quick else 1.0  # seconds each side trains at least: tiny epochs are noisy
    names = names or (sorted({*SMALL, *goal_recipes(CPU)}) if quick else tensor_recipes())
    rows = [thread_row(recipe, samples, (epochs, epochs_span), "") for recipe in names]
    if usable_cores() > 1:
        with busy_core():
            rows += [thread_row(recipe, samples, (epochs, epochs_span), ", another process busy") for recipe in SMALL]
    torch.set_num_threads(usable_cores())
    return rows


def thread_row(recipe: str, samples: int, epochs: tuple[int, float], situation: str) -> Row:
    """``epochs``: (at least so many, trained for at least so many seconds)."""
    cores = usable_cores()
    config, note = bench_config(recipe, samples, "cpu")
    shape, classes, _ = SHAPES[config.data.name]
    data = synthetic(shape, classes, samples)
    parts = build_components(config, resolve_device("cpu"), resolve_precision("off", CPU), World(), data)
    flops = training_step_flops(parts.model, data.in_shape, config.train.batch_size)
    timer = step_timer(parts.model, parts.step.optimizer, data.in_shape, config.train.batch_size)
    at_run_precision = lambda _threads: timer(parts.step.precision)  # noqa: E731
    forget_probes()  # probed here, in this situation, as a fresh process would
    chosen = resolve_threads("auto", CPU, lambda: flops, at_run_precision).value
    rates = {1: 0.0, cores: 0.0}
    for _ in range(2):  # alternate, to share the machine's noise
        for threads in rates:
            torch.set_num_threads(threads)
            rates[threads] = max(rates[threads], dltool_rate(config, data, CPU, *epochs))
    best = max(rates, key=rates.get)
    return Row(
        f"threads {recipe} ({flops / 1e9:.2g} GFLOP/step{note}{situation}): samples/s at auto = {chosen}",
        f"{rates[chosen]:,.0f}",
        f"{rates[best]:,.0f} at {best} (1: {rates[1]:,.0f}, {cores}: {rates[cores]:,.0f})",
        rates[chosen] / rates[best],
        id=f"cpu-threads.{recipe}" + (".busy" if situation else ""),
        goal=SMALL_LOOP_GOAL,  # issue 21: auto never more than 3% slower than the better setting
    )


@contextmanager
def busy_core() -> Iterator[None]:
    """Another process spinning on one core for the duration."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        process.kill()
        process.wait()


if __name__ == "__main__":
    bench_main(run, __doc__)
