"""Learning-rate schedules as factor functions of the optimizer step.

Every schedule is stepped once per optimizer step, so warmup and cosine are smooth while
the step family still changes on epoch boundaries. A builder returns ``factor(step)``,
the multiplier of the base learning rate; ``build_scheduler`` adds the warmup and wraps
the result in torch's ``LambdaLR`` (whose state_dict round-trips for resume).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import torch

from dltool.optim import SchedulerParams, schedulers

Factor = Callable[[int], float]


def constant(**_: int) -> Factor:
    return lambda step: 1.0


def step(*, step_size: int, gamma: float, steps_per_epoch: int, **_: int) -> Factor:
    return lambda s: gamma ** ((s // steps_per_epoch) // step_size)


def multistep(*, milestones: list[int], gamma: float, steps_per_epoch: int, **_: int) -> Factor:
    return lambda s: gamma ** bisect.bisect_right(milestones, s // steps_per_epoch)


def exponential(*, gamma: float, steps_per_epoch: int, **_: int) -> Factor:
    return lambda s: gamma ** (s // steps_per_epoch)


def cosine(*, min_lr_ratio: float, total_steps: int, warmup_steps: int, **_: int) -> Factor:
    span = max(1, total_steps - warmup_steps)

    def factor(s: int) -> float:
        progress = min(1.0, max(0, s - warmup_steps) / span)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def onecycle(
    *, pct_start: float, div_factor: float, final_div_factor: float, total_steps: int, **_: int
) -> Factor:
    peak = max(1, round(pct_start * total_steps))
    start, end = 1 / div_factor, 1 / (div_factor * final_div_factor)

    def factor(s: int) -> float:
        if s < peak:
            return _cosine_between(start, 1.0, s / peak)
        return _cosine_between(1.0, end, min(1.0, (s - peak) / max(1, total_steps - peak)))

    return factor


def _cosine_between(a: float, b: float, t: float) -> float:
    return b + (a - b) * 0.5 * (1 + math.cos(math.pi * t))


def build_scheduler(
    params: SchedulerParams, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler for ``params`` with its linear warmup in front."""
    warmup_steps = round(params.warmup_epochs * steps_per_epoch)
    factor = schedulers.build(
        params,
        steps_per_epoch=steps_per_epoch,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=warmup_steps,
    )

    def with_warmup(s: int) -> float:
        ramp = min(1.0, (s + 1) / warmup_steps) if warmup_steps else 1.0
        return ramp * factor(s)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, with_warmup)
