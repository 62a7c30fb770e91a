"""CPU threads: each recipe's training throughput at one thread against all cores, and what
``train.threads: auto`` picks.

Usage: python benches/cpu_threads.py [--quick]

For each recipe, in one process, alternating, on the same random uint8 data of the recipe
dataset's shape (augmentation off), the engine's own loop (as in train_throughput.py) runs at
1 thread and at one thread per core; each figure is the best epoch. The ratio row compares
the thread count ``auto`` chooses for that recipe with the better of the two.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from dltool.config.recipes import list_recipes
from dltool.engine.device import resolve_device, resolve_precision
from dltool.engine.distributed import World
from dltool.engine.setup import build_components
from dltool.engine.threads import resolve_threads, training_step_flops, usable_cores

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main  # noqa: E402
from train_throughput import SHAPES, bench_config, dltool_rate, synthetic  # noqa: E402


def run(quick: bool = False, device: str = "cpu", names: list[str] | None = None) -> list[Row]:
    if device != "cpu":
        return []
    cores = usable_cores()
    samples, epochs = (512, 2) if quick else (1024, 3)
    cpu = resolve_device("cpu")
    rows = []
    for recipe in names or [r.name for r in list_recipes() if "encoder-classifier" not in r.name]:
        config, note = bench_config(recipe, samples, "cpu")
        shape, classes, _ = SHAPES[config.data.name]
        data = synthetic(shape, classes, samples)
        parts = build_components(config, cpu, resolve_precision("off", cpu), World(), data)
        flops = training_step_flops(parts.model, data.in_shape, config.train.batch_size)
        chosen = resolve_threads("auto", cpu, lambda: flops)
        rates = {1: 0.0, cores: 0.0}
        for _ in range(2):  # alternate, to share the machine's noise
            for threads in rates:
                torch.set_num_threads(threads)
                rates[threads] = max(rates[threads], dltool_rate(config, data, cpu, epochs))
        best = max(rates, key=rates.get)
        rows.append(Row(f"threads {recipe} ({flops / 1e9:.2g} GFLOP/step{note}): samples/s at auto = {chosen}",
                        f"{rates[chosen]:,.0f}", f"{rates[best]:,.0f} at {best} (1: {rates[1]:,.0f}, "
                        f"{cores}: {rates[cores]:,.0f})", rates[chosen] / rates[best]))
    torch.set_num_threads(cores)
    return rows


if __name__ == "__main__":
    bench_main(run, __doc__)
