"""Keypoints moved with their images by the training augmentation.

``move_points`` reads the same per-sample draws as ``Augmenter.pair`` (they depend only on
seed, epoch, sample index and op) and applies each geometric op to the points instead of the
pixels: the random-resized crop and the affine map (the inverse of the output → input maps
``grid_sample`` uses), the padded crop and the horizontal flip (``flip_order`` swaps left and
right points), the vertical flip. A point that leaves the image, or the crop, becomes
missing (NaN); photometric ops and erasing leave points where they are.

Points are (x, y) shares of the image's width and height, with 0 and 1 the outer edges of
the first and last pixels (torch's ``align_corners=False`` frame).
"""

from __future__ import annotations

import numpy as np
import torch

from dltool.data.augment import Augmenter, on_device
from dltool.data.geometry import BOX_DRAWS, crop_matrices, resized_crop_boxes
from dltool.data.table_decode import POINT_ROWS
from dltool.errors import ConfigError


def augmented(
    augmenter: Augmenter,
    kind: str,
    batch: tuple[torch.Tensor, torch.Tensor],
    at: tuple[int, np.ndarray],
    flip_order: torch.Tensor | None = None,
    cropped: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and their targets of ``kind`` (``target_kind``) for (epoch, indices) ``at``,
    as both loaders train on them: masks and points move with their images, labels and values
    stay; ``cropped``: the random-resized crop was cut from the file (see ``move_points``)."""
    (images, targets), (epoch, indices) = batch, at
    if kind == "masks":
        images, masks = augmenter.pair(images, targets, epoch, indices, cropped)
        assert masks is not None
        return images, masks
    if kind == "points":
        size = int(images.shape[-2]), int(images.shape[-1])
        targets = moved_targets(augmenter, targets, epoch, indices, size, flip_order, cropped)
    return augmenter(images, epoch, indices, cropped), targets


def moved_targets(
    augmenter: Augmenter,
    targets: torch.Tensor,
    epoch: int,
    indices: np.ndarray,
    size: tuple[int, int],
    flip_order: torch.Tensor | None = None,
    cropped: bool = False,
) -> torch.Tensor:
    """Keypoint targets (B, K + ``POINT_ROWS``, 2) with their points moved by ``move_points``
    (the rows after them kept): what both loaders train on."""
    count = targets.shape[1] - POINT_ROWS
    points = move_points(augmenter, targets[:, :count], epoch, indices, size, flip_order, cropped)
    return torch.cat([points, targets[:, count:]], 1)


def move_points(
    augmenter: Augmenter,
    points: torch.Tensor,
    epoch: int,
    indices: np.ndarray,
    size: tuple[int, int],
    flip_order: torch.Tensor | None = None,
    cropped: bool = False,
) -> torch.Tensor:
    """``points`` (B, K, 2) of samples ``indices`` moved as ``augmenter`` moves the pixels of
    their ``size`` (height, width) images in ``epoch``; ``cropped``: the points already follow
    the random-resized crop (the stream loader cuts it from the file), which is skipped."""
    if not augmenter.transforms or len(points) == 0:
        return points
    if augmenter.config.auto.policy != "none":
        raise ValueError("data.augment.auto moves pixels of the image alone: not with points")
    indices = np.asarray(indices, dtype=np.int64)
    points = _geometry(augmenter, points, epoch, indices, size, cropped)
    return _crop_and_flips(augmenter, points, epoch, indices, size, flip_order)


def _geometry(
    augmenter: Augmenter, points: torch.Tensor, epoch: int, indices: np.ndarray, size: tuple[int, int], cropped: bool
) -> torch.Tensor:
    crop = None if cropped else augmenter.config.random_resized_crop
    theta = augmenter.affine(epoch, indices, size)
    if crop is None and theta is None:
        return points
    inputs = np.ones((*points.shape[:2], 3))
    inputs[..., :2] = 2 * points.detach().cpu().double().numpy() - 1  # the normalised frame
    inside = np.ones(points.shape[:2], dtype=bool)
    if crop is not None:
        boxes = resized_crop_boxes(augmenter.draws("crop", epoch, indices, BOX_DRAWS), *size, crop.scale, crop.ratio)
        inputs = inputs @ np.linalg.inv(crop_matrices(boxes, *size)).transpose(0, 2, 1)
        inside &= (np.abs(inputs[..., :2]) <= 1).all(-1)
    if theta is not None:
        inputs = inputs @ np.linalg.inv(theta).transpose(0, 2, 1)
    moved = np.where((inside & (np.abs(inputs[..., :2]) <= 1).all(-1))[..., None], (inputs[..., :2] + 1) / 2, np.nan)
    return on_device(moved, points.device).to(points.dtype)


def _crop_and_flips(
    augmenter: Augmenter,
    points: torch.Tensor,
    epoch: int,
    indices: np.ndarray,
    size: tuple[int, int],
    flip_order: torch.Tensor | None,
) -> torch.Tensor:
    config, device = augmenter.config, points.device
    pad = config.crop_padding
    height, width = size
    if pad > 0:  # output pixel (r, c) is input pixel (r + offset_r − pad, c + offset_c − pad)
        offsets = augmenter.draws("padding", epoch, indices, 2) * (2 * pad + 1)
        shift = (offsets.astype(np.int64)[:, ::-1] - pad) / np.array([width, height])
        points = _inside(points - on_device(shift, device)[:, None, :].to(points.dtype))
    if config.flip:
        points = _mirrored(points, augmenter.draws("flip", epoch, indices, 1)[:, 0] < 0.5, 0, flip_order)
    if config.vflip:
        points = _mirrored(points, augmenter.draws("vflip", epoch, indices, 1)[:, 0] < 0.5, 1, None)
    return points


def _mirrored(points: torch.Tensor, chosen: np.ndarray, axis: int, order: torch.Tensor | None) -> torch.Tensor:
    """``points`` with coordinate ``axis`` mirrored (and the points reordered by ``order``) in
    the rows ``chosen`` (a boolean per row)."""
    rows = on_device(chosen, points.device)[:, None]
    mirrored = points.clone()
    mirrored[..., axis] = 1 - mirrored[..., axis]
    if order is not None:
        mirrored = mirrored[:, order]
    return torch.where(rows[..., None], mirrored, points)


def _inside(points: torch.Tensor) -> torch.Tensor:
    """Points outside the image as missing (NaN)."""
    outside = ((points < 0) | (points > 1)).any(-1, keepdim=True)
    return points.masked_fill(outside, float("nan"))


def flip_order(pairs: list[tuple[str, str]], names: list[str]) -> list[int] | None:
    """The point order after a horizontal flip: each of ``pairs`` swapped; None without pairs.
    Raises ``ConfigError`` naming a point that is not one of ``names``."""
    if not pairs:
        return None
    order = list(range(len(names)))
    for left, right in pairs:
        for name in (left, right):
            if name not in names:
                raise ConfigError(f"data.flip_pairs: {name!r} is not a point; the points are {', '.join(names)}")
        a, b = names.index(left), names.index(right)
        order[a], order[b] = b, a
    return order
