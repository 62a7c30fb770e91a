"""What each augmentation op does to pixels and targets (semantics, not shapes), and soft
targets through the losses and the epoch statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from dltool.config.augment import AugmentConfig
from dltool.data import autoaugment, colour
from dltool.data.augment import STREAMS, Augmenter
from dltool.data.draws import sample_uniforms
from dltool.data.geometry import BOX_DRAWS, erasing_boxes, resized_crop_boxes
from dltool.engine.loop import EpochStats
from dltool.losses import losses

INDICES = np.arange(40, 104)
BILINEAR = InterpolationMode.BILINEAR


def augment(images: torch.Tensor, epoch: int = 0, **config: object) -> torch.Tensor:
    return Augmenter(AugmentConfig.model_validate(config), seed=3)(images, epoch, INDICES[: len(images)])


def random_images(n: int = 64, channels: int = 3, size: int = 16, low: int = 0, high: int = 256) -> torch.Tensor:
    return torch.randint(
        low, high, (n, channels, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


@pytest.mark.parametrize("key, dim", [("flip", -1), ("vflip", -2)])
def test_flips_mirror_exactly_about_half_of_the_images(key: str, dim: int) -> None:
    images = random_images()
    out = augment(images, **{key: True})
    mirrored = torch.tensor([torch.equal(o, i.flip(dim)) for o, i in zip(out, images, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, images, strict=True)])
    assert (mirrored ^ kept).all() and 16 < int(mirrored.sum()) < 48


def test_brightness_scales_the_mean_by_the_drawn_factor() -> None:
    images = random_images(low=40, high=120)  # no clipping at factors up to 1.4
    out = augment(images, epoch=2, color_jitter={"brightness": 0.4})
    factors = 0.6 + 0.8 * sample_uniforms(3, 2, INDICES, STREAMS["jitter"], 4)[:, 0]
    ratio = out.float().mean((1, 2, 3)) / images.float().mean((1, 2, 3))
    assert np.allclose(ratio.numpy(), factors, atol=0.01) and np.ptp(factors) > 0.5


@pytest.mark.parametrize("op", ["contrast", "saturation", "hue"])
def test_colour_ops_match_torchvision(op: str) -> None:
    images = random_images(n=4).float()
    factors = torch.tensor([0.3, 0.0, 0.45, -0.2]) if op == "hue" else torch.tensor([0.3, 1.0, 1.7, 0.0])
    ours = getattr(colour, op)(images, factors)
    reference = torch.stack(
        [getattr(TF, f"adjust_{op}")(i / 255, float(f)) * 255 for i, f in zip(images, factors, strict=True)]
    )
    assert (ours - reference).abs().max() < 0.05


@pytest.mark.parametrize("op", ["equalize", "autocontrast", "posterize", "solarize"])
def test_histogram_ops_match_torchvision(op: str) -> None:
    images = random_images(n=4, low=20, high=200)
    argument = {"posterize": 3, "solarize": 100}.get(op)
    if argument is None:
        ours, reference = getattr(colour, op)(images), getattr(TF, op)(images)
    else:
        values = torch.full((4,), argument, dtype=torch.uint8)
        ours, reference = getattr(colour, op)(images, values), getattr(TF, op)(images, argument)
    assert (ours.int() - reference.int()).abs().max() <= 1  # torchvision truncates where we round


def test_grayscale_gives_equal_channels_on_the_drawn_share() -> None:
    out = augment(random_images(), grayscale=0.5)
    grey = (out == out[:, :1]).flatten(1).all(1)
    assert 16 < int(grey.sum()) < 48
    assert torch.equal(augment(random_images(channels=1), grayscale=1.0), random_images(channels=1))


def test_random_resized_crop_boxes_fall_in_the_scale_and_ratio_ranges() -> None:
    augmenter = Augmenter(AugmentConfig.model_validate({"random_resized_crop": {"scale": [0.2, 0.6]}}), seed=0)
    boxes = np.array([augmenter.crop_box(4, i, 600, 800) for i in range(300)])
    top, left, h, w = boxes.T
    assert ((top >= 0) & (left >= 0) & (top + h <= 600) & (left + w <= 800)).all()
    area = h * w / (600 * 800)
    assert area.min() > 0.2 - 0.005 and area.max() < 0.6 + 0.005 and np.ptp(area) > 0.3
    assert (w / h).min() > 0.75 - 0.01 and (w / h).max() < 4 / 3 + 0.01
    # The same box, as a share of the image, at another resolution (the stream loader's view).
    small = np.array([augmenter.crop_box(4, i, 60, 80) for i in range(300)])
    assert np.abs(small / 10 - boxes / 100).max() < 1.0


def test_a_loader_that_cropped_at_decode_skips_the_crop() -> None:
    images = random_images(n=4)
    crop = Augmenter(AugmentConfig.model_validate({"random_resized_crop": True}), seed=0)
    assert torch.equal(crop(images, 0, INDICES[:4], cropped=True), images)
    assert not torch.equal(crop(images, 0, INDICES[:4]), images)
    assert Augmenter(AugmentConfig(flip=True), seed=0).crop_box(0, 7, 480, 640) == (0, 0, 480, 640)


def test_random_resized_crop_in_memory_samples_the_crop_box() -> None:
    # A horizontal ramp: each output column must show the source column it maps to.
    images = (torch.arange(64) * 4).to(torch.uint8).expand(8, 1, 64, 64).contiguous()
    augmenter = Augmenter(AugmentConfig.model_validate({"random_resized_crop": True}), seed=0)
    out = augmenter(images, 1, INDICES[:8]).float()
    u = sample_uniforms(0, 1, INDICES[:8], STREAMS["crop"], BOX_DRAWS)
    for row, (_, left, _, w) in zip(out, resized_crop_boxes(u, 64, 64, (0.08, 1.0), (3 / 4, 4 / 3)), strict=True):
        source = left + (np.arange(64) + 0.5) * w / 64 - 0.5
        inside = (source > 0) & (source < 63)
        assert np.abs(row[0, 32].numpy()[inside] - 4 * source[inside]).max() <= 0.51


def test_affine_rotation_matches_torchvision() -> None:
    images = random_images(n=8)
    out = augment(images, affine={"degrees": 40})
    u = sample_uniforms(3, 0, INDICES[:8], STREAMS["affine"], 5)
    for o, image, angle in zip(out, images, (2 * u[:, 0] - 1) * 40, strict=True):
        reference = TF.affine(
            image.float(), angle=float(angle), translate=[0, 0], scale=1.0, shear=[0.0, 0.0], interpolation=BILINEAR
        )
        assert (o.float() - reference.round()).abs().mean() < 1.0  # bilinear both, float rounding apart


def test_random_erasing_fills_a_box_in_the_area_range_with_the_mean_colour() -> None:
    # Columns alternately 10 and 250: the mean colour, 130, appears only where erased.
    images = torch.tensor([10, 250], dtype=torch.uint8).repeat(8)[None, None].expand(64, 3, 16, 16).contiguous()
    out = augment(images, random_erasing={"probability": 1.0, "scale": [0.1, 0.3]})
    erased = (out == 130).all(1).flatten(1).float().mean(1)
    assert erased.min() >= 0.1 - 0.04 and erased.max() <= 0.3 + 0.04
    boxes = erasing_boxes(np.random.default_rng(0).random((500, BOX_DRAWS)), 16, 16, (0.1, 0.3), (0.3, 3.3))
    assert (boxes[:, 2] < 16).all() and (boxes[:, 0] + boxes[:, 2] <= 16).all()


def test_blur_keeps_the_mean_and_smooths() -> None:
    images = random_images(low=50, high=200)
    out = augment(images, blur={"probability": 1.0, "sigma": [1.0, 2.0]}).float()
    assert (out.mean((1, 2, 3)) - images.float().mean((1, 2, 3))).abs().max() < 2
    assert (out.std((2, 3)) < images.float().std((2, 3)) / 2).all()


def test_auto_policies_draw_every_op_and_randaugments_fixed_magnitude() -> None:
    table = autoaugment.magnitudes("randaugment", 32, 32)
    ops, values = autoaugment.draw_layer(np.random.default_rng(0).random((2000, 3)), table, 9)
    assert set(ops.tolist()) == set(range(len(autoaugment.OPS)))
    assert np.allclose(np.abs(values), table[ops, 9]) and (values < 0).any()
    out = augment(random_images(), auto={"policy": "randaugment", "ops": 2, "magnitude": 9})
    assert (out != random_images()).flatten(1).any(1).float().mean() > 0.7


@pytest.mark.parametrize("alphas", [(0.4, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_mixing_targets_sum_to_one_and_match_the_pixels(alphas: tuple[float, float]) -> None:
    # Image i is flat at value i and has label i: a pixel says whose it is.
    n = 8
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 16, 16).contiguous()
    augmenter = Augmenter(AugmentConfig(mixup=alphas[0], cutmix=alphas[1]), seed=0)
    for batch in range(6):
        mixed, targets = augmenter.mix(images, torch.arange(n), 1, batch, num_classes=10)
        assert torch.allclose(targets.sum(1), torch.ones(n)) and targets.shape == (n, 10)
        own = targets[torch.arange(n), torch.arange(n)]
        pasted = (mixed == images).flatten(1).float().mean(1)
        blended = torch.allclose(mixed, own.view(n, 1, 1, 1) * images + (1 - own.view(n, 1, 1, 1)) * images.roll(1, 0))
        assert blended or torch.allclose(pasted, own)  # MixUp weights or CutMix areas
    assert not torch.equal(
        augmenter.mix(images, torch.arange(n), 1, 0, 10)[1], augmenter.mix(images, torch.arange(n), 1, 1, 10)[1]
    )


@pytest.mark.parametrize(
    ("name", "smoothing"),
    [("cross_entropy", 0.0), ("cross_entropy", 0.1), ("nll", 0.0), ("kl_div", 0.0), ("kl_div", 0.1)]
    + [("bce_with_logits", 0.0), ("bce_with_logits", 0.1), ("mse", 0.0)],
)
def test_losses_take_soft_targets_like_labels(name: str, smoothing: float) -> None:
    entry = losses.get(name)
    kwargs: dict[str, object] = {"label_smoothing": smoothing} if "label_smoothing" in entry.params.model_fields else {}
    if name == "cross_entropy":
        kwargs["class_weights"] = None
    loss_fn = entry.load()(**kwargs, task="classification", num_classes=5)
    logits, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    soft = torch.nn.functional.one_hot(labels, 5).float()
    assert torch.allclose(loss_fn(logits, labels), loss_fn(logits, soft), atol=1e-6)
    if name in ("cross_entropy", "nll", "bce_with_logits"):  # linear in the target: a mix is a mix of losses
        halves = 0.5 * soft + 0.5 * soft.roll(1, 0)
        by_parts = 0.5 * loss_fn(logits, labels) + 0.5 * loss_fn(logits, labels.roll(1, 0))
        assert torch.allclose(loss_fn(logits, halves), by_parts, atol=1e-5)


def test_train_accuracy_counts_the_heaviest_class_of_soft_targets() -> None:
    stats = EpochStats()
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.4, 0.6, 0.0], [0.0, 0.2, 0.8]])
    output = torch.tensor([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    stats.update(torch.tensor(1.0), output, targets, "classification")
    assert stats.accuracy() == pytest.approx(2 / 3)
