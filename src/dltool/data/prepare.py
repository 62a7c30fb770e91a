"""From a ``data`` config to ready splits: load, draw val, resize, measure mean/std."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dltool.config.schema import DataConfig
from dltool.data import DatasetParams, datasets
from dltool.data.arrays import ImageArrays, Split
from dltool.data.splits import stratified_split
from dltool.errors import DatasetError


@dataclass(frozen=True)
class PreparedData:
    """Train/val/test splits of uint8 images with what a model needs to read them."""

    classes: list[str]
    splits: dict[str, Split]
    mean: list[float]
    std: list[float]

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.splits["train"].images.shape[1:])  # type: ignore[return-value]


def prepare_data(config: DataConfig) -> PreparedData:
    """Load ``config.name``, draw a stratified val split if it has none, resize, measure stats."""
    arrays = load_arrays(config)
    splits = dict(arrays.splits)
    if "val" not in splits:
        splits["train"], splits["val"] = stratified_split(
            splits["train"], config.val_fraction, config.split_seed
        )
    if config.image_size is not None:
        splits = {name: resize(split, config.image_size) for name, split in splits.items()}
    if config.mean is not None and config.std is not None:
        mean, std = config.mean, config.std
    else:
        mean, std = channel_stats(splits["train"].images)
    if len(mean) != splits["train"].images.shape[1]:
        raise DatasetError(f"data.mean has {len(mean)} values; the images have {splits['train'].images.shape[1]} channels")
    return PreparedData(arrays.classes, splits, mean, std)


def load_arrays(config: DataConfig) -> ImageArrays:
    if config.name not in datasets and Path(config.name).is_dir():
        raise DatasetError(f"{config.name}: image-folder datasets are not supported by this version")
    entry = datasets.get(config.name)
    return entry.load()(root=config.root)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W), in [0, 1] units."""
    pixels = images.astype(np.float64) / 255.0
    return pixels.mean(axis=(0, 2, 3)).tolist(), pixels.std(axis=(0, 2, 3)).tolist()


def resize(split: Split, size: int) -> Split:
    """Square-resize uint8 images with antialiased bilinear interpolation."""
    if split.images.shape[-2:] == (size, size):
        return split
    images = torch.from_numpy(split.images).float()
    resized = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return Split(resized.round().clamp(0, 255).to(torch.uint8).numpy(), split.labels)


__all__ = ["DatasetParams", "PreparedData", "channel_stats", "prepare_data"]
