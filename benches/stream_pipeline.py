"""The stream loader (data.loader: stream) against torchvision's ImageFolder + DataLoader, and
its memory as the folder grows.

Usage: python benches/stream_pipeline.py [--quick] [--device cpu|cuda] [--workers W]

- Input pipeline throughput, images/s over one shuffled epoch (the second: worker start-up is
  not timed), at image_size 224 with a random-resized crop and a horizontal flip, on JPEGs
  the bench writes: 256×256 ones and 1600×1200 ones. dltool: ``StreamLoader`` (files decoded
  in W worker processes, the crop cut near full resolution — JPEGs drafted by libjpeg — the
  batch moved to the device and normalised). Reference: ``torchvision.datasets.ImageFolder``
  with ``RandomResizedCrop(224)``, ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize()``
  and a ``DataLoader`` with the same W workers (persistent), each batch moved to the device.
- Peak RSS of one streamed epoch in a fresh process (the training process, plus the largest
  worker times W) over many JPEGs against the same over a twentieth as many: the goal is
  within 25% (ratio = 1.25 × small / large, > 1 when met).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dltool.config.schema import AugmentConfig, DataConfig
from dltool.data.augment import Augmenter, to_device
from dltool.data.prepare import prepare_data
from dltool.data.stream import DecodePool, StreamLoader

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main

SIZE, BATCH = 224, 64
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
AUGMENT = {"random_resized_crop": True, "flip": True}
EPOCH = """
import json, resource, sys
import torch
from dltool.config.schema import AugmentConfig, DataConfig
from dltool.data.augment import Augmenter
from dltool.data.prepare import prepare_data
from dltool.data.stream import DecodePool, StreamLoader
folder, workers = sys.argv[1], int(sys.argv[2])
data = prepare_data(DataConfig(name=folder, image_size=224, loader="stream", mean=[0.5] * 3, std=[0.25] * 3))
augmenter = Augmenter(AugmentConfig.model_validate({"random_resized_crop": True, "flip": True}), 0)
pool = DecodePool([data.splits["train"]], workers, augmenters=[augmenter])
loader = StreamLoader(pool, 0, batch_size=64, mean=data.mean, std=data.std, device=torch.device("cpu"), shuffle=True)
for images, labels in loader.batches(0):
    pass
pool.close()  # the workers end and are waited for: their peak joins RUSAGE_CHILDREN
print(json.dumps([resource.getrusage(who).ru_maxrss * 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]))
"""


def jpeg_folder(root: Path, count: int, width: int, height: int) -> Path:
    """``count`` smooth, photo-like JPEGs in 4 class folders."""
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC).save(folder / f"{i}.jpg", quality=90)
    return root


def dltool_images_per_s(folder: Path, workers: int, device: torch.device) -> float:
    data = prepare_data(DataConfig(name=str(folder), image_size=SIZE, loader="stream", mean=MEAN, std=STD))
    augmenter = Augmenter(AugmentConfig.model_validate(AUGMENT), 0)
    pool = DecodePool([data.splits["train"]], workers, device.type == "cuda", [augmenter])
    loader = StreamLoader(pool, 0, batch_size=BATCH, mean=MEAN, std=STD, device=device, shuffle=True)
    try:
        for _ in loader.batches(0):  # starts the workers
            pass
        started = time.perf_counter()
        for _ in loader.batches(1):
            pass
        if device.type == "cuda":
            torch.cuda.synchronize()
        return len(loader) * BATCH / (time.perf_counter() - started)
    finally:
        pool.close()


def torchvision_images_per_s(folder: Path, workers: int, device: torch.device) -> float:
    from torchvision import datasets
    from torchvision import transforms as T

    transform = T.Compose([T.RandomResizedCrop(SIZE), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(folder), transform=transform),
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        drop_last=True,
    )
    seconds = []
    for _epoch in range(2):  # the first starts the workers
        started = time.perf_counter()
        for images, _labels in loader:
            to_device(images, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return len(loader) * BATCH / seconds[-1]


def peak_rss(folder: Path, workers: int) -> int:
    """Bytes: the training process's peak plus ``workers`` times the largest worker's."""
    argv = [sys.executable, "-c", EPOCH, str(folder), str(workers)]
    own, child = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    return own + workers * child


def throughput_rows(tmp: Path, quick: bool, workers: int, device: torch.device) -> list[Row]:
    rows = []
    for width, height, count in [(256, 256, 256 if quick else 2000), (1600, 1200, 64 if quick else 400)]:
        folder = jpeg_folder(tmp / f"jpeg-{width}x{height}", count, width, height)
        ours = dltool_images_per_s(folder, workers, device)
        theirs = torchvision_images_per_s(folder, workers, device)
        rows.append(
            Row(
                f"stream loader, {count:,} {width}×{height} JPEGs at {SIZE} px (crop + flip), {workers} workers",
                f"{ours:,.0f} img/s",
                f"{theirs:,.0f} img/s (torchvision ImageFolder + DataLoader)",
                ours / theirs,
            )
        )
    return rows


def memory_row(tmp: Path, quick: bool, workers: int) -> Row:
    small, large = (100, 2000) if quick else (1000, 20000)
    peaks = [peak_rss(jpeg_folder(tmp / f"rss-{n}", n, 256, 256), workers) for n in (small, large)]
    return Row(
        f"stream loader peak RSS of an epoch, {large:,} vs {small:,} 256-px JPEGs at {SIZE} px, {workers} workers",
        f"{peaks[1] / 2**20:,.0f} MiB",
        f"{peaks[0] / 2**20:,.0f} MiB (goal: within 25%)",
        1.25 * peaks[0] / peaks[1],
    )


def run(quick: bool, device: str = "cpu", workers: int | None = None) -> list[Row]:
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        rows = throughput_rows(Path(tmp), quick, workers, torch.device(device))
        return [*rows, memory_row(Path(tmp), quick, workers)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=None)
    known, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    bench_main(lambda quick, device: run(quick, device, known.workers), __doc__ or "")


if __name__ == "__main__":
    main()
