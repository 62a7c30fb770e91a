"""The settings ``auto`` picks once a run's parts are built, by measuring a step of them: CPU
threads (threads.py) and mixed precision on a GPU (amp.py). A resumed run keeps what its
start picked (its checkpoint's progress), so that it goes on as it began."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from dltool.engine.amp import resolve_amp, unmeasured
from dltool.engine.device import Precision, on_cuda_when_auto
from dltool.engine.probe import Choice, step_timer
from dltool.engine.setup import Components
from dltool.engine.threads import resolve_threads, training_step_flops


def pick_threads(parts: Components, kept: int | None) -> Choice[int]:
    train_cfg, in_shape = parts.config.train, parts.data.in_shape
    flops = lambda: training_step_flops(parts.model, in_shape, train_cfg.batch_size)  # noqa: E731
    timer = step_timer(parts.model, parts.step.optimizer, in_shape, train_cfg.batch_size, parts.step.channels_last)
    at_run_precision = lambda _threads: timer(parts.step.precision)  # noqa: E731
    kind = (parts.step.precision.name, parts.step.channels_last)
    return resolve_threads(train_cfg.threads, parts.step.device, flops, at_run_precision, kept=kept, step_kind=kind)


def pick_precision(parts: Components, checkpoint: dict[str, Any] | None) -> tuple[Components, Choice[Precision]]:
    """``parts`` in the precision ``train.amp`` comes to, and the choice. A checkpoint from
    before the choice was kept ran in the precision ``parts`` were built with."""
    step, train_cfg = parts.step, parts.config.train
    kept = checkpoint["progress"].get("amp", step.precision.name) if checkpoint else None
    parameters = sum(p.numel() for p in parts.model.parameters())
    compiled = on_cuda_when_auto(train_cfg.compile, step.device)
    time_step = unmeasured(parameters, parts.world.distributed, compiled) or step_timer(
        parts.model, step.optimizer, parts.data.in_shape, train_cfg.batch_size, step.channels_last
    )
    choice = resolve_amp(train_cfg.amp, step.device, time_step, kept)
    return with_precision(parts, choice.value), choice


def with_precision(parts: Components, precision: Precision) -> Components:
    """``parts`` training in ``precision`` (with a gradient scaler for fp16)."""
    if precision == parts.step.precision:
        return parts
    scaler = torch.amp.GradScaler(parts.step.device.type, enabled=precision.needs_scaler)
    return replace(parts, step=replace(parts.step, precision=precision, scaler=scaler))
