"""The training loop itself: one epoch of steps, and an evaluation pass. Flat on purpose."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import dltool.tasks as tasks
from dltool.engine.device import Precision, synchronize

Batch = tuple[torch.Tensor, torch.Tensor]
Batches = Iterable[Batch]
CLASSIFICATION = "classification"  # the default task (a name of dltool.tasks)


FOLD_EVERY = 1024  # pending batches folded into the sums at most: a bounded list, no sync
# A classifier's outputs kept for its correct count until a fold, at most this many elements
# (4 MB in float32): one arg-max over many batches instead of three small ops a step, each of
# which wakes the CPU's thread pool (2-3% of digits-mlp's step on 2 cores).
PENDING_OUTPUTS = 1 << 20


@dataclass
class EpochStats:
    """Running sums of one training epoch, kept on the device (no sync per step).

    A step only records its loss (``pending``) and, for a classifier, its output and labels
    (``outputs``); ``fold`` adds them to the sums a list at a time, on the device.
    ``train_one_epoch`` folds before it returns, and so does everything that reads the sums
    here. Saved in a checkpoint taken mid-epoch, so a resumed epoch reports the same totals.
    ``nonfinite`` counts the batches in a row, up to the last one, whose loss was NaN or
    infinite; ``longest`` is the longest such streak and ``longest_end`` the batch that
    ended it.
    """

    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    correct: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.int64))
    samples: int = 0
    seconds: float = 0.0
    batches: int = 0
    nonfinite: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.int64))
    longest: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.int64))
    longest_end: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.int64))
    pending: list[tuple[torch.Tensor, int]] = field(default_factory=list, repr=False)
    outputs: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list, repr=False)
    output_elements: int = field(default=0, repr=False)  # in ``outputs``
    task: str = CLASSIFICATION  # whose ``correct`` counts the kept outputs

    def to(self, device: torch.device) -> EpochStats:
        self.fold()
        for name in ("loss_sum", "correct", "nonfinite", "longest", "longest_end"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def update(self, loss: torch.Tensor, output: torch.Tensor, labels: torch.Tensor, task: str) -> None:
        self.pending.append((loss.detach(), len(labels)))
        if tasks.get(task).counts_correct:
            self.outputs.append((output.detach(), labels))
            self.output_elements += output.numel()
            self.task = task
        self.samples += len(labels)
        self.batches += 1
        if len(self.pending) >= FOLD_EVERY or self.output_elements >= PENDING_OUTPUTS:
            self.fold()

    def fold(self) -> None:
        """Add the pending batches to the sums, on the device: the loss sum in batch order (a
        float64 running sum of float32 ``loss × batch size``, as batch-by-batch adds give) and
        the streaks of non-finite losses."""
        if not self.pending:
            return
        losses = torch.stack([loss for loss, _ in self.pending])
        sizes = [n for _, n in self.pending]
        weighted = losses * sizes[0] if len(set(sizes)) == 1 else losses * torch.tensor(sizes).to(losses.device)
        self.loss_sum = torch.cat([self.loss_sum.view(1), weighted.double()]).cumsum(0)[-1]
        if self.outputs:
            outputs, labels = zip(*self.outputs)
            self.correct = self.correct + tasks.get(self.task).correct(torch.cat(outputs), torch.cat(labels))
        self._fold_streaks(~torch.isfinite(losses), self.batches - len(self.pending))
        self.pending.clear()
        self.outputs.clear()
        self.output_elements = 0

    def _fold_streaks(self, bad: torch.Tensor, before: int) -> None:
        """Extend the streaks over ``bad`` (a flag per pending batch, batch ``before`` + 1 first)."""
        at = torch.arange(1, len(bad) + 1, device=bad.device)
        last_good = torch.where(bad, 0, at).cummax(0).values  # 0: none yet in these batches
        streak = torch.where(last_good == 0, self.nonfinite + at, at - last_good)
        top = streak.max()
        self.longest_end = torch.where(top > self.longest, before + 1 + streak.argmax(), self.longest_end)
        self.longest = torch.maximum(self.longest, top)
        self.nonfinite = streak[-1]

    def nonfinite_streak(self, patience: int) -> tuple[int, int] | None:
        """(first batch, length) of the longest streak of non-finite losses when it reached
        ``patience`` batches, or the whole epoch when that is shorter; else None. Syncs: read
        it once an epoch."""
        self.fold()
        longest = int(self.longest)
        if longest == 0 or longest < min(patience, self.batches):
            return None
        return int(self.longest_end) - longest + 1, longest

    def mean_loss(self) -> float:
        self.fold()
        return self.loss_sum.item() / max(1, self.samples)

    def accuracy(self) -> float:
        self.fold()
        return self.correct.item() / max(1, self.samples)

    def state_dict(self) -> dict[str, Any]:
        self.fold()
        return {
            "loss_sum": self.loss_sum.cpu(),
            "correct": self.correct.cpu(),
            "samples": self.samples,
            "seconds": self.seconds,
            "batches": self.batches,
            **{name: getattr(self, name).cpu() for name in ("nonfinite", "longest", "longest_end")},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EpochStats:
        return cls(**state)


@dataclass(frozen=True)
class Step:
    """Everything one optimizer step touches besides the batch.

    ``model`` is what runs forward (compiled and/or DDP-wrapped); ``ema`` an averaged copy
    of the plain model, or None.
    """

    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    precision: Precision
    device: torch.device
    task: str = CLASSIFICATION
    accumulate: int = 1
    grad_clip: float | None = None
    ema: torch.optim.swa_utils.AveragedModel | None = None
    channels_last: bool = False

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, output) of one batch, under autocast; ``labels`` int64 (B,) or, from
        MixUp/CutMix, float target distributions (B, K)."""
        with self.precision.autocast(self.device):
            output = self.model(to_memory_format(images, self.channels_last))
            return self.loss_fn(output, tasks.get(self.task).target(images, labels)), output

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler.is_enabled() else loss).backward()  # type: ignore[no-untyped-call]

    def update(self) -> None:
        """Clip, step the optimizer (through the scaler for fp16), the schedule and the EMA."""
        if self.grad_clip is not None:
            if self.scaler.is_enabled():
                self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(unwrap(self.model))


def train_one_epoch(
    step: Step,
    batches: Batches,
    stats: EpochStats,
    *,
    should_stop: Callable[[], bool],
    on_step: Callable[[EpochStats], None],
) -> bool:
    """Train over ``batches``, adding to ``stats``; False if stopped at an optimizer-step boundary.

    With ``step.accumulate`` > 1, each optimizer step averages that many batches' gradients.
    """
    step.model.train()
    stats.to(step.device)
    started = time.perf_counter()
    try:
        for group in chunks(batches, step.accumulate):
            if should_stop():
                return False
            for index, (images, labels) in enumerate(group):
                with no_sync_unless(step.model, last=index == len(group) - 1):
                    loss, output = step.forward(images, labels)
                    step.backward(loss if len(group) == 1 else loss / len(group))
                stats.update(loss, output, labels, step.task)
            step.update()
            on_step(stats)
        return True
    finally:
        stats.fold()
        synchronize(step.device)  # on a GPU the steps may still be queued: their time is this epoch's
        stats.seconds += time.perf_counter() - started


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Batches,
    precision: Precision,
    device: torch.device,
    task: str = CLASSIFICATION,
    channels_last: bool = False,
    confusion_classes: int = 0,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Sums over ``batches`` of the task's ``batch_sums`` (always ``loss_sum``; a classifier's
    cross-entropy and ``correct`` predictions, a reconstruction's squared error per pixel),
    with the sample count ``n``. With ``confusion_classes`` (a classifier's class count), also
    ``confusion``: the counts of (true, predicted) pairs as a square int64 tensor, rows true.
    ``should_stop`` is asked before each batch: True raises ``EvaluationStopped``.

    Sums rather than means, so shards evaluated on several ranks add up exactly.
    """
    model.eval()
    scorer = tasks.get(task)
    sums: dict[str, Any] = scorer.zero_sums(confusion_classes, device)  # every key, so all ranks' sums match
    samples = 0
    for images, labels in batches:
        if should_stop():
            raise EvaluationStopped
        with precision.autocast(device):
            output = model(to_memory_format(images, channels_last))
        for key, value in scorer.batch_sums(output, images, labels, confusion_classes).items():
            sums[key] = sums[key] + value  # a task's scalar zero broadcasts to its first batch's shape
        samples += len(labels)
    sums["n"] = samples
    return sums


class EvaluationStopped(Exception):
    """An evaluation stopped before its last batch (a Ctrl-C): its sums are incomplete."""


def mean_metrics(sums: dict[str, Any], task: str) -> dict[str, float]:
    """``loss``, the task's scores (a classifier's ``accuracy``) and the sample count ``n``
    from the sums ``evaluate`` returns."""
    return tasks.get(task).means(sums)


def chunks(batches: Batches, size: int) -> Iterator[list[Batch]]:
    iterator = iter(batches)
    while group := list(itertools.islice(iterator, size)):
        yield group


def to_memory_format(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return images.contiguous(memory_format=torch.channels_last) if channels_last and images.ndim == 4 else images


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def no_sync_unless(model: nn.Module, last: bool) -> Any:
    """DDP's ``no_sync`` for all but the last batch of an accumulation group."""
    return model.no_sync() if hasattr(model, "no_sync") and not last else nullcontext()  # type: ignore[operator]
