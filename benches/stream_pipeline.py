"""The stream loader against torchvision's ``ImageFolder`` + ``DataLoader``, and its memory.

Usage: python benches/stream_pipeline.py [--quick] [--device cpu|cuda]

Measured on folders of synthetic JPEG photos (``_photos.py``) written by the bench:
- input-pipeline throughput of one training epoch at image_size 224 (the second epoch: worker
  start-up not timed), images per second, with the same worker count for both:
  dltool's ``data.loader: stream`` with ``random_resized_crop`` + ``flip`` (normalised batches),
  against ``ImageFolder`` with ``RandomResizedCrop(224)``, ``RandomHorizontalFlip()``,
  ``ToTensor()``, ``Normalize()`` in a ``DataLoader`` (persistent workers, shuffled), on
  256×256 photos and on 1600×1200 photos;
- peak resident memory (the process and its decoding workers, sampled from /proc) of one
  streamed epoch over 20,000 photos against the same over 1,000 (``--quick``: 2,000 and 200):
  flat memory means a ratio near 1. ``--quick`` times 200 small and 160 large photos.
Each throughput figure is the best of two epochs after a warm-up epoch.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main
from _photos import photo_folder
from _rss import run_peak_rss
from dltool.config import load_config
from dltool.engine.device import resolve_device, resolve_precision
from dltool.engine.distributed import World
from dltool.engine.setup import build_components

SIZE, BATCH, WORKERS = 224, 64, 2
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CACHE = Path(tempfile.gettempdir()) / "dltool-bench-photos"


def stream_config(folder: Path, device: str, workers: int = WORKERS):
    return load_config(
        None,
        [
            f"data.name={folder}",
            "data.loader=stream",
            f"data.workers={workers}",
            f"data.image_size={SIZE}",
            f"data.mean={MEAN}",
            f"data.std={STD}",
            "data.augment.random_resized_crop=true",
            "data.augment.flip=true",
            "model.name=cnn",
            "model.widths=[8]",
            f"train.batch_size={BATCH}",
            f"train.device={device}",
        ],
    )


def dltool_images_per_s(folder: Path, device: str) -> float:
    config = stream_config(folder, device)
    where = resolve_device(device)
    parts = build_components(config, where, resolve_precision("off", where), World())
    loader = parts.train_batches
    rates = []
    try:
        for epoch in range(3):  # epoch 0 starts the workers
            started = time.perf_counter()
            count = sum(len(labels) for _images, labels in loader.batches(epoch))
            if where.type == "cuda":
                torch.cuda.synchronize()
            rates.append(count / (time.perf_counter() - started))
    finally:
        parts.close()  # the decoding workers: a live pool keeps the process from exiting
    return max(rates[1:])


def torchvision_images_per_s(folder: Path) -> float:
    from torchvision import datasets
    from torchvision import transforms as T

    transform = T.Compose([T.RandomResizedCrop(SIZE), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, drop_last=True, num_workers=WORKERS, persistent_workers=True
    )
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        count = sum(len(labels) for _images, labels in loader)
        rates.append(count / (time.perf_counter() - started))
    return max(rates[1:])


# One streamed epoch in a fresh process, for its peak memory.
EPOCH = """
import sys
sys.path.insert(0, sys.argv[2])
from stream_pipeline import stream_config
from dltool.engine.device import resolve_device, resolve_precision
from dltool.engine.distributed import World
from dltool.engine.setup import build_components
cpu = resolve_device("cpu")
parts = build_components(stream_config(sys.argv[1], "cpu"), cpu, resolve_precision("off", cpu), World())
print(sum(len(labels) for _images, labels in parts.train_batches.batches(0)))
parts.close()
"""


def epoch_peak_rss(folder: Path) -> int:
    result, peak = run_peak_rss([sys.executable, "-c", EPOCH, str(folder), str(Path(__file__).parent)])
    if result.returncode != 0:
        raise RuntimeError(f"the streamed epoch over {folder} failed:\n{result.stderr[-2000:]}")
    return peak


def run(quick: bool, device: str) -> list[Row]:
    # Quick sizes still fill batches: with 20 large photos, ImageFolder's loader (drop_last) gave none.
    small, big, large = (200, 2000, 160) if quick else (1000, 20000, 200)
    rows = []
    for count, size, goal in ((small, (256, 256), 1.0), (large, (1600, 1200), 2.0)):  # issue 17's goals
        folder = photo_folder(CACHE / f"{size[0]}x{size[1]}-{count}", count, size)
        ours, theirs = dltool_images_per_s(folder, device), torchvision_images_per_s(folder)
        rows.append(
            Row(
                f"stream loader, {count:,} {size[0]}×{size[1]} JPEGs → {SIZE} px, {WORKERS} workers (images/s)",
                f"{ours:,.0f}",
                f"{theirs:,.0f} (ImageFolder + DataLoader)",
                ours / theirs,
                id=f"stream-pipeline.jpegs-{size[0]}x{size[1]}",
                goal=goal,
            )
        )
    few, many = (photo_folder(CACHE / f"256x256-{n}", n, (256, 256)) for n in (small, big))
    few_rss, many_rss = epoch_peak_rss(few), epoch_peak_rss(many)
    rows.append(
        Row(
            f"stream loader peak RSS of one epoch, {big:,} vs {small:,} photos (MB)",
            f"{many_rss / 2**20:,.0f}",
            f"{few_rss / 2**20:,.0f}",
            few_rss / many_rss,
            id="stream-pipeline.epoch-rss",
            goal=0.8,  # issue 17: within 25%
        )
    )
    return rows


if __name__ == "__main__":
    bench_main(run, __doc__)
