"""A dry run (``--dry-run``): everything a run does before its first step, and no run dir written.

The config is resolved and checked, the data loaded and split, the model, optimizer, schedule
and loss built, and one training batch read and passed forward, so a run that would fail at
the start fails here; no run dir is made. Caches a run would fill (a dataset's decoded
arrays, pretrained weights) are filled the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dltool._text import counted
from dltool.config.schema import Config
from dltool.engine.autoset import pick_precision
from dltool.engine.device import resolve_device, resolve_precision
from dltool.engine.distributed import World
from dltool.engine.setup import Components, build_components, check_runnable


@dataclass(frozen=True)
class DryRun:
    """What a run of ``config`` would do: its data, model and schedule, for the user."""

    config: Config
    device: str
    amp: str
    split_sizes: dict[str, int]
    test_is_val: bool
    classes: int
    batch_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    batches_per_epoch: int
    notes: tuple[str, ...]

    def lines(self) -> list[str]:
        """The plan, one line each."""
        train = self.config.train
        sizes = ", ".join(f"{name} {count:,}" for name, count in self.split_sizes.items())
        test = " (the val split: no held-out test split)" if self.test_is_val else ""
        shape = "×".join(map(str, self.batch_shape))
        return [
            *self.notes,
            f"data: {self.config.data.name}, {self.classes} classes; {sizes}{test}",
            f"one batch read: {shape} → output {'×'.join(map(str, self.output_shape))}",
            f"would train {counted(train.epochs, 'epoch')} × {counted(self.batches_per_epoch, 'batch', 'batches')} on {self.device} (amp {self.amp})",
            "dry run: no run dir written",
        ]


def dry_run(config: Config) -> DryRun:
    """Check and build everything a run of ``config`` needs and read one training batch."""
    check_runnable(config)
    device = resolve_device(config.train.device)
    parts = build_components(config, device, resolve_precision(config.train.amp, device), World())
    parts, amp = pick_precision(parts, None)  # as the run would: auto measures on a GPU
    try:
        images, _ = next(iter(parts.train_batches.batches(0)))
        output = _forward(parts, images)
    finally:
        parts.close()
    return DryRun(
        config=parts.config,
        device=str(device),
        amp=f"{amp.value.name}, auto: {amp.reason}" if amp.reason else amp.value.name,
        split_sizes={name: len(parts.data.splits[name]) for name in ("train", "val", "test")},
        test_is_val=parts.data.test_is_val,
        classes=len(parts.data.classes),
        batch_shape=tuple(images.shape),
        output_shape=tuple(output.shape),
        batches_per_epoch=len(parts.train_batches),
        notes=(parts.data.ready_line(), *parts.data.messages(), *parts.notes),
    )


def _forward(parts: Components, images: torch.Tensor) -> torch.Tensor:
    parts.model.eval()  # BatchNorm's running statistics stay as built
    with torch.no_grad():
        output: torch.Tensor = parts.model(images)
    return output
