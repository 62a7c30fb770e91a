"""dltool's batched augmentation against torchvision's per-sample transforms, op by op.

Usage: python benches/augment_throughput.py [--quick] [--device cpu|cuda]

Measured in one process on the same random uint8 images (N×3×S×S, S = 64, or 32 with
--quick): dltool's ``Augmenter`` on whole batches of 256 on ``--device`` (draws per sample
from (seed, epoch, index), as the memory loader runs it), against
``torchvision.transforms.v2`` applied to each uint8 image tensor in a Python loop on the CPU
(what one DataLoader worker does; N workers divide its time by about N). Each row is one
``data.augment`` setting and its torchvision equivalent; the last is a photo recipe.
Each figure is the best of ``--repeats`` (a shared machine is noisy).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltool.config.schema import AugmentConfig
from dltool.data.augment import Augmenter
from dltool.engine.device import synchronize
from dltool.engine.threads import usable_cores

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main, slug

BATCH = 256
PHOTO = {"random_resized_crop": True, "flip": True, "auto": "trivial", "random_erasing": 0.25}


def settings(size: int) -> list[tuple[str, dict[str, Any], Any]]:
    """(name, data.augment, the torchvision v2 transform with the same meaning)."""
    from torchvision.transforms import v2 as T

    return [
        (
            "crop_padding 4 + flip",
            {"crop_padding": 4, "flip": True},
            T.Compose([T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()]),
        ),
        ("random_resized_crop", {"random_resized_crop": True}, T.RandomResizedCrop(size, antialias=False)),
        (
            "affine 15°, 0.1, 0.9–1.1, shear 10",
            {"affine": {"degrees": 15, "translate": 0.1, "scale": [0.9, 1.1], "shear": 10}},
            T.RandomAffine(15, (0.1, 0.1), (0.9, 1.1), 10, interpolation=T.InterpolationMode.BILINEAR),
        ),
        (
            "color_jitter 0.4/0.4/0.4/0.1",
            {"color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}},
            T.ColorJitter(0.4, 0.4, 0.4, 0.1),
        ),
        ("auto: trivial", {"auto": "trivial"}, T.TrivialAugmentWide()),
        ("auto: randaugment (2, 9)", {"auto": "randaugment"}, T.RandAugment()),
        ("blur (p 0.5, sigma 0.1–2)", {"blur": True}, T.RandomApply([T.GaussianBlur(13, (0.1, 2.0))], p=0.5)),
        ("random_erasing 0.25", {"random_erasing": 0.25}, T.RandomErasing(0.25)),
        (
            "photo recipe: RRC + flip + trivial + erasing",
            PHOTO,
            T.Compose(
                [
                    T.RandomResizedCrop(size, antialias=False),
                    T.RandomHorizontalFlip(),
                    T.TrivialAugmentWide(),
                    T.RandomErasing(0.25),
                ]
            ),
        ),
    ]


def dltool_images_per_s(images: torch.Tensor, config: dict[str, Any], repeats: int) -> float:
    augmenter = Augmenter(AugmentConfig.model_validate(config), seed=0)
    indices = np.arange(len(images))

    def epoch() -> float:
        synchronize(images.device)
        started = time.perf_counter()
        for b in range(0, len(images), BATCH):
            augmenter(images[b : b + BATCH], 1, indices[b : b + BATCH])
        synchronize(images.device)
        return time.perf_counter() - started

    epoch()  # warm-up (kernels, allocator)
    return len(images) / min(epoch() for _ in range(repeats))


def torchvision_images_per_s(images: torch.Tensor, transform: Any, repeats: int) -> float:
    def epoch() -> float:
        started = time.perf_counter()
        for image in images:
            transform(image)
        return time.perf_counter() - started

    return len(images) / min(epoch() for _ in range(repeats))


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    size, samples, reference_samples, repeats = (32, 1024, 256, 2) if quick else (64, 4096, 1024, 3)
    torch.set_num_threads(usable_cores())
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (samples, 3, size, size), dtype=np.uint8))
    on_device = images.to(device)
    rows = []
    for name, config, transform in settings(size):
        ours = dltool_images_per_s(on_device, config, repeats)
        reference = torchvision_images_per_s(images[:reference_samples], transform, repeats)
        rows.append(
            Row(
                f"augment {name}, {size}px (images/s)",
                f"{ours:,.0f}",
                f"{reference:,.0f} torchvision v2, 1 process",
                ours / reference,
                id=f"augment-throughput.{slug(name)}",
            )
        )
    return rows


if __name__ == "__main__":
    bench_main(run, __doc__)
