"""Timing a training step, for the settings ``auto`` picks by measuring them: CPU threads
(threads.py) and mixed precision on a GPU (amp.py).

A probe trains a copy of the model and optimizer on zeros, with the random state put back, so
the run itself is left as it was: only the choice differs.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
from torch import nn

from dltool.engine.device import Precision, synchronize
from dltool.engine.loop import to_memory_format

Setting = TypeVar("Setting", bound=Hashable)

PROBE_ROUNDS = 5
PROBE_SECONDS = 0.02  # of steps timed at each setting in each round


@dataclass(frozen=True)
class Choice(Generic[Setting]):
    """The setting a run uses and, for the log, how ``auto`` arrived at it ("" when the
    config named it)."""

    value: Setting
    reason: str = ""


def median_seconds(
    settings: Sequence[Setting],
    time_step: Callable[[Setting], float],
    enter: Callable[[Setting], object] = lambda setting: None,
    rounds: int = PROBE_ROUNDS,
    seconds: float = PROBE_SECONDS,
) -> dict[Setting, float]:
    """Median seconds of a step at each setting, over ``rounds`` alternating rounds (so all
    share the machine's changes); ``enter`` switches to a setting. The first step after a
    switch is slow (mnist-lenet: 18-21 ms against 12 at two threads, 20 at one), so each round
    steps once untimed before timing steps for about ``seconds``."""
    enter(settings[0])
    time_step(settings[0])  # the first step of all: allocations, kernel choices
    samples: dict[Setting, list[float]] = {setting: [] for setting in settings}
    for _ in range(rounds):
        for setting in settings:
            enter(setting)
            time_step(setting)
            samples[setting].append(_mean_step(time_step, setting, seconds))
    return {setting: statistics.median(times) for setting, times in samples.items()}


def _mean_step(time_step: Callable[[Setting], float], setting: Setting, seconds: float) -> float:
    """Mean seconds of at least two steps, stepping until ``seconds`` have passed: a setting
    that is slow here (two threads beside a busy process: 8x digits-mlp's idle step) takes
    fewer steps, so the whole probe costs about the same whatever it finds."""
    times = [time_step(setting), time_step(setting)]
    while sum(times) < seconds:
        times.append(time_step(setting))
    return sum(times) / len(times)


def step_timer(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    in_shape: tuple[int, ...],
    batch_size: int,
    channels_last: bool = False,
) -> Callable[[Precision], float]:
    """A function timing one training step (forward, backward, optimizer step) in a precision,
    of a copy of ``model`` and ``optimizer`` (made on the first call) on a batch of zeros, in
    the run's memory format (a channels-last model fed NCHW would time conversions). The
    copies keep the run's weights, batch-norm statistics, gradients and optimizer state
    untouched, and the random state is put back (dropout draws from it). The optimizer's step
    is part of it: a small model's Adam is many small ops, which wait longest for a thread
    without a core, and launch kernels one by one on a GPU."""
    probe: list[tuple[nn.Module, torch.optim.Optimizer]] = []
    device = next(model.parameters()).device

    def time_step(precision: Precision) -> float:
        if not probe:  # copied together, so the optimizer's copy steps the model copy's weights
            probe.append(copy.deepcopy((model, optimizer)))
        copy_model, copy_optimizer = probe[0]
        images = to_memory_format(torch.zeros(batch_size, *in_shape, device=device), channels_last)
        scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_scaler)  # fp16's steps are the run's
        synchronize(device)
        started = time.perf_counter()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            with precision.autocast(device):
                loss = _scalar(copy_model.train()(images))
            if loss.requires_grad:
                scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
                scaler.step(copy_optimizer)
                scaler.update()
            synchronize(device)
        copy_optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    return time_step


def _scalar(output: object) -> torch.Tensor:
    """A number depending on every tensor of a model's output (a tensor, or a tuple, list or
    dict of them: auxiliary heads in training mode)."""
    if isinstance(output, torch.Tensor):
        return output.float().mean()
    items = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) else ()
    return sum((_scalar(item) for item in items), torch.zeros(()))
