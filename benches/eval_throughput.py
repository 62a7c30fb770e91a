"""`dltool eval` throughput against a bare inference loop over the same tensors.

Usage: python benches/eval_throughput.py [--quick]

An mnist-lenet run is trained for a few batches on MNIST-format IDX files written by the bench
(random pixels: throughput, not accuracy); then, in the same process, its 10,000-image test
split is scored by ``evaluate_trained`` (loading the split from the cache, batched inference,
every metric of the eval document) and by a bare loop over the same stored uint8 images (per
batch: normalise → model → softmax → argmax, nothing else; in the memory format dltool
feeds the model, channels-last for a CNN), in alternating rounds; each side's
figure is its best round.
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dltool.config import load_config
from dltool.data.prepare import prepare_data
from dltool.engine import train
from dltool.engine.loop import to_memory_format
from dltool.evaluation.evaluate import evaluate_trained
from dltool.evaluation.trained import load_trained
from dltool.rundir import create_run_dir

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main, scratch


def write_idx(folder: Path, prefix: str, count: int) -> None:
    """Unpacked MNIST files (what `dltool download mnist` leaves) with random content."""
    rng = np.random.default_rng(count)
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = (np.arange(count) % 10).astype(np.uint8)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3]) + struct.pack(">3I", count, 28, 28) + images.tobytes()
    )
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + struct.pack(">I", count) + labels.tobytes()
    )


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    with scratch("dltool-eval-bench-") as work:
        return measure(work, 5 if quick else 15, device)


def measure(work: Path, repeats: int, device: str) -> list[Row]:
    write_idx(work / "data" / "mnist", "train", 2_000)
    write_idx(work / "data" / "mnist", "t10k", 10_000)
    config = load_config("mnist-lenet", ["train.epochs=1", "train.limit_batches=2", f"train.device={device}"])
    trained = load_trained(train(config, create_run_dir(work, "bench")).run_dir, device=torch.device(device))
    data = prepare_data(trained.config.data)
    test = data.splits["test"]
    stored = torch.from_numpy(test.images).to(device)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)

    def ours() -> float:
        started = time.perf_counter()
        evaluate_trained(trained, split="test", batch_size=256)
        return len(test) / (time.perf_counter() - started)

    @torch.inference_mode()
    def bare() -> float:
        started = time.perf_counter()
        for batch in stored.split(256):
            images = to_memory_format((batch.float() / 255 - mean) / std, trained.channels_last)  # as dltool's
            trained.model(images).softmax(1).argmax(1).cpu()
        return len(test) / (time.perf_counter() - started)

    best_ours, best_bare = 0.0, 0.0
    for _ in range(repeats):  # alternating, to share the machine's noise
        best_ours, best_bare = max(best_ours, ours()), max(best_bare, bare())
    return [
        Row(
            "eval mnist-lenet, 10,000 test images, every metric (images/s)",
            f"{best_ours:,.0f}",
            f"{best_bare:,.0f} bare inference loop",
            best_ours / best_bare,
            id="eval-throughput.mnist-lenet",
            goal=0.98,  # issue 21
        )
    ]


if __name__ == "__main__":
    bench_main(run, __doc__)
