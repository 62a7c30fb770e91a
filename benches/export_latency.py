"""CPU latency of each recipe's model exported to ONNX and run by onnxruntime, against the same
model in eager PyTorch.

Usage: python benches/export_latency.py [--quick]

For each recipe, in one process: the network built from the recipe (random weights, the
recipe dataset's input shape) is exported with ``export_trained`` (verified as `dltool export`
verifies it) and loaded with ``load_exported``, the forward pass `dltool predict` runs on an
``.onnx`` file (onnxruntime's CPU provider). Both sides then run the same random batches of
1 and 64 images through ``forward`` as predict calls it (PyTorch: under
``torch.inference_mode``, channels-last on the CPU), taking turns in blocks; each figure is the median over the blocks' calls. Both run on one thread: on a
machine whose cores are shared, torch's OpenMP pool collapses whenever one of its threads is
descheduled (measured here under load: mnist-mlp at batch 64 took 110 ms on 2 threads
against 1 ms on one), and the ratio would measure the load rather than the two engines. The
mnist-encoder-classifier recipe builds from its params alone (its encoder_run is read only
when training starts).

Then the same file quantized as `dltool export --int8` quantizes it (``dltool.export.quantize``),
calibrated on 64 random images (the ranges change the numbers, not the work), against the
float ONNX file: where int8 kernels pay, and where their quantize/dequantize steps cost more
than they save.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dltool.config import load_config
from dltool.data.normalise import normalise
from dltool.evaluation.model import InferenceModel
from dltool.evaluation.trained import Trained
from dltool.export import load_exported
from dltool.export.export import export_trained
from dltool.export.exported import Exported
from dltool.export.formats import open_onnx
from dltool.export.quantize import quantize
from dltool.models.build import build_model

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main, scratch
from train_throughput import SHAPES, tensor_recipes

BATCHES = (1, 64)


def trained(work: Path, recipe: str) -> Trained:
    base = load_config(recipe)
    shape, classes, _ = SHAPES[base.data.name]
    sets = [f"data.mean={[0.5] * shape[0]}", f"data.std={[0.25] * shape[0]}"]
    config = load_config(recipe, sets)
    torch.manual_seed(0)
    model = build_model(config.model, in_shape=shape, num_classes=classes).eval()
    return Trained(model, config, [str(c) for c in range(classes)], shape, work / f"{recipe}.safetensors", None)


def latencies(sides: list[InferenceModel], images: np.ndarray, repeats: int, blocks: int = 3) -> list[float]:
    """Median seconds per forward of each side. The sides take turns in blocks of calls, each
    block after two warm-up calls: a slow spell of a shared machine falls on both, and neither
    side's thread pool is still busy-waiting when the other's block starts."""
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(blocks):
        for side, record in zip(sides, times):
            for call in range(2 + repeats // blocks):
                started = time.perf_counter()
                side.forward(images)
                if call >= 2:
                    record.append(time.perf_counter() - started)
    return [statistics.median(record) for record in times]


def milliseconds(seconds: float) -> str:
    """Three significant digits, trailing zeros kept: 0.0112, 1.00, 340."""
    ms = seconds * 1e3
    return f"{ms:.{max(0, 2 - math.floor(math.log10(ms)))}f}"


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    del device  # onnxruntime runs on the CPU here, so both sides do
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # before the sessions are made: onnxruntime's count
    try:
        with scratch("dltool-export-bench-") as work:
            return measure(work, repeats=10 if quick else 30)
    finally:
        torch.set_num_threads(threads)
        if omp is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = omp


def measure(work: Path, repeats: int) -> list[Row]:
    rows = []
    for recipe in tensor_recipes() + ["mnist-encoder-classifier"]:
        model = trained(work, recipe)
        exported = load_exported(export_trained(model, "onnx", work / f"{recipe}.onnx").path)
        int8 = quantized(exported)
        for batch in BATCHES:
            images = np.random.default_rng(0).integers(0, 256, (batch, *model.in_shape), dtype=np.uint8)
            ours, eager, integer = latencies([exported, model, int8], images, repeats)
            rows += [
                Row(
                    f"{recipe} as ONNX in onnxruntime, batch {batch}, 1 thread (ms)",
                    milliseconds(ours),
                    f"{milliseconds(eager)} eager PyTorch",
                    eager / ours,
                    id=f"export-latency.{recipe}.batch-{batch}",
                ),
                Row(
                    "  the same as int8 ONNX (`--int8`) (ms)",
                    milliseconds(integer),
                    f"{milliseconds(ours)} float ONNX",
                    ours / integer,
                    id=f"export-latency.{recipe}.int8.batch-{batch}",
                ),
            ]
    return rows


def quantized(exported: Exported) -> Exported:
    """``exported`` quantized to int8 on random calibration images, with its sidecar's
    preprocessing (the file is not written: only its forward pass is timed)."""
    rng = np.random.default_rng(1)
    pixels = (rng.integers(0, 256, (16, *exported.in_shape), dtype=np.uint8) for _ in range(4))
    calibration = (normalise(batch, exported.mean, exported.std) for batch in pixels)
    data, _ = quantize(exported.path.read_bytes(), calibration)
    return Exported(exported.path, exported.sidecar, open_onnx(data, "cpu"), "cpu")


if __name__ == "__main__":
    bench_main(run, __doc__)
