"""Regression outputs in the targets' own units, learnt as standardised values.

A regression head that starts at zero is far from targets such as ages (mean 40) or prices
(thousands): with Adam's steps of about ``lr`` its bias needs tens of thousands of steps to
reach them, and a small target beside a large one hardly trains. So a model whose task
``scales_outputs`` maps its head's outputs ``z`` to ``z * std + mean`` in a last step, with
each target's mean and standard deviation over the training split, fitted once when a run
starts (``fit_target_scale``): the head learns standardised values, while every output the
model gives — scores, ``predict`` and exports — stays in the targets' units. The losses
measure each error in its target's standard deviations: training's (``standardise_errors``),
and validation's, the test's and eval's (``target_units`` added to the task's sums). In the
targets' units a target in grams outweighed one in years by their variances' ratio (the small
one hardly trained), SGD's steps grew with it, and the loss curves stood a million apart.

The step is a forward hook of the model (tracing, ``torch.export`` and DDP all run it; a
child module would join an ``nn.Sequential``'s layers) reading two buffers of it, which
travel in the weights: a model built from its params and loaded from them scales as trained.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

SHOWN_TARGETS = 4
MEAN, STD = "target_mean", "target_std"  # the model's buffers, in the weights' keys


def add_target_scale(model: nn.Module, outputs: int) -> None:
    """Give ``model`` a last step to the targets' units (identity until fitted)."""
    model.register_buffer(MEAN, torch.zeros(outputs))
    model.register_buffer(STD, torch.ones(outputs))
    model.register_forward_hook(_scaled)
    model.register_load_state_dict_pre_hook(_unscaled_weights)


def _scaled(model: nn.Module, args: Any, z: torch.Tensor) -> torch.Tensor:
    return z * model.get_buffer(STD).to(z.dtype) + model.get_buffer(MEAN).to(z.dtype)


def _unscaled_weights(model: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    # Weights saved before outputs were scaled hold no scale: their head gave the targets' units.
    for name in (MEAN, STD):
        state.setdefault(prefix + name, model.get_buffer(name))


def standardise_errors(loss_fn: nn.Module, model: nn.Module) -> nn.Module:
    """``loss_fn`` measuring ``model``'s errors in its targets' standard deviations, the units
    its head learns, when the model scales its outputs (the buffer is read at every step, so
    a resumed run's weights bring theirs)."""
    in_units_of = getattr(loss_fn, "in_units_of", None)  # the distances' (mse, l1, smooth_l1)
    if hasattr(model, STD) and callable(in_units_of):
        in_units_of(model.get_buffer(STD))
    return loss_fn


def target_units(model: nn.Module) -> dict[str, list[float]]:
    """``{"target_std": ...}``, the standard deviation of each target that ``model``'s errors
    are measured in, for its scores' sums (``dltool.tasks.regression``); empty for a model
    that does not scale its outputs."""
    return {STD: model.get_buffer(STD).tolist()} if hasattr(model, STD) else {}


def fit_target_scale(model: nn.Module, targets: np.ndarray, names: list[str]) -> str | None:
    """Set ``model``'s scale to each target's mean and standard deviation over ``targets``
    (N, T), leaving missing values (NaN) out; the run log's line, None for a model without one.
    A target with no spread (or no value) keeps a unit scale."""
    if not hasattr(model, STD):
        return None
    mean, std = target_moments(np.asarray(targets, np.float64))
    model.get_buffer(MEAN).copy_(torch.from_numpy(mean))
    model.get_buffer(STD).copy_(torch.from_numpy(std))
    return _scale_line(names, mean, std)


def inherited_scale_line(model: nn.Module, targets: np.ndarray, names: list[str], source: str) -> str | None:
    """The run log's line when the weights of ``source`` replaced the scale fitted to
    ``targets`` (it came with their head), naming both; None when the fitted one stayed."""
    fitted = target_moments(np.asarray(targets, np.float64))
    kept = [model.get_buffer(name).cpu().numpy() for name in (MEAN, STD)]
    if all(np.array_equal(a, b) for a, b in zip(kept, fitted)):
        return None
    return (
        f"outputs scaled to the targets' units as {source}'s head learnt them (mean ± sd: "
        f"{_moments(names, *kept)}); this training split's: {_moments(names, *fitted)}"
    )


def _scale_line(names: list[str], mean: np.ndarray, std: np.ndarray) -> str:
    listed = _moments(names, mean, std)
    return f"outputs scaled to the targets' units (the head learns standardised values; mean ± sd: {listed})"


def _moments(names: list[str], mean: np.ndarray, std: np.ndarray) -> str:
    shown = [f"{name} {m:.4g} ± {s:.4g}" for name, m, s in zip(names, mean, std)]
    more = f" and {len(shown) - SHOWN_TARGETS} more" if len(shown) > SHOWN_TARGETS else ""
    return ", ".join(shown[:SHOWN_TARGETS]) + more


def target_moments(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``targets``: the mean and standard deviation of its present values (0 and
    1 where it has none, a standard deviation of 1 where they do not spread)."""
    present = ~np.isnan(targets)
    count = present.sum(0)
    values = np.where(present, targets, 0.0)
    mean = values.sum(0) / np.maximum(count, 1)
    spread = np.sqrt(np.square(np.where(present, values - mean, 0.0)).sum(0) / np.maximum(count, 1))
    std = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)
