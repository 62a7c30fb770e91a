"""Masks move with their images: every geometric op resamples both alike, photometric ops the image alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltool.config.augment import AugmentConfig
from dltool.data.arrays import Split
from dltool.data.augment import Augmenter
from dltool.data.loader import BatchLoader
from dltool.tasks.pixels import IGNORE

SIDE = 15  # mask values y·15 + x stay below IGNORE
STEP = 16  # the image's coordinate channels hold 16·x and 16·y: sixteenth-of-a-pixel precision


def _coordinates(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose pixels say where they are (channels 16·x, 16·y, 255) and masks y·15 + x."""
    y, x = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    image = torch.stack([x * STEP, y * STEP, torch.full_like(x, 255)]).to(torch.uint8)
    mask = (y * SIDE + x).to(torch.uint8)
    return image.expand(batch, -1, -1, -1).clone(), mask.expand(batch, -1, -1).clone()


GEOMETRIC = [
    {"flip": True, "vflip": True},
    {"crop_padding": 4, "flip": True},
    {"random_resized_crop": {"scale": [0.3, 1.0]}},
    {"affine": {"degrees": 40, "translate": 0.2, "scale": [0.7, 1.4], "shear": 15}},
    {"random_resized_crop": True, "affine": {"degrees": 30}, "crop_padding": 2, "flip": True, "vflip": True},
]


@pytest.mark.parametrize("augment", GEOMETRIC, ids=lambda a: "+".join(a))
def test_each_mask_pixel_holds_the_label_of_the_image_pixel_sampled(augment: dict) -> None:
    images, masks = _coordinates(64)
    out_images, out_masks = Augmenter(AugmentConfig(**augment), seed=3).pair(images, masks, 2, np.arange(64))
    assert out_masks is not None and out_masks.dtype == torch.uint8 and out_masks.shape == masks.shape
    source_x = out_images[:, 0].float() / STEP  # bilinear interpolation of a ramp is exact
    source_y = out_images[:, 1].float() / STEP
    inside = out_images[:, 2] == 255  # every neighbour sampled lies in the image
    ties = ((source_x % 1 - 0.5).abs() < 1 / STEP) | ((source_y % 1 - 0.5).abs() < 1 / STEP)
    checked = inside & ~ties
    expected = source_y.round() * SIDE + source_x.round()
    assert checked.float().mean() > 0.3  # the check covers much of every batch
    assert torch.equal(out_masks[checked].float(), expected[checked])
    moved = (out_masks != masks).any((1, 2)).sum()
    assert moved > 16  # the ops did something
    outside = out_images[:, 2] == 0
    if outside.any():  # black fill in the image is ignored in the mask
        assert (out_masks[outside] == IGNORE).all()


def test_photometric_ops_leave_the_masks_alone() -> None:
    images, masks = _coordinates(8)
    augment = AugmentConfig(color_jitter={"brightness": 0.5, "hue": 0.2}, grayscale=0.5, cutout=6, random_erasing=1.0)
    out_images, out_masks = Augmenter(augment, seed=0).pair(images, masks, 0, np.arange(8))
    assert not torch.equal(out_images, images) and out_masks is masks


def test_the_image_alone_is_augmented_as_before() -> None:
    images, masks = _coordinates(16)
    augmenter = Augmenter(AugmentConfig(**GEOMETRIC[-1]), seed=1)
    alone = augmenter(images, 0, np.arange(16))
    paired, _ = augmenter.pair(images, masks, 0, np.arange(16))
    assert torch.equal(alone, paired)
    with pytest.raises(ValueError, match="auto"):
        Augmenter(AugmentConfig(auto="trivial"), seed=0).pair(images, masks, 0, np.arange(16))


def test_the_loader_yields_int64_masks_moved_with_their_images() -> None:
    images, masks = _coordinates(12)
    split = Split(images.numpy(), masks.numpy())
    loader = BatchLoader(
        split,
        batch_size=4,
        mean=[0.0] * 3,
        std=[1 / 255] * 3,  # normalised values are the bytes themselves
        device=torch.device("cpu"),
        shuffle=True,
        augment=AugmentConfig(flip=True, crop_padding=3),
    )
    for batch_images, batch_masks in loader.batches(epoch=1):
        assert batch_masks.dtype == torch.int64 and batch_masks.shape == (4, SIDE, SIDE)
        inside = batch_images[:, 2] == 255
        expected = (batch_images[:, 1] / STEP).round() * SIDE + (batch_images[:, 0] / STEP).round()
        assert torch.equal(batch_masks[inside].float(), expected[inside])
        assert (batch_masks[~inside] == IGNORE).all()
    plain = next(BatchLoader(split, batch_size=4, mean=[0.0] * 3, std=[1.0] * 3, device=torch.device("cpu")).batches())
    assert torch.equal(plain[1], masks[:4].long())
