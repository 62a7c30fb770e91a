"""Batched augmentation: each op on hand-made tensors, per-sample determinism, and exact resume with it on.

The semantics of the newer ops (crops, colour, erasing, mixing) are in test_augment_ops.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import StopAfter
from dltool.config import load_config
from dltool.config.augment import AugmentConfig
from dltool.data.arrays import Split
from dltool.data.augment import Augmenter, crop_and_flip, cutout
from dltool.data.loader import BatchLoader
from dltool.engine import resume, train
from dltool.rundir import create_run_dir, open_run_dir


def ramp(n: int = 2, channels: int = 3, height: int = 5, width: int = 7) -> torch.Tensor:
    """Distinct uint8 values everywhere (1..), so any moved pixel is recognisable."""
    return (torch.arange(n * channels * height * width) % 250 + 1).to(torch.uint8).view(n, channels, height, width)


def test_flip_mirrors_only_the_chosen_images() -> None:
    images = ramp()
    out = crop_and_flip(images, torch.zeros(2, 2, dtype=torch.long), torch.tensor([0]), 0)
    assert torch.equal(out[0], images[0].flip(-1)) and torch.equal(out[1], images[1])


def test_crop_shifts_within_the_padding() -> None:
    images = ramp(n=3)
    offsets = torch.tensor([[2, 2], [0, 0], [4, 1]])  # padding 2: (2, 2) is the identity
    out = crop_and_flip(images, offsets, torch.tensor([], dtype=torch.long), 2)
    assert torch.equal(out[0], images[0])
    # Offset (0, 0) shows the padded image's top-left: the image moves down-right by 2.
    assert (out[1, :, :2] == 0).all() and (out[1, :, :, :2] == 0).all()
    assert torch.equal(out[1, :, 2:, 2:], images[1, :, :-2, :-2])
    # Offset (4, 1): up by 2, right by 1.
    assert torch.equal(out[2, :, :-2, 1:], images[2, :, 2:, :-1]) and (out[2, :, -2:] == 0).all()


def test_crop_and_flip_match_a_per_sample_reference() -> None:
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    offsets = torch.randint(0, 7, (16, 2))
    flips = torch.rand(16) < 0.5
    out = crop_and_flip(images, offsets, flips.nonzero().squeeze(1), 3)
    padded = F.pad(images, (3, 3, 3, 3))
    for i in range(16):
        y, x = offsets[i].tolist()
        expected = padded[i, :, y : y + 8, x : x + 8]
        assert torch.equal(out[i], expected.flip(-1) if flips[i] else expected)


def test_cutout_zeroes_a_square_clipped_at_the_borders() -> None:
    images = torch.full((2, 1, 8, 8), 9, dtype=torch.uint8)
    out = cutout(images, torch.tensor([[4, 4], [0, 7]]), 4)
    expected = torch.full((2, 1, 8, 8), 9, dtype=torch.uint8)
    expected[0, :, 2:6, 2:6] = 0  # centre (4, 4), side 4: rows and columns 2..5
    expected[1, :, 0:2, 5:8] = 0  # centre (0, 7): clipped to the top-right corner
    assert torch.equal(out, expected)


# Every per-image op on: what a sample gets must not depend on its batch.
EVERYTHING = AugmentConfig.model_validate(
    {
        "random_resized_crop": True,
        "crop_padding": 2,
        "flip": True,
        "vflip": True,
        "affine": {"degrees": 20, "translate": 0.1, "scale": [0.9, 1.1], "shear": 10},
        "auto": "trivial",
        "color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1},
        "grayscale": 0.3,
        "blur": True,
        "cutout": 3,
        "random_erasing": 0.5,
    }
)


def test_augmentation_is_a_function_of_seed_epoch_and_sample() -> None:
    images = torch.randint(0, 256, (32, 3, 12, 12), dtype=torch.uint8)
    indices = np.arange(100, 132)
    global_state = torch.get_rng_state()
    augment = Augmenter(EVERYTHING, seed=5)
    first = augment(images, 1, indices)
    assert torch.equal(first, Augmenter(EVERYTHING, seed=5)(images, 1, indices))
    # Another batch composition (shuffled, or a part of it): each sample transformed the same.
    order = np.random.default_rng(0).permutation(32)
    assert torch.equal(augment(images[order], 1, indices[order]), first[order])
    assert torch.equal(augment(images[5:9], 1, indices[5:9]), first[5:9])
    for other in [
        augment(images, 2, indices),
        augment(images, 1, indices + 1),
        Augmenter(EVERYTHING, seed=6)(images, 1, indices),
    ]:
        assert (other != first).flatten(1).any(1).float().mean() > 0.9
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is never drawn from
    assert first.dtype == torch.uint8 and (first != images).flatten(1).any(1).all()


def test_switching_one_op_off_keeps_the_others_choices() -> None:
    images = torch.randint(1, 256, (8, 1, 6, 6), dtype=torch.uint8)
    indices = np.arange(8)
    both = Augmenter(AugmentConfig(crop_padding=1, cutout=2), seed=0)(images, 0, indices)
    crop_only = Augmenter(AugmentConfig(crop_padding=1), seed=0)(images, 0, indices)
    assert torch.equal(both[both != 0], crop_only[both != 0])


def test_only_the_training_loader_augments() -> None:
    split = Split(np.random.default_rng(0).integers(0, 256, (10, 1, 4, 4), dtype=np.uint8), np.arange(10))
    args = {"batch_size": 10, "mean": [0.0], "std": [1.0], "device": torch.device("cpu")}
    plain = next(BatchLoader(split, **args).batches())[0]
    assert torch.allclose(plain * 255, torch.from_numpy(split.images).float(), atol=1e-4)
    off = BatchLoader(split, shuffle=True, augment=AugmentConfig(), **args)
    assert off.augment is None  # all off: nothing runs
    flipped = BatchLoader(split, shuffle=True, augment=AugmentConfig(flip=True), **args)
    images, labels = next(flipped.batches(epoch=0))
    source = torch.from_numpy(split.images)[labels].float() / 255
    assert all(torch.allclose(i, s) or torch.allclose(i, s.flip(-1)) for i, s in zip(images, source, strict=True))
    assert not torch.allclose(images, source)


def test_the_training_loader_augments_each_sample_by_its_index_and_mixes() -> None:
    split = Split(np.random.default_rng(0).integers(0, 256, (20, 1, 6, 6), dtype=np.uint8), np.arange(20))
    args = {"batch_size": 5, "mean": [0.0], "std": [1.0], "device": torch.device("cpu"), "shuffle": True}
    loader = BatchLoader(split, augment=EVERYTHING, seed=4, **args)
    for images, labels in loader.batches(epoch=2):  # label = sample index
        expected = Augmenter(EVERYTHING, seed=4)(torch.from_numpy(split.images[labels.numpy()]), 2, labels.numpy())
        assert torch.allclose(images * 255, expected.float(), atol=1e-3)
    mixing = BatchLoader(split, augment=AugmentConfig(mixup=0.5), num_classes=20, **args)
    images, targets = next(mixing.batches(epoch=0))
    assert targets.shape == (5, 20) and torch.allclose(targets.sum(1), torch.ones(5))
    with pytest.raises(ValueError, match="number of classes"):
        BatchLoader(split, augment=AugmentConfig(cutmix=1.0), **args)


@pytest.mark.parametrize(
    "bad",
    [
        "data.augment.crop_padding=-1",
        "data.augment.cutout=1.5",
        "data.augment.flip=sometimes",
        "data.augment.vflip=2",
        "data.augment.random_resized_crop=maybe",
        "data.augment.random_resized_crop.scale=[0.5,0.2]",
        "data.augment.random_resized_crop.scale=[0,1]",
        "data.augment.random_resized_crop.ratio=[-1,2]",
        "data.augment.random_resized_crop.ratio=[1]",
        "data.augment.affine.degrees=200",
        "data.augment.affine.translate=-0.1",
        "data.augment.affine.scale=[1.2,0.8]",
        "data.augment.affine.shear=90",
        "data.augment.color_jitter.brightness=-1",
        "data.augment.color_jitter.contrast=x",
        "data.augment.color_jitter.saturation=-0.5",
        "data.augment.color_jitter.hue=0.6",
        "data.augment.grayscale=1.5",
        "data.augment.blur.probability=2",
        "data.augment.blur.sigma=[0,1]",
        "data.augment.auto=autoaugment",
        "data.augment.auto.ops=0",
        "data.augment.auto.magnitude=31",
        "data.augment.random_erasing=1.5",
        "data.augment.random_erasing.scale=[0.5,2]",
        "data.augment.random_erasing.ratio=[3,1]",
        "data.augment.mixup=-0.2",
        "data.augment.cutmix=.nan",
    ],
)
def test_bad_augment_values_name_the_key(bad: str) -> None:
    from dltool.errors import ConfigError

    key = bad.split("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + "(\\.policy|\\.probability)?: "):
        load_config("digits-mlp", [bad])


def test_augment_shorthands() -> None:
    augment = load_config(
        "digits-mlp",
        ["data.augment.random_resized_crop=true", "data.augment.auto=trivial", "data.augment.random_erasing=0.25"],
    ).data.augment
    assert augment.random_resized_crop is not None and augment.random_resized_crop.scale == (0.08, 1.0)
    assert augment.auto.policy == "trivial" and augment.random_erasing is not None
    assert augment.random_erasing.probability == 0.25 and augment.random_erasing.ratio == (0.3, 3.3)
    assert load_config("digits-mlp", ["data.augment.blur=false"]).data.augment.blur is None


def test_resume_with_augmentation_is_bitwise_identical(tmp_path: Path) -> None:
    config = load_config(
        "digits-mlp",
        [
            "train.epochs=2",
            "train.batch_size=32",
            "data.augment.crop_padding=1",
            "data.augment.flip=true",
            "data.augment.cutout=3",
            "data.augment.random_resized_crop.scale=[0.5,1]",
            "data.augment.mixup=0.2",
            "data.augment.cutmix=1.0",
        ],
    )
    reference = train(config, create_run_dir(tmp_path, "ref"))

    run = create_run_dir(tmp_path, "cut")
    # 40 batches per epoch: stops mid-way through epoch 2
    assert train(config, run, stop=StopAfter(55)).status == "interrupted"
    assert resume(open_run_dir(run.path)).status == "completed"
    assert (run.path / "model.safetensors").read_bytes() == (reference.run_dir / "model.safetensors").read_bytes()
    unaugmented = train(
        load_config("digits-mlp", ["train.epochs=2", "train.batch_size=32"]), create_run_dir(tmp_path, "plain")
    )
    assert (unaugmented.run_dir / "model.safetensors").read_bytes() != (
        reference.run_dir / "model.safetensors"
    ).read_bytes()
