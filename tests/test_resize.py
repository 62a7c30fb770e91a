"""The evaluation transform's resampling (Pillow on float pixels) against torch's
``F.interpolate(antialias=True)``, and NumPy's normalisation against the tensors' one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dltool.data.normalise import Normalise, normalise
from dltool.data.resize import resample, resize_images

SIZES = [
    ((300, 400), (256, 341)),  # a drafted 1600×1200 photo to 224 / 0.875
    ((1200, 1600), (256, 341)),
    ((64, 48), (224, 224)),  # enlarged
    ((45, 61), (24, 24)),
    ((8, 8), (10, 10)),
    ((17, 5), (40, 3)),  # one side up, the other down
]


@pytest.mark.parametrize(("source", "target"), SIZES)
def test_resized_images_are_torch_s_antialiased_bilinear_to_within_one_level(source, target) -> None:
    images = np.random.default_rng(0).integers(0, 256, (2, 3, *source), dtype=np.uint8)
    ours = resize_images(images, target)
    tensors = torch.from_numpy(images).float()
    theirs = F.interpolate(tensors, size=target, mode="bilinear", antialias=True, align_corners=False)
    theirs_u8 = theirs.round().clamp(0, 255).to(torch.uint8).numpy()
    differ = ours.astype(int) - theirs_u8
    assert ours.shape == (2, 3, *target) and ours.dtype == np.uint8
    assert np.abs(differ).max() <= 1 and np.mean(differ != 0) < (0.001 if source[0] > target[0] else 0.05)


def test_resample_keeps_float_planes_and_a_constant() -> None:
    plane = np.full((7, 9), -3.25, np.float32)
    assert np.allclose(resample(plane, (20, 2)), -3.25) and resample(plane, (20, 2)).shape == (20, 2)


def test_numpy_and_tensor_normalisation_give_the_same_bits() -> None:
    images = np.random.default_rng(1).integers(0, 256, (4, 3, 5, 6), dtype=np.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    tensors = Normalise(mean, std, torch.device("cpu"))(torch.from_numpy(images)).numpy()
    arrays = normalise(images, mean, std)
    assert arrays.dtype == np.float32 and np.array_equal(arrays, tensors)
