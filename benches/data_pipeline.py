"""dltool's data pipeline against torchvision's per-sample one, and its image-folder cache.

Usage: python benches/data_pipeline.py [--quick] [--device cpu|cuda]

Measured in one process, on the same CIFAR-shaped uint8 data (N×3×32×32, random, in memory):
- dltool: ``BatchLoader`` over the cached uint8 tensor with ``data.augment`` = random crop
  (padding 4) + horizontal flip, then normalisation — whole-batch tensor ops on the device;
- reference: a torchvision-style ``Dataset`` (uint8 HWC array → PIL image per sample, as
  ``torchvision.datasets.CIFAR10`` does) with ``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize()``, batched by a ``DataLoader``
  with 0 and 2 workers (persistent; the second epoch is timed, so worker start-up is not);
- data loading as a share of a training step: a small CNN (2 conv layers, SGD) on the same
  batch size, data time / (data time + step time);
- an image folder of 2,000 32×32 PNGs written by the bench: dltool's first load (list,
  decode in threads, write the cache) and its cached load, against a plain PIL decode loop.
Each figure is the best of ``--repeats`` (a shared machine is noisy).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from dltool.config.schema import AugmentConfig
from dltool.data.arrays import Split
from dltool.data.folders import load_folder
from dltool.data.loader import BatchLoader
from dltool.engine.threads import usable_cores

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main

BATCH = 512
IN_MEMORY_GOAL = 10.0  # issue 17: the in-memory pipeline keeps a 10x lead over torchvision
MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]


def best(repeats: int, measure) -> float:
    return min(measure() for _ in range(repeats))


def dltool_seconds_per_epoch(split: Split, device: torch.device) -> float:
    loader = BatchLoader(
        split,
        batch_size=BATCH,
        mean=MEAN,
        std=STD,
        device=device,
        shuffle=True,
        augment=AugmentConfig(crop_padding=4, flip=True),
    )
    started = time.perf_counter()
    for _images, _labels in loader.batches(epoch=1):
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / (len(loader) * BATCH)  # seconds per image


class CifarLike(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per sample: array → PIL → transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def torchvision_seconds_per_image(images_hwc: np.ndarray, labels: np.ndarray, workers: int, repeats: int) -> float:
    from torchvision import transforms as T

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(
        CifarLike(images_hwc, labels, transform),
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        drop_last=True,
    )
    times = []
    for _epoch in range(repeats + (1 if workers else 0)):
        started = time.perf_counter()
        for _batch in loader:
            pass
        times.append(time.perf_counter() - started)
    times = times[1:] if workers else times  # the first epoch starts the workers
    return min(times) / (len(loader) * BATCH)


def train_step_seconds(device: torch.device, repeats: int) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 10),
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (BATCH,), device=device)

    def step() -> float:
        started = time.perf_counter()
        for _ in range(3):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / 3

    step()  # warm-up
    return best(repeats, step)


def write_folder(root: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = root / f"class{i % 10}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def pil_loop_seconds(paths: list[Path]) -> float:
    started = time.perf_counter()
    np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(paths)])
    return time.perf_counter() - started


def folder_seconds(root: Path, cache_root: Path, fresh: bool) -> float:
    if fresh:
        for cache in cache_root.rglob("*.safetensors"):
            cache.unlink()
    started = time.perf_counter()
    load_folder(root, cache_root=cache_root)
    return time.perf_counter() - started


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    samples, reference_samples, folder_images, repeats = (
        (10_000, 2_000, 500, 2) if quick else (50_000, 10_000, 2_000, 3)
    )
    torch_device = torch.device(device)
    torch.set_num_threads(usable_cores())

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (samples, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, samples).astype(np.int64)
    split = Split(images, labels)
    ours = best(repeats, lambda: dltool_seconds_per_epoch(split, torch_device))
    subset = np.ascontiguousarray(images[:reference_samples].transpose(0, 2, 3, 1))
    reference = {w: torchvision_seconds_per_image(subset, labels[:reference_samples], w, repeats) for w in (0, 2)}
    step = train_step_seconds(torch_device, repeats)
    data_per_batch = ours * BATCH
    share = data_per_batch / (data_per_batch + step)

    with tempfile.TemporaryDirectory(prefix="dltool-bench-") as work:
        root, cache_root = Path(work) / "folder", Path(work) / "cache"
        paths = write_folder(root, folder_images)
        pil = best(repeats, lambda: pil_loop_seconds(paths))
        build = best(repeats, lambda: folder_seconds(root, cache_root, fresh=True))
        warm = best(repeats, lambda: folder_seconds(root, cache_root, fresh=False))

    n = f"{folder_images:,}"
    return [
        Row(
            "crop(4)+flip+normalise, batch 512 (images/s)",
            f"{1 / ours:,.0f}",
            f"{1 / reference[0]:,.0f} torchvision, 0 workers",
            reference[0] / ours,
            id="data-pipeline.augment-0-workers",
            goal=IN_MEMORY_GOAL,
        ),
        Row(
            "same, against 2 DataLoader workers (images/s)",
            f"{1 / ours:,.0f}",
            f"{1 / reference[2]:,.0f} torchvision, 2 workers",
            reference[2] / ours,
            id="data-pipeline.augment-2-workers",
            goal=IN_MEMORY_GOAL,
        ),
        Row(
            "data loading share of a small-CNN step, batch 512",
            f"{share:.1%}",
            "10% goal",
            0.10 / share,
            id="data-pipeline.loading-share",
            goal=1.0,
        ),
        Row(
            f"image folder, first load ({n} PNGs: decode + cache) (s)",
            f"{build:.2f}",
            f"{pil:.2f} plain PIL loop",
            pil / build,
            id="data-pipeline.folder-first-load",
        ),
        Row(
            f"image folder, cached load ({n} PNGs) (s)",
            f"{warm:.3f}",
            f"{pil:.2f} plain PIL loop",
            pil / warm,
            id="data-pipeline.folder-cached-load",
        ),
    ]


if __name__ == "__main__":
    bench_main(run, __doc__)
