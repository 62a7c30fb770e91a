"""Turning uint8 pixels into the model's input: (x/255 − mean) / std per channel.

One implementation for training batches, evaluation and prediction, so a model always sees
pixels prepared exactly as in training: ``normalise`` on NumPy arrays (``dltool predict``,
torch-free), ``Normalise`` on tensors on the training device, both one float32 multiply and
one add by the same constants (``scale_and_shift``), so they give the same bits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def scale_and_shift(mean: list[float], std: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """float32 (1, C, 1, 1) each: (x/255 − mean) / std folded into x · scale + shift."""
    deviation = np.asarray(std, np.float32)
    scale = np.float32(1.0) / (np.float32(255.0) * deviation)
    shift = -np.asarray(mean, np.float32) / deviation
    return scale.reshape(1, -1, 1, 1), shift.reshape(1, -1, 1, 1)


def normalise(images: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """uint8 (N, C, H, W) → float32, normalised with the dataset's per-channel mean/std."""
    scale, shift = scale_and_shift(mean, std)
    out = images.astype(np.float32)
    out *= scale
    out += shift
    return out


class Normalise:
    """uint8 (N, C, H, W) tensors → float32, normalised with the dataset's per-channel mean/std."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device):
        import torch

        scale, shift = scale_and_shift(mean, std)
        self.scale = torch.from_numpy(scale).to(device)
        self.shift = torch.from_numpy(shift).to(device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # In place on the fresh float copy: several times faster on CPU than an addcmul
        # that broadcasts into a new output.
        return images.to(self.scale.dtype, copy=True).mul_(self.scale).add_(self.shift)
