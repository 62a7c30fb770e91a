"""The checks a course teaches before a long run: the initial loss, overfitting a few
batches, and a learning-rate range test. None of them touches a run directory."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import dltool.tasks as tasks
from dltool._io import atomic_write_json, atomic_write_text
from dltool._yaml import dump_yaml
from dltool.config.schema import Config
from dltool.config.validate import validate_config
from dltool.engine.autoset import pick_precision
from dltool.engine.device import resolve_device, resolve_precision
from dltool.engine.distributed import World
from dltool.engine.loop import evaluate, mean_metrics, to_memory_format
from dltool.engine.setup import Components, build_components
from dltool.models.target_scale import target_units
from dltool.rundir import create_run_dir

OVERFIT_TARGET = 0.01
# Range-test steps left out of the suggestion (fastai's lr_find skips as many).
SKIP_START = 10


@torch.inference_mode()
def preflight(parts: Components) -> str:
    """One line about the first batch's loss (a classifier's against ln(classes)); uses no randomness."""
    step = parts.step
    images, labels = next(iter(parts.train_batches.batches(0)))
    parts.model.eval()
    with step.precision.autocast(step.device):
        output = parts.model(to_memory_format(images, step.channels_last))
        loss = float(step.loss_fn(output, tasks.get(step.task).target(images, labels)))
    return tasks.get(step.task).preflight(loss, parts.data.classes, parts.config.model.weights_source())


@dataclass(frozen=True)
class OverfitResult:
    batches: int
    steps: int
    initial_loss: float
    final_loss: float
    target: float

    @property
    def reached(self) -> bool:
        return self.final_loss < self.target


def overfit_batches(config: Config, batches: int) -> OverfitResult:
    """Train on the first ``batches`` training batches only, as many optimizer steps as the
    full run would take, until their loss (eval mode, no label smoothing) is below 0.01.

    A model that cannot memorise a handful of batches has a bug. Label smoothing, MixUp,
    CutMix, early stopping and the time budget are switched off: they exist to prevent
    exactly this (and mixed batches carry soft targets the loss measured here cannot score).
    """
    sections = config.to_dict()
    if "label_smoothing" in sections["loss"]:
        sections["loss"]["label_smoothing"] = 0.0
    sections["data"]["augment"].update(mixup=0.0, cutmix=0.0)
    sections["train"].update(limit_batches=None, max_time=None, accumulate=1)
    config = validate_config(sections)
    parts = _components(config)
    budget = config.train.epochs * len(parts.train_batches)
    fixed = list(itertools.islice(parts.train_batches.batches(0), batches))  # a streamed epoch: only these

    def measure() -> float:
        sums = evaluate(parts.model, fixed, parts.step.precision, parts.step.device, parts.step.task)
        # A regression's loss in standard deviations: 0.01 g² is out of reach of weights near 70,000 g.
        return mean_metrics(sums | target_units(parts.model), parts.step.task)["loss"]

    initial = loss = measure()
    steps = 0
    while steps < budget and loss >= OVERFIT_TARGET:
        parts.model.train()
        for images, labels in fixed:
            step_loss, _ = parts.step.forward(images, labels)
            parts.step.backward(step_loss)
            parts.step.update()
            steps += 1
        loss = measure()
    return OverfitResult(len(fixed), steps, initial, loss, OVERFIT_TARGET)


@dataclass(frozen=True)
class LRFinderResult:
    suggested_lr: float
    lrs: list[float]
    losses: list[float]  # smoothed


def find_lr(config: Config, *, start: float = 1e-7, end: float = 10.0, steps: int = 100) -> LRFinderResult:
    """Leslie Smith's range test: raise the learning rate exponentially from ``start`` to
    ``end`` over ``steps`` optimizer steps, recording the smoothed loss; stop once it
    explodes (4× its minimum). Suggests the rate where the loss falls fastest."""
    sections = config.to_dict()
    sections["scheduler"] = {"name": "none"}
    sections["optimizer"]["lr"] = start
    config = validate_config(sections)
    parts = _components(config)
    ratio = (end / start) ** (1 / max(1, steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed, best = 0.0, math.inf
    epoch = 0
    while len(lrs) < steps:
        for images, labels in parts.train_batches.batches(epoch):
            lr = start * ratio ** len(lrs)
            for group in parts.step.optimizer.param_groups:
                group["lr"] = lr
            parts.model.train()
            loss, _ = parts.step.forward(images, labels)
            parts.step.backward(loss)
            parts.step.update()
            smoothed = 0.98 * smoothed + 0.02 * float(loss.detach())
            value = smoothed / (1 - 0.98 ** (len(lrs) + 1))  # bias-corrected moving average
            lrs.append(lr)
            losses.append(value)
            best = min(best, value)
            if not math.isfinite(value) or value > 4 * best or len(lrs) >= steps:
                return LRFinderResult(_steepest(lrs, losses), lrs, losses)
        epoch += 1
    return LRFinderResult(_steepest(lrs, losses), lrs, losses)


def save_lr_curve(result: LRFinderResult, config: Config, runs_dir: Path, source: str) -> Path:
    """Write the range test into a new ``runs_dir/<source>-find-lr-<n>/``: the config it ran
    and ``lr_find.json`` (the suggestion, the curve's own path, the rates and smoothed losses).
    Returns the path of ``lr_find.json``."""
    out = create_run_dir(runs_dir, f"{source}-find-lr")
    atomic_write_text(out.config, dump_yaml(config.to_dict()))
    curve = out.lr_curve
    document = {"suggested_lr": result.suggested_lr, "curve": str(curve), "lrs": result.lrs, "losses": result.losses}
    atomic_write_json(curve, document)
    return curve


def _steepest(lrs: list[float], losses: list[float]) -> float:
    """The learning rate where the smoothed loss falls fastest against log(lr), past the
    first ``SKIP_START`` steps where there are more: there the bias-corrected average is
    still a few raw losses, and their noise "fell fastest" at the sweep's first rate."""
    start = SKIP_START if len(lrs) >= 2 * SKIP_START else 0
    finite = [(lr, loss) for lr, loss in zip(lrs[start:], losses[start:]) if math.isfinite(loss)]
    if len(finite) < 3:
        return finite[0][0] if finite else lrs[0]
    x, y = np.log10([lr for lr, _ in finite]), np.array([loss for _, loss in finite])
    return float(10 ** x[int(np.argmin(np.gradient(y, x)))])


def _components(config: Config) -> Components:
    device = resolve_device(config.train.device)
    torch.manual_seed(config.train.seed)
    parts = build_components(config, device, resolve_precision(config.train.amp, device), World())
    return pick_precision(parts, None)[0]  # in the precision a run would train in
