"""How a training epoch draws its samples (``data.sampler``): one function per sampler.

A sampler turns a split's labels and an epoch's generator into the epoch's *draws*, one key
per sample of the split, whose sample is ``key % len(labels)``. ``random`` draws every
sample once, in a random order, and its keys are the sample indices. ``balanced`` draws with
replacement, each sample with a weight of one over its class's size, so every class is drawn
equally often on average (torch's ``WeightedRandomSampler`` with inverse class frequencies).
The k-th repeat of a sample within an epoch has the key ``index + k × len(labels)``: its
augmentation, drawn from (seed, epoch, key), differs from the first copy's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dltool.errors import ConfigError

Sampler = Callable[[np.ndarray, torch.Generator], np.ndarray]


def shuffled(labels: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Each sample once, in a random order."""
    return torch.randperm(len(labels), generator=generator).numpy()


def balanced(labels: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """``len(labels)`` draws with replacement, weighted by inverse class frequency."""
    if labels.ndim > 1:
        raise ConfigError("data.sampler: balanced weighs images by their class; masks give none (use random)")
    weights = 1.0 / np.bincount(labels)[labels]
    draws = torch.multinomial(torch.from_numpy(weights), len(labels), replacement=True, generator=generator)
    samples = draws.numpy()
    return samples + len(labels) * repeats(samples)


def repeats(samples: np.ndarray) -> np.ndarray:
    """For each draw, how many times its sample was drawn before it."""
    order = np.argsort(samples, kind="stable")
    ranked = samples[order]
    positions = np.arange(len(ranked))
    starts = np.maximum.accumulate(np.where(np.r_[True, ranked[1:] != ranked[:-1]], positions, 0))
    counts = np.empty_like(samples)
    counts[order] = positions - starts
    return counts


SAMPLERS: dict[str, Sampler] = {"random": shuffled, "balanced": balanced}
