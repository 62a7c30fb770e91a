"""Training throughput of every recipe's model against a bare PyTorch loop, and FLOP/s
against this machine's measured matmul peak.

Usage: python benches/train_throughput.py [--quick] [--device cpu|cuda]

For each recipe, in one process, alternating, on the same random uint8 data of the recipe
dataset's shape held in memory, the same network (built from the recipe), batch size (cut
to half the samples where larger: cifar10-fast's 1024), optimizer, loss (the recipe's label
smoothing too: until 2026-12-06 the bare loop's had none, 3-5% of digits-mlp's step) and thread count
(augmentation and compilation off on both sides: benches/data_pipeline.py measures the
former, benches/cifar10_fast.py measures cifar10-fast on a GPU with everything on), precision
(what `dltool train` picks: ``amp: auto`` measures on a GPU) and memory format (channels-last
for a CNN, as ``train.channels_last: auto``):
- dltool: the engine's own loop (``train_one_epoch`` over a ``BatchLoader``, as ``train`` runs it);
- reference: a bare loop (randperm, index a pre-normalised float tensor, forward, backward,
  step, a cosine schedule step).
Each side's figure is its median epoch (epochs until at least 1.5 s of training, 0.3 s
with ``--quick``), the better of two alternating rounds. ``--quick`` measures only the recipes
an issue holds to a goal on the device (the digits recipes on a CPU, every recipe on a GPU). FLOPs per step come from ``torch.utils.flop_counter``;
the peak is the best of several 2048² fp32 matmuls (bf16 on CUDA). The last column
extrapolates an epoch over the real training split.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from dltool.config import Config, load_config
from dltool.config.recipes import list_recipes
from dltool.data.arrays import Split
from dltool.data.prepare import PreparedData, channel_stats
from dltool.engine.autoset import pick_precision
from dltool.engine.device import channels_last_wanted, resolve_device, resolve_precision
from dltool.engine.distributed import World
from dltool.engine.loop import EpochStats, to_memory_format, train_one_epoch
from dltool.engine.setup import build_components
from dltool.models.build import build_model
from dltool.optim import build_optimizer

sys.path.insert(0, str(Path(__file__).parent))
from _common import GPU_LOOP_GOAL, PEAK_GOAL, SMALL_LOOP_GOAL, Row, bench_main, matmul_peak

# (image shape, classes, images in the published train split: val is drawn from it)
SHAPES = {
    "digits": ((1, 8, 8), 10, 1437),
    "mnist": ((1, 28, 28), 10, 60000),
    "fashion-mnist": ((1, 28, 28), 10, 60000),
    "cifar10": ((3, 32, 32), 10, 50000),
}


def tensor_recipes() -> list[str]:
    """The recipes these benches train on synthetic data: those of the tensor datasets in
    ``SHAPES`` (not photo folders, masks or points), less the encoder-classifier (it needs its
    autoencoder's run)."""
    return [
        r.name for r in list_recipes() if "encoder-classifier" not in r.name and load_config(r.name).data.name in SHAPES
    ]


def bench_config(recipe: str, samples: int, device: str) -> tuple[Config, str]:
    """``recipe``'s config without augmentation or compilation, and a note of its batch size
    where it was cut: both loops need whole batches, so a batch larger than half the samples
    is cut down."""
    config = load_config(
        recipe,
        [
            "data.augment.crop_padding=0",
            "data.augment.flip=false",
            "data.augment.cutout=0",
            "train.compile=false",
            f"train.device={device}",
        ],
    )
    batch = min(config.train.batch_size, samples // 2)
    note = f", batch {batch}" if batch < config.train.batch_size else ""
    return config.model_copy(update={"train": config.train.model_copy(update={"batch_size": batch})}), note


def synthetic(shape: tuple[int, ...], classes: int, samples: int) -> PreparedData:
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (samples, *shape), dtype=np.uint8), rng.integers(0, classes, samples))
    mean, std = channel_stats(split.images)
    return PreparedData([str(c) for c in range(classes)], {"train": split, "val": split, "test": split}, mean, std)


def epoch_rates(run_epoch: Callable[[int], tuple[int, float]], epochs: int, min_seconds: float) -> list[float]:
    """Samples/s of each epoch ``run_epoch(epoch)`` → (samples, seconds) trains: at least
    ``epochs`` of them and ``min_seconds`` in all (digits-mlp's epoch of 1,024 samples takes
    25 ms, and the best of three such was off by ±10% from one run to the next)."""
    rates, spent, epoch = [], 0.0, 0
    while epoch < epochs or spent < min_seconds:
        samples, seconds = run_epoch(epoch)
        rates.append(samples / seconds)
        spent += seconds
        epoch += 1
    return rates


def dltool_rate(config, data: PreparedData, device: torch.device, epochs: int, min_seconds: float = 0.0) -> float:
    """The median epoch's samples/s of the engine's own loop."""
    parts = build_components(config, device, resolve_precision(config.train.amp, device), World(), data)

    def run_epoch(epoch: int) -> tuple[int, float]:
        stats = EpochStats()
        train_one_epoch(
            parts.step, parts.train_batches.batches(epoch), stats, should_stop=lambda: False, on_step=lambda s: None
        )
        return stats.samples, stats.seconds

    return statistics.median(epoch_rates(run_epoch, epochs, min_seconds))


def with_amp_as_train_picks(config: Config, data: PreparedData, device: torch.device) -> Config:
    """``config`` with ``train.amp`` set to what `dltool train` picks for it here (``auto``
    measures a step on a GPU), so that both loops run in that precision."""
    parts = build_components(config, device, resolve_precision(config.train.amp, device), World(), data)
    amp = pick_precision(parts, None)[1].value.name
    return config.model_copy(update={"train": config.train.model_copy(update={"amp": amp})})


def bare_rate(
    config, data: PreparedData, device: torch.device, epochs: int, min_seconds: float = 0.0
) -> tuple[float, float]:
    """(the median epoch's samples/s, FLOPs per sample of a training step) of a hand-written loop."""
    train = data.splits["train"]
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x = ((torch.from_numpy(train.images).float() / 255 - mean) / std).to(device)
    y = torch.from_numpy(train.labels).to(device)
    model = build_model(config.model, in_shape=tuple(train.images.shape[1:]), num_classes=len(data.classes)).to(device)
    optimizer = build_optimizer(config.optimizer, model.parameters(), device.type)  # as dltool's
    target = (
        (lambda images, labels: images)
        if config.loss.name in ("mse", "l1", "smooth_l1")
        else (lambda images, labels: labels)
    )
    smoothing = getattr(config.loss, "label_smoothing", 0.0)  # the recipe's, as dltool's loss has it
    loss_fn = torch.nn.MSELoss() if config.loss.name == "mse" else torch.nn.CrossEntropyLoss(label_smoothing=smoothing)
    batch = config.train.batch_size
    steps = len(y) // batch
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10**9)  # the rate only: any length

    precision = resolve_precision(config.train.amp, device)  # dltool's (fp16 unscaled: timing only)
    channels_last = channels_last_wanted(config.train.channels_last, device, model)  # and its memory format
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    def step(index: torch.Tensor) -> None:
        images = to_memory_format(x[index], channels_last)
        with precision.autocast(device):
            loss = loss_fn(model(images), target(images, y[index]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()

    with FlopCounterMode(display=False) as counter:
        step(torch.arange(batch))

    def run_epoch(epoch: int) -> tuple[int, float]:
        started = time.perf_counter()
        order = torch.randperm(len(y), device=device)
        for b in range(steps):
            step(order[b * batch : (b + 1) * batch])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return steps * batch, time.perf_counter() - started

    return statistics.median(epoch_rates(run_epoch, epochs, min_seconds)), counter.get_total_flops() / batch


def loop_goal(recipe: str, device: torch.device) -> float | None:
    """Issue 21's ratio to the bare loop: the small digits recipes (where per-step overhead
    shows most) everywhere, every recipe on a GPU."""
    if recipe.startswith("digits-"):
        return SMALL_LOOP_GOAL
    return GPU_LOOP_GOAL if device.type == "cuda" else None


def goal_recipes(device: torch.device) -> list[str]:
    """The recipes an issue holds to a ratio on ``device`` (what ``--quick`` measures)."""
    return [name for name in tensor_recipes() if loop_goal(name, device) is not None]


def run(quick: bool = False, device: str = "cpu", names: list[str] | None = None) -> list[Row]:
    samples, epochs, min_seconds = (512, 2, 0.3) if quick else (1024, 3, 1.5)
    torch_device = resolve_device(device)
    names = names or (goal_recipes(torch_device) if quick else tensor_recipes())
    peak = matmul_peak(torch_device)  # the reference of the achieved-FLOP/s rows
    peak_precision = "bf16" if torch_device.type == "cuda" else "fp32"
    rows = []
    for name in names:
        config, note = bench_config(name, samples, device)
        shape, classes, published = SHAPES[config.data.name]
        train_size = round(published * (1 - config.data.val_fraction))
        data = synthetic(shape, classes, samples)
        config = with_amp_as_train_picks(config, data, torch_device)
        ours, bare, flops = 0.0, 0.0, 0.0
        for _ in range(2):  # alternate, to share the machine's noise
            ours = max(ours, dltool_rate(config, data, torch_device, epochs, min_seconds))
            rate, flops = bare_rate(config, data, torch_device, epochs, min_seconds)
            bare = max(bare, rate)
        achieved = flops * ours
        rows.append(
            Row(
                f"train {name}: samples/s (epoch ≈ {train_size / ours:.1f} s{note})",
                f"{ours:,.0f}",
                f"{bare:,.0f} bare PyTorch loop",
                ours / bare,
                id=f"train-throughput.{name}.samples-per-s",
                goal=loop_goal(name, torch_device),
            )
        )
        rows.append(
            Row(
                f"train {name}: achieved GFLOP/s",
                f"{achieved / 1e9:.1f}",
                f"{peak / 1e9:.1f} {peak_precision} matmul peak",
                achieved / peak,
                id=f"train-throughput.{name}.flops",
                goal=PEAK_GOAL if name == "cifar10-fast" and torch_device.type == "cuda" else None,
            )
        )
    return rows


if __name__ == "__main__":
    bench_main(run, __doc__)
