"""`dltool predict` at photo scale: speed on large JPEGs and flat memory, with a ResNet-18.

Usage: python benches/predict_scale.py [--quick]

A torchvision ResNet-18 (no pretrained weights: the weights do not change the work) is
trained for one batch on a small folder at image_size 224. Then, in the same run:
- speed on 200 synthetic photos of 1600×1200 (JPEG quality 90): dltool's
  ``dltool.evaluation.predict.predict`` (decoding in worker processes, JPEG draft, batches)
  in a process set up as `dltool predict` sets one up (``_predict_rate.py``: OpenMP's
  threads sleep between parallel regions, since 2026-12-07) against a plain loop — PIL open
  → RGB → resize to 224² → tensor → normalise → one forward per image — on the same
  weights, in the bench's own process; the same with the run exported to ONNX (the forward
  pass in onnxruntime, where dltool[onnx] is installed; the pipeline around it imports no
  torch); the same exported with ``--int8`` (int8 weights and activations: onnxruntime's int8
  kernels, VNNI on this CPU; the one-batch model's test score is not held to the float
  model's: ``max_drop=1``); the same with ``--amp bf16`` (the forward pass in bf16 autocast: about twice as
  fast on a CPU with AVX-512 BF16 or AMX); the ceiling, the model's float32 forward pass alone on ready batches (on a CPU it takes
  every core, so decoding only adds to it); also dltool at each ``--workers`` count (full run);
- memory: peak of a ``dltool predict MODEL FOLDER --format csv`` process over the 200 JPEGs
  and over 20,000 small PNGs, one row per file checked, MODEL the run dir and then its ONNX
  export (and its int8 export, over the JPEGs). Two figures: the predict process's peak RSS (its VmHWM) and the peak sum of the
  proportional set size (PSS: shared pages split between sharers) of it and its forked
  decoding processes, sampled every 50 ms. The goal is under 600 MB (the ratio is 600 MB
  over the peak RSS); the reference gives the floor, the peak RSS of a process that only
  imports what predict imports and loads the model (the run: about 770 MB with torch 2.14's
  CUDA build, whose import alone holds about 500 MB; the export: onnxruntime, no torch).
``--quick``: 40 JPEGs and 200 PNGs, no worker sweep (about a minute on 2 cores); the full
run takes some 25 minutes there, most of it the ResNet over 20,000 images (with the run,
then with its ONNX export).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from dltool.config import load_config
from dltool.engine import train
from dltool.errors import UsageError
from dltool.evaluation.model import InferenceModel, default_batch_size
from dltool.evaluation.trained import Trained, load_trained
from dltool.export.export import export_trained
from dltool.export.int8 import Int8
from dltool.rundir import create_run_dir

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main, scratch
from _predict_rate import command_rate

GOAL_MB = 600


def photo(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A smooth two-colour gradient with ellipses and rectangles, plus sensor-like noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    t = (x / width * rng.uniform(0.3, 1) + y / height * rng.uniform(0.3, 1))[..., None] / 2
    image = Image.fromarray((a * (1 - t) + b * t).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        box = (x0, y0, x0 + rng.integers(width // 20, width // 3), y0 + rng.integers(height // 20, height // 3))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    pixels = np.asarray(image, dtype=np.int16) + rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_photos(folder: Path, count: int, size: tuple[int, int], seed: int, suffix: str = ".jpg") -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"photo{i:05d}{suffix}" for i in range(count)]
    for path in paths:
        photo(*size, rng).save(path, quality=90)
    return paths


def many_pngs(folder: Path, count: int, distinct: int = 200) -> None:
    """``count`` small PNGs: ``distinct`` different 64×48 photos, hard-linked over and over."""
    originals = make_photos(folder / "originals", min(distinct, count), (64, 48), 1, ".png")
    for i in range(count):
        os.link(originals[i % len(originals)], folder / f"{i:05d}.png")
    for path in originals:
        path.unlink()
    (folder / "originals").rmdir()


def trained_resnet18(work: Path, image_size: int) -> Trained:
    folder = work / "train"
    for label in ("cat", "dog"):
        make_photos(folder / label, 8, (320, 240), seed=len(label))
    overrides = [
        f"data.name={folder}",
        f"data.image_size={image_size}",
        "model.name=torchvision:resnet18",
        "train.epochs=1",
        "train.batch_size=8",
        "train.limit_batches=1",
    ]
    run = train(load_config("digits-mlp", overrides), create_run_dir(work / "runs", "resnet18")).run_dir
    return load_trained(run)


@torch.no_grad()
def plain_loop(trained: Trained, paths: list[Path]) -> float:
    """Images/s of the loop a user writes first: PIL, a square resize, one forward each."""
    _, height, width = trained.in_shape
    mean = torch.tensor(trained.mean).view(-1, 1, 1)
    std = torch.tensor(trained.std).view(-1, 1, 1)
    started = time.perf_counter()
    for path in paths:
        image = Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR)
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
        trained.model(((x - mean) / std)[None]).softmax(1).topk(2)
    return len(paths) / (time.perf_counter() - started)


def forward_rate(model: InferenceModel, count: int) -> float:
    """Images/s of ``model``'s forward pass alone (normalising included), at predict's default
    batch, on ``count`` random uint8 images: what predict would reach if decoding cost nothing (on a CPU the
    forward pass takes every core, so decoding can only add to it)."""
    batch = default_batch_size(model)
    images = np.random.default_rng(0).integers(0, 256, (batch, *model.in_shape), dtype=np.uint8)
    model.forward(images)  # warm-up: oneDNN picks its kernels on the first call
    started = time.perf_counter()
    for _ in range(-(-count // batch)):
        model.forward(images)
    return -(-count // batch) * batch / (time.perf_counter() - started)


def exported_onnx(trained: Trained, work: Path, int8: Int8 | None = None) -> Path | None:
    """The run exported to ONNX (as `dltool export RUN --to onnx [--int8]` writes it); None
    without the onnx extra."""
    try:
        return export_trained(trained, "onnx", work / f"resnet18{'.int8' if int8 else ''}.onnx", int8=int8).path
    except UsageError:  # dltool[onnx] is not installed
        return None


def peak_memory_mb(model: Path, folder: Path, count: int) -> tuple[float, float]:
    """(peak RSS of the predict process, peak PSS of it and its decoding processes), in MB;
    ``model``: a run dir or an export."""
    out = folder.parent / f"{folder.name}.csv"
    with open(out, "w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "dltool", "predict", str(model), str(folder), "--format", "csv"],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
        peaks = [0.0, 0.0]
        sampler = threading.Thread(target=_sample, args=(process.pid, peaks), daemon=True)
        sampler.start()
        code = process.wait()
        sampler.join()
    assert code == 0, f"dltool predict exited {code}"
    rows = out.read_text().count("\n") - 1  # less the header
    assert rows == count, f"{rows} rows for {count} files"
    return peaks[0], peaks[1]


def floor_mb(model: Path) -> float:
    """Peak RSS of a process that only imports what predict imports and loads the model (a
    run dir: torch and the network; an ONNX export: onnxruntime and its session)."""
    code = (
        "import sys; from dltool.export.inference import load_inference_model; "
        f"load_inference_model({str(model)!r}, device='cpu'); "
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(result.stdout.strip()) / 1024


def _sample(pid: int, peaks: list[float]) -> None:
    """peaks[0]: the process's own high-water mark (VmHWM, kept by the kernel); peaks[1]: the
    largest sum of PSS over it and its descendants seen, every 50 ms, while it lives."""
    while (hwm := _status_kb(pid, "VmHWM")) is not None:
        peaks[0] = max(peaks[0], hwm / 1024)
        peaks[1] = max(peaks[1], sum(_pss_kb(p) for p in [pid, *_children(pid)]) / 1024)
        time.sleep(0.05)


def _status_kb(pid: int, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(text.split(f"{key}:")[1].split()[0]) if f"{key}:" in text else None  # a zombie has none


def _children(pid: int) -> list[int]:
    try:
        direct = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return direct + [grandchild for child in direct for grandchild in _children(child)]


def _pss_kb(pid: int) -> int:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:  # gone meanwhile
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith("Pss:")), 0)


def measure(work: Path, jpegs: int, pngs: int, jpeg_size: tuple[int, int], image_size: int, sweep: bool) -> list[Row]:
    os.environ["DLTOOL_DATA"] = str(work / "data")
    torch.manual_seed(0)
    trained = trained_resnet18(work, image_size)
    exports = {"onnx": exported_onnx(trained, work), "onnx-int8": exported_onnx(trained, work, Int8(max_drop=1.0))}
    big = make_photos(work / "big", jpegs, jpeg_size, seed=2)
    many_pngs(work / "small", pngs)
    plain = max(plain_loop(trained, big) for _ in range(2))
    what = f"{jpegs} JPEGs of {jpeg_size[0]}×{jpeg_size[1]}"
    rows = speed_rows(
        trained, exports, work / "big", jpegs, plain, f"predict {what}, ResNet-18 at {image_size}²", sweep
    )
    folders = [
        (work / "big", jpegs, what, "large-jpegs"),
        (work / "small", pngs, f"{pngs:,} PNGs of 64×48", "small-pngs"),
    ]
    rows += memory_rows(trained.run_dir, folders, "", "")
    if (onnx := exports["onnx"]) is not None:
        rows += memory_rows(onnx, folders, ", the run exported to ONNX", ".onnx")
    if (int8 := exports["onnx-int8"]) is not None:  # its forward pass is quicker, not its memory: the JPEGs only
        rows += memory_rows(int8, folders[:1], ", the run exported to ONNX with --int8", ".onnx-int8")
    return rows


EXPORT_ROWS = {  # what each export's speed rows say it is (the keys end the rows' ids)
    "onnx": ("the run exported to ONNX: `dltool predict model.onnx`, no torch", ", ONNX"),
    "onnx-int8": ("the run exported with `--int8`: ONNX with int8 weights and activations", ", ONNX int8"),
}


def speed_rows(
    trained: Trained, exports: dict[str, Path | None], folder: Path, count: int, plain: float, what: str, sweep: bool
) -> list[Row]:
    """dltool predict's rate with the run, with its exports, and at each --workers count
    (``sweep``), each against the plain loop's rate ``plain``."""
    ours = command_rate(trained.source, folder, count)
    against = f"{plain:,.1f} plain PIL loop, one forward per image"
    rows = [Row(f"{what} (images/s)", f"{ours:,.1f}", against, ours / plain, id="predict-scale.large-jpegs", goal=3.0)]
    for key, path in exports.items():
        rate = None if path is None else command_rate(path, folder, count)
        rows.append(
            Row(
                f"  the same, {EXPORT_ROWS[key][0]} (images/s)",
                "not measured (dltool[onnx] not installed)" if rate is None else f"{rate:,.1f}",
                against,
                None if rate is None else rate / plain,
                id=f"predict-scale.large-jpegs.{key}",
                goal=None if rate is None else 3.0,  # issue 17: predict at 3x a plain PIL loop
            )
        )
    bf16 = command_rate(trained.source, folder, count, amp="bf16")
    rows.append(
        Row(
            "  the same with --amp bf16: the run's forward pass in bf16 autocast (images/s)",
            f"{bf16:,.1f}",
            against,
            bf16 / plain,
            id="predict-scale.large-jpegs.bf16",
            goal=3.0,
        )
    )
    ceiling = max(forward_rate(trained, count) for _ in range(2))
    rows.append(
        Row(
            "  the ceiling: the run's forward pass alone, nothing decoded (images/s)",
            f"{ceiling:,.1f}",
            against,
            ceiling / plain,
            id="predict-scale.large-jpegs.forward-only",
        )
    )
    sides = [(trained.source, "", "")] + [
        (path, EXPORT_ROWS[key][1], f".{key}") for key, path in exports.items() if path is not None
    ]
    for model, how, key in sides if sweep else ():
        for workers in (0, 1, 2):  # decoding processes beside the forward pass's threads (one per core)
            rate = command_rate(model, folder, count, workers=workers)
            rows.append(
                Row(
                    f"  the same{how} with --workers {workers} (images/s)",
                    f"{rate:,.1f}",
                    f"{plain:,.1f}",
                    rate / plain,
                    id=f"predict-scale.large-jpegs{key}.workers-{workers}",
                )
            )
    return rows


def memory_rows(model: Path, folders: list[tuple[Path, int, str, str]], how: str, key: str) -> list[Row]:
    """Peak RSS of `dltool predict MODEL FOLDER` over each folder against GOAL_MB (issue 17)."""
    floor = floor_mb(model)
    runtime = "onnxruntime" if key else "torch"
    rows = []
    for folder, count, what, name in folders:
        rss, pss = peak_memory_mb(model, folder, count)
        rows.append(
            Row(
                f"predict peak RSS, {what}{how} (MB)",
                f"{rss:,.0f} ({pss:,.0f} PSS with the decoding processes)",
                f"{GOAL_MB} goal; {floor:,.0f} importing {runtime} and loading the model alone",
                GOAL_MB / rss,
                id=f"predict-scale.rss{key}.{name}",
                goal=1.0,  # issue 17: under GOAL_MB
            )
        )
    return rows


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    with scratch("dltool-predict-scale-") as work:
        if quick:
            return measure(work, 40, 200, (1600, 1200), 224, sweep=False)
        return measure(work, 200, 20000, (1600, 1200), 224, sweep=True)


if __name__ == "__main__":
    bench_main(run, __doc__)
