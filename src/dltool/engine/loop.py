"""The training loop itself: one epoch of steps, and an evaluation pass. Flat on purpose."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dltool.engine.device import Precision

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class EpochStats:
    """Running sums of one training epoch, kept on the device (no sync per step).

    Saved in a checkpoint taken mid-epoch, so a resumed epoch reports the same totals.
    """

    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    correct: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.int64))
    samples: int = 0
    seconds: float = 0.0

    def to(self, device: torch.device) -> EpochStats:
        self.loss_sum, self.correct = self.loss_sum.to(device), self.correct.to(device)
        return self

    def update(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        n = len(labels)
        self.loss_sum += loss.detach() * n  # in place: float64 sum of float32 values
        self.correct += (logits.argmax(1) == labels).sum()
        self.samples += n

    def mean_loss(self) -> float:
        return self.loss_sum.item() / max(1, self.samples)

    def accuracy(self) -> float:
        return self.correct.item() / max(1, self.samples)

    def state_dict(self) -> dict:
        return {"loss_sum": self.loss_sum.cpu(), "correct": self.correct.cpu(),
                "samples": self.samples, "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: dict) -> EpochStats:
        return cls(**state)


@dataclass(frozen=True)
class Step:
    """What one optimizer step needs besides the batch."""

    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    precision: Precision
    device: torch.device


def train_one_epoch(
    step: Step,
    batches: Batches,
    stats: EpochStats,
    *,
    should_stop: Callable[[], bool],
    on_step: Callable[[EpochStats], None],
) -> bool:
    """Train over ``batches``, adding to ``stats``; False if stopped early at a step boundary."""
    step.model.train()
    stats.to(step.device)
    started = time.perf_counter()
    try:
        for images, labels in batches:
            if should_stop():
                return False
            with step.precision.autocast(step.device):
                logits = step.model(images)
                loss = step.loss_fn(logits, labels)
            step.optimizer.zero_grad(set_to_none=True)
            if step.scaler.is_enabled():
                step.scaler.scale(loss).backward()
                step.scaler.step(step.optimizer)
                step.scaler.update()
            else:
                loss.backward()
                step.optimizer.step()
            step.scheduler.step()
            stats.update(loss, logits, labels)
            on_step(stats)
        return True
    finally:
        stats.seconds += time.perf_counter() - started


@dataclass(frozen=True)
class EvalResult:
    loss: float
    accuracy: float
    samples: int


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Batches, precision: Precision, device: torch.device) -> EvalResult:
    """Mean cross-entropy (NLL of the softmax) and accuracy over ``batches``."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = 0
    for images, labels in batches:
        with precision.autocast(device):
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").double()
        correct += (logits.argmax(1) == labels).sum()
        samples += len(labels)
    return EvalResult(loss_sum.item() / max(1, samples), correct.item() / max(1, samples), samples)
