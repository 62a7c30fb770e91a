"""What a stream loader's worker makes of one sample: its image, cut by the training
transform's random-resized crop from the file at the resolution the crop needs, or through
the evaluation transform; and, where the crop moves it, its target (a segmentation mask, a
keypoint row). The rest of ``data.augment`` runs on the worker's batch
(``dltool.data.stream``)."""

from __future__ import annotations

import numpy as np

from dltool.data.augment import Augmenter
from dltool.data.files import FileSplit
from dltool.data.images import read_resized_crop, to_channels
from dltool.data.mask_decode import resize_mask
from dltool.data.table_decode import box_shares

# One decoded image (C, H, W) and its target when the worker makes it (a segmentation
# split's mask (H, W), a keypoint row cut by the crop); None: its row of the split's labels
Sample = tuple[np.ndarray, np.ndarray | None]


def decode_sample(split: FileSplit, augmenter: Augmenter | None, epoch: int, draw: int) -> Sample:
    """The image of ``draw`` (a key of ``dltool.data.sampling``) and, in a segmentation split,
    its mask: for training in ``epoch`` with ``augmenter`` (``train_image``, ``train_pair``),
    else through the evaluation transform."""
    index = draw % len(split)
    if augmenter is None or augmenter.config.random_resized_crop is None:
        return split.pair(index) if split.masks is not None else (split.image(index), None)
    if split.masks is not None:
        return train_pair(split, augmenter, epoch, draw)
    if split.stored_points is not None:
        return train_points(split, augmenter, epoch, draw)
    return train_image(split, augmenter, epoch, draw)[0], None


def train_image(split: FileSplit, augmenter: Augmenter, epoch: int, draw: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The sample of ``draw`` (a key of ``dltool.data.sampling``) for training in ``epoch``,
    cut by its random-resized crop, and the file's stored (height, width). The box is drawn on
    the stored size and cut from the file decoded at the smallest JPEG scale that still gives
    the box the output's pixels, then resized to the split's size (Pillow's antialiased
    bilinear, as torchvision's crop on PIL images; ``read_resized_crop``): the crop keeps the
    photo's detail, and a large photo is never decoded whole."""
    channels, height, width = split.image_shape
    stored: list[tuple[int, int]] = []

    def box_for(rows: int, columns: int) -> tuple[int, int, int, int]:
        stored.append((rows, columns))
        return augmenter.crop_box(epoch, draw, rows, columns)

    image = read_resized_crop(split.path(draw % len(split)), box_for, (height, width))
    return to_channels(image, channels), stored[0]


def train_pair(split: FileSplit, augmenter: Augmenter, epoch: int, draw: int) -> tuple[np.ndarray, np.ndarray]:
    """``train_image`` of a segmentation sample with its mask: the same box, cut from the
    mask at its stored size (the image's) and resized by nearest neighbour, so each kept
    pixel keeps its class index (``IGNORE`` included)."""
    image, stored = train_image(split, augmenter, epoch, draw)
    mask = split.mask(draw % len(split), stored)
    top, left, rows, columns = augmenter.crop_box(epoch, draw, *stored)
    return image, resize_mask(mask[top : top + rows, left : left + columns], split.image_shape[1:])


def train_points(split: FileSplit, augmenter: Augmenter, epoch: int, draw: int) -> tuple[np.ndarray, np.ndarray]:
    """``train_image`` of a keypoint sample with its target row: the points (pixels of the
    stored image) mapped through the same box to shares of the crop, NaN where it cuts them
    off; the rows after them (pixel scale, NME normaliser) those of the evaluation transform."""
    assert split.stored_points is not None
    image, stored = train_image(split, augmenter, epoch, draw)
    index = draw % len(split)
    row = split.labels[index].copy()
    points = split.stored_points[index]
    row[: len(points)] = box_shares(points, augmenter.crop_box(epoch, draw, *stored), split.image_shape[1:])
    return image, row
