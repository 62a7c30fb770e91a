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

from dltool.errors import ConfigError
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
    progress = _after_warmup(total_steps, warmup_steps)
    return lambda s: min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress(s)))


def linear(*, min_lr_ratio: float, total_steps: int, warmup_steps: int, **_: int) -> Factor:
    """With a warmup, the triangular schedule of Page's and airbench's CIFAR-10 runs."""
    progress = _after_warmup(total_steps, warmup_steps)
    return lambda s: 1 - (1 - min_lr_ratio) * progress(s)


def _after_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Step → the fraction (0 to 1) of the steps after the warmup that have passed."""
    span = max(1, total_steps - warmup_steps)
    return lambda s: min(1.0, max(0, s - warmup_steps) / span)


class OneCycle:
    """torch's ``OneCycleLR`` (two phases, cosine annealing) as a factor of the base lr.

    The lr rises from lr/``div_factor`` to lr until step ``pct_start × total_steps − 1``, then
    falls to lr/(``div_factor`` × ``final_div_factor``) at the last step; with
    ``cycle_momentum`` the momentum (beta1 for Adam-like optimizers) runs the other way,
    ``max_momentum`` → ``base_momentum`` → ``max_momentum``.
    """

    def __init__(
        self,
        *,
        pct_start: float,
        div_factor: float,
        final_div_factor: float,
        cycle_momentum: bool,
        base_momentum: float,
        max_momentum: float,
        total_steps: int,
        **_: int,
    ):
        self.peak, self.last = pct_start * total_steps - 1, total_steps - 1  # the peak may fall between steps
        self.start, self.end = 1 / div_factor, 1 / (div_factor * final_div_factor)
        self.momenta = (base_momentum, max_momentum) if cycle_momentum else None

    def __call__(self, step: int) -> float:
        rising, progress = self._phase(step)
        return _cosine_between(self.start, 1.0, progress) if rising else _cosine_between(1.0, self.end, progress)

    def momentum(self, step: int) -> float | None:
        """The momentum (or beta1) of this step; None when it does not cycle."""
        if self.momenta is None:
            return None
        low, high = self.momenta
        rising, progress = self._phase(step)
        return _cosine_between(high, low, progress) if rising else _cosine_between(low, high, progress)

    def _phase(self, step: int) -> tuple[bool, float]:
        """Whether ``step`` is in the rise, and the fraction (0 to 1) of its phase passed."""
        if step <= self.peak:
            return True, step / self.peak if self.peak > 0 else 1.0
        span = self.last - self.peak
        return False, (min(step, self.last) - self.peak) / span if span > 0 else 1.0


def _cosine_between(a: float, b: float, t: float) -> float:
    return b + (a - b) * 0.5 * (1 + math.cos(math.pi * t))


class Plateau:
    """A factor that falls by ``factor`` once the monitored metric stalls (checked per epoch).

    Same rule as torch's ReduceLROnPlateau (relative threshold, patience, cooldown), but as
    a factor, so it composes with the warmup and lives in the same per-step schedule.
    """

    def __init__(
        self,
        *,
        factor: float,
        patience: int,
        threshold: float,
        cooldown: int,
        min_lr_ratio: float,
        maximize: bool,
        **_: int,
    ):
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.cooldown, self.min_lr_ratio, self.maximize = cooldown, min_lr_ratio, maximize
        self.scale, self.bad_epochs, self.cooling = 1.0, 0, 0
        self.best: float | None = None

    def __call__(self, step: int) -> float:
        return self.scale

    def observe(self, value: float) -> None:
        if self._improves(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooling:
            self.cooling, self.bad_epochs = self.cooling - 1, 0
        if self.bad_epochs > self.patience:
            self.scale = max(self.scale * self.factor, self.min_lr_ratio)
            self.cooling, self.bad_epochs = self.cooldown, 0

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.maximize:
            return value > self.best + abs(self.best) * self.threshold
        return value < self.best - abs(self.best) * self.threshold

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs, "cooling": self.cooling}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best = state["scale"], state["best"]
        self.bad_epochs, self.cooling = state["bad_epochs"], state["cooling"]


class Schedule:
    """The learning rate of every optimizer step: warmup ramp × the schedule's factor.

    ``step()`` after each optimizer step; ``epoch_end(metric)`` after each epoch (only
    ``plateau`` listens). The state round-trips through ``state_dict`` for exact resume.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Factor, warmup_steps: int):
        self.factor, self.optimizer = factor, optimizer

        def with_warmup(s: int) -> float:
            ramp = min(1.0, (s + 1) / warmup_steps) if warmup_steps else 1.0
            return ramp * factor(s)

        self.lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, with_warmup)
        self._cycle_momentum()

    def step(self) -> None:
        self.lambda_lr.step()
        self._cycle_momentum()

    def epoch_end(self, metric: float) -> None:
        if isinstance(self.factor, Plateau):
            self.factor.observe(metric)

    def _cycle_momentum(self) -> None:
        """Set the momentum (or beta1) of the current step, for a schedule that cycles it."""
        if not isinstance(self.factor, OneCycle) or (value := self.factor.momentum(self.lambda_lr.last_epoch)) is None:
            return
        for group in self.optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (value, *group["betas"][1:])
            elif "momentum" in group:
                group["momentum"] = value
            else:
                raise ConfigError(
                    f"scheduler.cycle_momentum: {type(self.optimizer).__name__} has no momentum or beta1 to "
                    "cycle; set scheduler.cycle_momentum=false"
                )

    def get_last_lr(self) -> list[float]:
        return [float(lr) for lr in self.lambda_lr.get_last_lr()]

    def state_dict(self) -> dict:
        factor_state = self.factor.state_dict() if isinstance(self.factor, Plateau) else None
        return {"lambda_lr": self.lambda_lr.state_dict(), "factor": factor_state}

    def load_state_dict(self, state: dict) -> None:
        self.lambda_lr.load_state_dict(state["lambda_lr"])
        self._cycle_momentum()
        if isinstance(self.factor, Plateau):
            self.factor.load_state_dict(state["factor"])


def build_scheduler(
    params: SchedulerParams,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    maximize: bool = False,
) -> Schedule:
    """The per-step schedule for ``params`` with its linear warmup in front.

    ``maximize`` tells ``plateau`` which way the monitored metric improves.
    """
    warmup_steps = round(params.warmup_epochs * steps_per_epoch)
    factor = schedulers.build(
        params,
        steps_per_epoch=steps_per_epoch,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=warmup_steps,
        maximize=maximize,
    )
    return Schedule(optimizer, factor, warmup_steps)
