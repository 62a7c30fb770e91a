"""The measurements of benches/gpu_check.py, one function per check, each on one CUDA device.

Every function returns the check's rows; the driver resets and reads the peak GPU memory
around each. They reuse the other benches' pieces (cifar10_fast, train_throughput,
predict_scale) so that the GPU check measures what those benches measure, not a copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from dltool.config import Config, load_config
from dltool.evaluation.trained import load_trained

sys.path.insert(0, str(Path(__file__).parent))
import cifar10_fast
import predict_scale
from _common import Row
from train_throughput import SHAPES, bench_config, dltool_rate, synthetic, with_amp_as_train_picks

# No datacenter GPU is among the GPUs timm publishes training figures for (its benchmark
# CSVs are of consumer RTX cards), so the resnet50 row names none rather than compare across classes.
NO_PUBLISHED = "no published figure (timm's benchmark tables cover no datacenter GPU)"


def cifar10_fast_bf16(quick: bool) -> list[Row]:
    """cifar10-fast's epoch (bf16, channels_last, compile) against the bare loop with the same
    settings, and its FLOP/s against the measured bf16 matmul peak: the bench's first two rows
    (its third needs real CIFAR-10)."""
    return cifar10_fast.run(quick, "cuda")[:2]


def cifar10_fast_fp16(quick: bool) -> list[Row]:
    """The same epoch under ``train.amp=fp16``, dltool's gradient scaler against the bare loop's
    ``GradScaler``. Eager (compile off): the compiled path is the bf16 row's; this row is about
    the scaler's steps (unscale, inf checks, update) on the GPU."""
    config = fp16_config("cuda")
    samples = 10_240 if quick else cifar10_fast.SAMPLES
    data = synthetic((3, 32, 32), 10, samples)
    result = cifar10_fast.measure_throughput(config, data, torch.device("cuda"), repeats=2 if quick else 3)
    ours, theirs = result.images / result.dltool_s, result.images / result.bare_s
    return [
        Row(
            f"cifar10-fast fp16 + gradient scaler, eager, {samples:,} random images: images/s",
            f"{ours:,.0f}",
            f"{theirs:,.0f} bare PyTorch loop with torch.amp.GradScaler",
            result.bare_s / result.dltool_s,
            id="gpu-check.cifar10-fast-fp16",
        )
    ]


def fp16_config(device: str) -> Config:
    return load_config("cifar10-fast", ['train.amp="fp16"', "train.compile=false", f"train.device={device}"])


def resnet50_finetune(quick: bool) -> list[Row]:
    """torchvision's resnet50 trained at 224² in dltool's loop (bf16, channels_last: ``auto``
    on CUDA), random weights and generated images: the arithmetic of a fine-tune."""
    batch, samples = (32, 128) if quick else (128, 2048)  # 2048 images: 300 MB of uint8 on the GPU
    config = resnet50_config(batch, "cuda")
    rate = dltool_rate(config, synthetic((3, 224, 224), 1000, samples), torch.device("cuda"), epochs=3)
    name = f"fine-tune torchvision resnet50, 224², batch {batch}, bf16: images/s"
    return [Row(name, f"{rate:,.0f}", NO_PUBLISHED, None, id="gpu-check.resnet50-finetune")]


def resnet50_config(batch: int, device: str) -> Config:
    overrides = [
        "model.name=torchvision:resnet50",
        "optimizer.name=sgd",
        "scheduler.name=none",
        f"train.batch_size={batch}",
        f"train.device={device}",
        'train.amp="bf16"',
    ]
    return load_config("digits-mlp", overrides)


def amp_auto(quick: bool) -> list[Row]:
    """What ``train.amp: auto`` picks (a timed probe of the eager step) for small recipes,
    where the casts may cost more than half precision saves, against each precision's epoch
    rate measured after it: the choice's rate over the better one's."""
    samples, epochs = (2048, 2) if quick else (8192, 3)
    return [amp_row(recipe, samples, epochs, "cuda") for recipe in ("mnist-lenet", "cifar10-cnn", "cifar10-resnet")]


def amp_row(recipe: str, samples: int, epochs: int, device: str) -> Row:
    """``recipe`` (eager, no augmentation, as train_throughput.py) at the precision ``auto``
    picks against bf16 and fp32 fixed (on a CPU ``auto`` picks fp32 without a probe)."""
    config, _ = bench_config(recipe, samples, device)
    shape, classes, _ = SHAPES[config.data.name]
    data, where = synthetic(shape, classes, samples), torch.device(device)
    chosen = with_amp_as_train_picks(config, data, where).train.amp
    rates = {amp: dltool_rate(_with_amp(config, amp), data, where, epochs) for amp in ("bf16", "off")}
    best = max(rates, key=lambda amp: rates[amp])
    return Row(
        f"amp auto, {recipe} (eager): samples/s at auto = {chosen}",
        f"{rates[chosen]:,.0f}",
        f"{rates[best]:,.0f} at {best} (bf16: {rates['bf16']:,.0f}, off: {rates['off']:,.0f})",
        rates[chosen] / rates[best],
        id=f"gpu-check.amp-auto.{recipe}",
        goal=0.97,  # as threads: auto's (issue 21)
    )


def _with_amp(config: Config, amp: str) -> Config:
    return config.model_copy(update={"train": config.train.model_copy(update={"amp": amp})})


def torchrun_nccl(quick: bool) -> list[Row]:
    """``torchrun --nproc-per-node=1`` running a one-epoch ``dltool train`` digits-mlp on the
    GPU (dltool picks NCCL there)."""
    del quick  # one epoch of digits is already the smallest real run
    return [torchrun_row("cuda", "NCCL")]


def torchrun_row(device: str, backend: str) -> Row:
    """A fresh ``torchrun`` process training on ``device``: ok with its wall time, or failed
    with its exit code and last error line."""
    with tempfile.TemporaryDirectory(prefix="dltool-gpu-check-") as work:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1"]
        command += ["-m", "dltool", "train", "digits-mlp", "--device", device, "--runs-dir", work]
        command += ["--set", "train.epochs=1"]
        env = {**os.environ, "DLTOOL_DATA": os.environ.get("DLTOOL_DATA", f"{work}/data")}
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        seconds = time.perf_counter() - started
    lines = result.stderr.strip().splitlines() or ["no output"]
    figure = f"ok in {seconds:.1f} s" if result.returncode == 0 else f"failed (exit {result.returncode}): {lines[-1]}"
    label = f"torchrun --nproc-per-node=1, {backend}: dltool train digits-mlp, 1 epoch"
    return Row(
        label, figure, "peak GPU memory: in the torchrun process, not read", None, id=f"gpu-check.torchrun-{backend}"
    )


def predict_gpu(quick: bool) -> list[Row]:
    """``predict`` on the GPU (decoding in worker processes, batched ResNet-18 at 224²) against
    the same call with the model on the CPU, over the same photos."""
    count = 32 if quick else 200  # 200 photos: some 20 s to generate on one core
    with tempfile.TemporaryDirectory(prefix="dltool-gpu-check-predict-") as folder:
        work = Path(folder)
        trained = predict_scale.trained_resnet18(work, 224)  # trains on the GPU; loaded on the CPU
        predict_scale.make_photos(work / "photos", count, (1600, 1200), seed=2)
        on_gpu = load_trained(trained.run_dir, device="cuda")
        gpu = max(predict_scale.dltool_rate(on_gpu, work / "photos", count) for _ in range(2))
        cpu = predict_scale.dltool_rate(trained, work / "photos", count)
    return [
        Row(
            f"predict {count} JPEGs of 1600×1200, ResNet-18 at 224² on the GPU: images/s",
            f"{gpu:,.1f}",
            f"{cpu:,.1f} the same predict with the model on the CPU",
            gpu / cpu,
            id="gpu-check.predict",
        )
    ]
