"""Geometric augmentation, batched: boxes and affine maps drawn per sample, one resampling.

Boxes (random-resized crop, random erasing) and affine matrices are computed in NumPy from
each sample's uniforms (see ``dltool.data.draws``); the images are then resampled once with
``F.affine_grid`` + ``F.grid_sample`` on the training device, whatever mix of crop, rotation,
shift, zoom and shear each sample drew.

Matrices map *output* coordinates to *input* coordinates (what ``grid_sample`` needs), in
torch's normalised frame: −1 and 1 are the outer edges of the first and last pixels
(``align_corners=False``), so a box's edges map exactly onto the output's edges.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Tries at a box that fits before falling back (torchvision's RandomResizedCrop and RandomErasing).
ATTEMPTS = 10
BOX_DRAWS = 4 * ATTEMPTS


def _attempts(
    uniforms: np.ndarray, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[np.ndarray, ...]:
    """Per sample and attempt: the box's height, width (px, float) and two uniforms for its
    position. ``uniforms`` (N, BOX_DRAWS); area = scale × image area, width / height = ratio
    (log-uniform)."""
    u = uniforms.reshape(len(uniforms), ATTEMPTS, 4)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    low, high = np.log(ratio[0]), np.log(ratio[1])
    aspect = np.exp(low + (high - low) * u[..., 1])
    return np.sqrt(area / aspect), np.sqrt(area * aspect), u[..., 2], u[..., 3]


def _first(found: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each value at each row's first attempt where ``found`` holds (the last when none does)."""
    first = np.where(found.any(1), found.argmax(1), ATTEMPTS - 1)
    return tuple(np.take_along_axis(v, first[:, None], 1)[:, 0] for v in values)


def resized_crop_boxes(
    uniforms: np.ndarray, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> np.ndarray:
    """(N, 4) float boxes (top, left, height, width) in px: torchvision's RandomResizedCrop
    without its rounding, so the box of a sample is the same share of the image at any
    resolution. When no attempt fits, the whole image cropped to the nearest allowed ratio."""
    h, w, u_top, u_left = _attempts(uniforms, height, width, scale, ratio)
    fits = (h <= height) & (w <= width)
    h, w, u_top, u_left = _first(fits, h, w, u_top, u_left)
    # torchvision's fallback: a centred crop of the whole image at the clamped ratio.
    fallback_w = np.clip(width, None, height * ratio[1])
    fallback_h = np.clip(height, None, width / ratio[0])
    found = fits.any(1)
    h = np.where(found, h, fallback_h)
    w = np.where(found, w, fallback_w)
    u_top = np.where(found, u_top, 0.5)
    u_left = np.where(found, u_left, 0.5)
    return np.stack([u_top * (height - h), u_left * (width - w), h, w], 1)


def erasing_boxes(
    uniforms: np.ndarray, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> np.ndarray:
    """(N, 4) int64 boxes (top, left, height, width) of torchvision's RandomErasing: whole
    pixels, strictly smaller than the image; an empty box (0 × 0) when no attempt fits."""
    h, w, u_top, u_left = _attempts(uniforms, height, width, scale, ratio)
    h, w = np.round(h), np.round(w)
    fits = (h < height) & (w < width) & (h > 0) & (w > 0)
    h, w, u_top, u_left = _first(fits, h, w, u_top, u_left)
    found = fits.any(1)
    top = np.floor(u_top * (height - h + 1))
    left = np.floor(u_left * (width - w + 1))
    return np.stack([top, left, h * found, w * found], 1).astype(np.int64)


def crop_matrices(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 3, 3) maps from the output frame to each box (top, left, h, w) of the input."""
    top, left, h, w = boxes.T
    theta = np.zeros((len(boxes), 3, 3))
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    theta[:, 2, 2] = 1
    return theta


def affine_matrices(
    angle: np.ndarray,
    shift: np.ndarray,
    scale: np.ndarray,
    shear: np.ndarray,
    centre: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:
    """(N, 3, 3) output → input maps of the forward transform p ↦ c + t + R(angle)·Sh·scale·(p − c).

    All per sample: ``angle`` in degrees, ``shift`` (N, 2) px (x, y), ``shear`` (N, 2) the
    shear factors (x by y, y by x), ``centre`` (N, 2) px from the image centre. ``size`` is
    (height, width)."""
    radians = np.deg2rad(angle)
    cos, sin = np.cos(radians), np.sin(radians)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shearing = np.ones((len(angle), 2, 2))
    shearing[:, 0, 1], shearing[:, 1, 0] = shear[:, 0], shear[:, 1]
    forward = rotation @ shearing * scale[:, None, None]
    inverse = np.linalg.inv(forward)
    offset = centre - (inverse @ (centre + shift)[..., None])[..., 0]
    # From pixels (origin at the image centre) to the normalised frame.
    half = np.array([size[1] / 2, size[0] / 2])
    theta = np.zeros((len(angle), 3, 3))
    theta[:, :2, :2] = inverse * half[None, None, :] / half[None, :, None]
    theta[:, :2, 2] = offset / half
    theta[:, 2, 2] = 1
    return theta


def warp(
    images: torch.Tensor,
    theta: torch.Tensor,
    mode: str = "bilinear",
    frame: torch.Tensor | None = None,
    fill: int = 0,
) -> torch.Tensor:
    """uint8 ``images`` resampled through the output → input maps ``theta`` (N, 3, 3) float32
    on their device, ``fill`` (black) outside the input. With ``frame`` (N, 3, 3), ``theta``
    leads into that intermediate frame, ``frame`` from it to the input, and what falls outside
    the frame is filled too (an affine map of a crop, sampled straight from the uncropped
    image). ``mode="nearest"`` moves class masks (no value is blended)."""
    n, channels, height, width = images.shape
    grid = F.affine_grid(theta[:, :2], [n, channels, height, width], align_corners=False)
    outside = None
    if frame is not None:
        outside = (grid.abs() > 1).any(-1)
        grid = grid @ frame[:, None, :2, :2].transpose(-1, -2) + frame[:, None, None, :2, 2]
    # Sampled relative to the fill, so that grid_sample's zero padding gives the fill.
    out = F.grid_sample(images.float() - fill, grid, mode=mode, padding_mode="zeros", align_corners=False) + fill
    if outside is not None:
        out = out.masked_fill(outside[:, None], float(fill))
    return out.round_().clamp_(0, 255).to(torch.uint8)
