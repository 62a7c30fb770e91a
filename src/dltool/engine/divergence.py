"""A diverging run fails: a loss that stayed NaN or infinite ends it before last.pt takes the weights."""

from __future__ import annotations

import math

from dltool._text import counted
from dltool.engine.distributed import any_across
from dltool.engine.loop import EpochStats
from dltool.engine.setup import Components
from dltool.engine.state import Progress
from dltool.errors import TrainingDivergedError


def check_finite_loss(parts: Components, progress: Progress, stats: EpochStats) -> None:
    """Fail the run when the loss stayed NaN or infinite for ``train.nonfinite_patience``
    batches: the weights are lost, so it stops before last.pt could take them."""
    streak = stats.nonfinite_streak(parts.config.train.nonfinite_patience)
    if not any_across(parts.world, streak is not None):
        return
    first, length = streak or (1, 0)
    accumulate = parts.step.accumulate
    step = progress.step - math.ceil(stats.batches / accumulate) + (first - 1) // accumulate + 1
    lr = getattr(parts.config.optimizer, "lr", None)
    kept = (
        f"checkpoints/last.pt keeps epoch {progress.epoch}, the last good one"
        if progress.epoch
        else "no epoch finished, so there is no checkpoint"
    )
    raise TrainingDivergedError(
        f"the training loss was NaN or infinite for {counted(length, 'batch', 'batches')} in a row from step {step} "
        f"(epoch {progress.epoch + 1}); the learning rate (optimizer.lr={lr}) is the likely cause: lower optimizer.lr "
        f"or set train.grad_clip; {kept}"
    )
