"""`dltool predict` images/s against a plain PIL loop, and its memory at 2,000 vs 20,000 files.

Usage: python benches/predict_throughput.py [--quick]

A 2×256 MLP (digits-mlp) is trained for a moment on a 32×32 RGB image folder; then, in the same run and
on the same 2,000 JPEGs (half 64×64, half 256×256):
- dltool: ``dltool.evaluation.predict.predict`` (decoding in worker processes, batched
  inference), in a process set up as `dltool predict` sets one up (``_predict_rate.py``);
- reference: a plain loop — PIL open → RGB → resize → tensor → normalise → one forward per image.
Peak memory (VmHWM) of a ``dltool predict DIR`` process over 2,000 and over 20,000 files
(the 2,000 hard-linked ten times) shows whether memory stays flat.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dltool.config import load_config
from dltool.engine import train
from dltool.evaluation.trained import load_trained
from dltool.rundir import create_run_dir

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main, scratch
from _predict_rate import command_rate
from predict_scale import peak_memory_mb


def make_images(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        size = 64 if i % 2 else 256
        base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((size, size), Image.BILINEAR)
        paths.append(folder / f"img{i:05d}.jpg")
        image.save(paths[-1], quality=90)
    return paths


def trained_model(work: Path):
    folder = work / "train"
    for label in ("a", "b"):
        make_images(folder / label, 16)
    config = load_config("digits-mlp", [f"data.name={folder}", "data.image_size=32", "train.epochs=1"])
    return load_trained(train(config, create_run_dir(work / "runs", "bench")).run_dir)


def plain_loop(trained, paths: list[Path]) -> float:
    mean = torch.tensor(trained.config.data.mean).view(-1, 1, 1)
    std = torch.tensor(trained.config.data.std).view(-1, 1, 1)
    started = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = Image.open(path).convert("RGB").resize((32, 32), Image.BILINEAR)
            x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
            trained.model(((x - mean) / std)[None]).softmax(1).topk(2)
    return len(paths) / (time.perf_counter() - started)


def peak_rss_mb(run_dir: Path, folder: Path, count: int) -> float:
    """Peak RSS of a ``dltool predict`` process (its VmHWM, as predict_scale.py reads it).
    ``wait4``'s ``ru_maxrss``, this bench's figure until 2026-12-06, kept the high-water mark
    of the bench process the child was forked from across its exec: 2,108 MB for either count."""
    return peak_memory_mb(run_dir, folder, count)[0]


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    with scratch("dltool-predict-bench-") as work:
        return measure(work, 500 if quick else 2000)


def measure(work: Path, files: int) -> list[Row]:
    trained = trained_model(work)
    paths = make_images(work / "images", files)
    plain = max(plain_loop(trained, paths) for _ in range(2))
    ours = command_rate(trained.source, work / "images", files, batch_size=64)
    many = work / "many"
    many.mkdir()
    for copy in range(10):
        for path in paths:
            os.link(path, many / f"{copy}-{path.name}")
    small = peak_rss_mb(trained.run_dir, work / "images", files)
    large = peak_rss_mb(trained.run_dir, many, 10 * files)
    return [
        Row(
            f"predict {files:,} JPEGs (64², 256²) with a 32² MLP (images/s)",
            f"{ours:,.0f}",
            f"{plain:,.0f} plain PIL loop, one forward per image",
            ours / plain,
            id="predict-throughput.jpegs",
        ),
        Row(
            f"predict peak RSS, {10 * files:,} files (MB)",
            f"{large:,.0f}",
            f"{small:,.0f} at {files:,} files",
            small / large,
            id="predict-throughput.rss-many-files",
        ),
    ]


if __name__ == "__main__":
    bench_main(run, __doc__)
