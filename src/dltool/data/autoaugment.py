"""TrivialAugmentWide and RandAugment on a batch: each image picks its op, then each op runs
once on the images that picked it.

The op list, the magnitude bins and their signs are torchvision's (``transforms.v2``): 31
bins; geometric ops fill with black and sample the nearest pixel, shears pivot on the
top-left corner. The five geometric ops of a layer share one ``grid_sample``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dltool.data import colour
from dltool.data.geometry import affine_matrices, warp

BINS = 31
OPS = (
    "identity",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
)
GEOMETRIC = frozenset(range(1, 6))
SIGNED = frozenset(range(1, 10))
DRAWS_PER_LAYER = 3  # op, magnitude bin, sign


def magnitudes(policy: str, height: int, width: int) -> np.ndarray:
    """(len(OPS), BINS): each op's magnitude in each bin, for ``policy`` trivial or randaugment."""
    wide = policy == "trivial"
    ramp = np.linspace(0.0, 1.0, BINS)
    table = np.zeros((len(OPS), BINS))
    table[1:3] = ramp * (0.99 if wide else 0.3)
    table[3] = ramp * (32.0 if wide else 150.0 / 331.0 * width)
    table[4] = ramp * (32.0 if wide else 150.0 / 331.0 * height)
    table[5] = ramp * (135.0 if wide else 30.0)
    table[6:10] = ramp * (0.99 if wide else 0.9)
    table[10] = 8 - np.round(np.arange(BINS) / ((BINS - 1) / (6 if wide else 4)))
    table[11] = (1.0 - ramp) * 255.0
    return table


def draw_layer(uniforms: np.ndarray, table: np.ndarray, magnitude: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(op index, signed magnitude) per sample from its three uniforms of one layer;
    ``magnitude`` a fixed bin (randaugment) or None for a random bin (trivial)."""
    ops = np.minimum((uniforms[:, 0] * len(OPS)).astype(np.int64), len(OPS) - 1)
    bins = np.minimum((uniforms[:, 1] * BINS).astype(np.int64), BINS - 1) if magnitude is None else magnitude
    values = table[ops, bins]
    signs = np.where(np.isin(ops, list(SIGNED)) & (uniforms[:, 2] < 0.5), -1.0, 1.0)
    return ops, values * signs


def apply_layer(images: torch.Tensor, ops: np.ndarray, values: np.ndarray, to_device: Callable) -> torch.Tensor:
    """uint8 ``images`` with each sample's op applied at its magnitude."""
    images = images.clone()
    geometric = np.flatnonzero(np.isin(ops, list(GEOMETRIC)))
    if len(geometric):
        chosen = to_device(torch.from_numpy(geometric), images.device)
        height, width = images.shape[-2:]
        theta = _geometric(ops[geometric], values[geometric], (height, width))
        moved = warp(images.index_select(0, chosen), to_device(torch.from_numpy(theta), images.device), "nearest")
        images.index_copy_(0, chosen, moved)
    for op in (int(op) for op in np.unique(ops) if op not in GEOMETRIC and op != 0):
        rows = np.flatnonzero(ops == op)
        chosen = to_device(torch.from_numpy(rows), images.device)
        factors = to_device(torch.from_numpy(values[rows].astype(np.float32)), images.device)
        images.index_copy_(0, chosen, _pixel_op(OPS[op], images.index_select(0, chosen), factors))
    return images


def _geometric(ops: np.ndarray, values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, 3, 3) float32 maps of the shears, shifts and rotations ``ops`` at ``values``."""
    n = len(ops)
    shear = np.zeros((n, 2))
    shear[:, 0] = np.where(ops == 1, values, 0.0)
    shear[:, 1] = np.where(ops == 2, values, 0.0)
    shift = np.zeros((n, 2))
    shift[:, 0] = np.where(ops == 3, np.trunc(values), 0.0)
    shift[:, 1] = np.where(ops == 4, np.trunc(values), 0.0)
    angle = np.where(ops == 5, values, 0.0)
    # Shears pivot on the top-left corner (torchvision's center=[0, 0]); rotations on the centre.
    corner = np.array([-size[1] / 2, -size[0] / 2])
    centre = np.where((ops <= 2)[:, None], corner[None, :], 0.0)
    return affine_matrices(angle, shift, np.ones(n), shear, centre, size).astype(np.float32)


def _pixel_op(name: str, images: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """One colour or histogram op on uint8 images, at a magnitude per image."""
    if name in ("posterize", "solarize"):
        op = colour.posterize if name == "posterize" else colour.solarize
        return op(images, values.round().to(torch.uint8))
    if name in ("autocontrast", "equalize"):
        return colour.autocontrast(images) if name == "autocontrast" else colour.equalize(images)
    blend = {
        "brightness": colour.brightness,
        "color": colour.saturation,
        "contrast": colour.contrast,
        "sharpness": colour.sharpness,
    }[name]
    return blend(images.float(), 1.0 + values).round_().to(torch.uint8)
