"""Static int8 quantization of an ONNX export (``dltool export --int8``), scored before it is kept.

onnxruntime's static quantizer writes the QDQ format (QuantizeLinear/DequantizeLinear pairs
around each operator, which its CPU provider fuses into int8 kernels) with

- weights int8 per output channel and activations uint8 per tensor: the pairing its x86
  kernels run fastest. ResNet-18 at 224² on 2 cores: 55 images/s in float32, 48 with int8
  activations, 205 with uint8 ones;
- activation ranges from their minimum and maximum over ``Int8.calibration`` training
  images, drawn with a fixed seed and prepared as evaluation prepares them (no augmentation),
  so the same run exports the same file. The calibrator keeps only each tensor's minimum and
  maximum per batch, so its memory stays small for any number of images (its
  ``CalibMaxIntermediateOutputs`` option, meant to bound it, discards the batches instead of
  folding them in, in onnxruntime 1.32: not used).

Rounding weights and activations to 256 levels costs some accuracy, more for some models
than others, so the file is kept only when its headline test score (the task's first
``headline`` key: accuracy, mIoU, PCK, RMSE, loss) is at most ``Int8.max_drop`` of the float
model's score worse than the float model's on the same images.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import dltool.tasks as tasks
from dltool.engine.probe import median_seconds
from dltool.errors import ConfigError, DatasetError, ExportError, first_line, option
from dltool.evaluation.evaluate import evaluate_split, split_batches
from dltool.evaluation.model import InferenceModel, default_batch_size
from dltool.evaluation.trained import Trained
from dltool.export.evaluate import on_torch
from dltool.export.formats import INPUT_NAME, Forward, open_onnx, quiet_loggers, require
from dltool.export.int8 import Int8, Int8Check
from dltool.tasks import TaskParams

SCORED_SPLIT = "test"


def quantize_trained(trained: Trained, float_onnx: bytes, int8: Int8) -> tuple[bytes, Int8Check]:
    """``float_onnx`` (``trained``'s verified export) quantized to int8 and scored; raises
    ``ExportError`` when its score falls further than ``int8.max_drop`` allows."""
    try:
        with split_batches(trained, "train", rows=int8.calibration) as batches:
            data, calibrated = quantize(float_onnx, (images.cpu().numpy() for images, _ in batches))
    except (ConfigError, DatasetError) as error:  # the run's data is gone: not a mistake on the command line
        raise DatasetError(f"int8 calibrates on the run's own data, which cannot be read: {error}") from None
    int8_run = open_onnx(data, "cpu")
    check = score_int8(trained, int8_run, int8, calibrated)
    if check.drop > int8.max_drop:
        raise ExportError(refusal(check))
    # Timed only once kept: a refused file's speed is nobody's business.
    return data, replace(check, speedup=speedup(open_onnx(float_onnx, "cpu"), int8_run, trained))


MAX_DROP_OPTION = option("max_drop", python="max_drop")  # --max-drop on the command line


def refusal(check: Int8Check) -> str:
    """Why a quantized file is not kept; on so few test images that one of them is more than
    the drop allowed, saying that this, not the quantization, may be what fails."""
    line = (
        f"int8 {check.score} on the {check.images:,} images of the {check.split} split is {check.int8_score:.4g} "
        f"against the float model's {check.float_score:.4g}, {check.drop:.1%} worse "
        f"(allowed: {check.max_drop:.1%}, {MAX_DROP_OPTION})"
    )
    if check.images and 1 / check.images > check.max_drop:
        line += f"; one image is {1 / check.images:.1%} of {check.images}: a larger {MAX_DROP_OPTION} or a larger test split"
    return line + "; nothing written"


def quantize(float_onnx: bytes, calibration: Iterable[np.ndarray]) -> tuple[bytes, int]:
    """``float_onnx`` with int8 weights and uint8 activations whose ranges the normalised
    float32 batches of ``calibration`` set (module docstring; read a batch at a time), and
    how many images those batches held."""
    require("onnx")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = _reader(calibration)
    # quiet_loggers(""): its notes go to the root logger as warnings (per-channel axes it skips
    # on 1-d weights, advice); what matters comes back as the file or an exception.
    with tempfile.TemporaryDirectory(prefix="dltool-int8-") as folder, quiet_loggers(""):
        work = Path(folder)
        (work / "float.onnx").write_bytes(float_onnx)
        try:
            _prepare(quant_pre_process, work / "float.onnx", work / "prepared.onnx")
            quantize_static(
                str(work / "prepared.onnx"),
                str(work / "int8.onnx"),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as error:  # onnxruntime's tools raise many types; any is "cannot quantize this model"
            raise ExportError(f"onnxruntime's quantizer failed: {first_line(error)}") from None
        return (work / "int8.onnx").read_bytes(), reader.images


def _prepare(quant_pre_process: Callable[..., None], source: Path, target: Path) -> None:
    """Shape inference and graph optimisation (batch norms folded): what the quantizer expects."""
    try:
        quant_pre_process(str(source), str(target))
    except Exception:  # its symbolic shape inference gives up on some graphs (a U-Net's); ONNX's own will do
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)


def speedup(float_run: Forward, int8_run: Forward, model: InferenceModel) -> float:
    """How many times as fast the int8 file runs a batch as the float file, on this machine
    (predict's batch size and threads; medians of alternating rounds): int8 pays for
    convolutions and large matrices, and can cost more than it saves around small ones."""
    runs = (float_run, int8_run)
    batch = np.random.default_rng(0).standard_normal((default_batch_size(model), *model.in_shape), np.float32)
    seconds = median_seconds((0, 1), lambda side: _seconds(runs[side], batch))
    return seconds[0] / seconds[1]


def _seconds(forward: Forward, batch: np.ndarray) -> float:
    started = time.perf_counter()
    forward(batch)
    return time.perf_counter() - started


def _reader(batches: Iterable[np.ndarray]) -> Any:
    """The batches as onnxruntime's calibration data reader, counting their images."""
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime has no type hints
        def __init__(self) -> None:
            self.batches, self.images = iter(batches), 0  # images: read so far

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            self.images += 0 if batch is None else len(batch)
            return None if batch is None else {INPUT_NAME: batch}

    return Batches()


def score_int8(trained: Trained, forward: Forward, int8: Int8, calibration_images: int) -> Int8Check:
    """The headline test score of ``forward`` (the quantized file) and of ``trained``, on the
    same batches of the run's own test split."""
    task = tasks.info(trained.task)
    float_document = evaluate_split(trained, split=SCORED_SPLIT).document
    int8_document = evaluate_split(trained, split=SCORED_SPLIT, forward=on_torch(forward)).document
    key = _headline_key(task, float_document, int8_document)
    return Int8Check(
        SCORED_SPLIT,
        key,
        float(float_document[key]),
        float(int8_document[key]),
        task.headline_higher_is_better and key != "loss",
        int(int8_document["n"]),
        calibration_images,
        int8.max_drop,
    )


def _headline_key(task: type[TaskParams], *documents: dict[str, Any]) -> str:
    """The task's headline score, or the loss where a document lacks it (e.g. no point to score PCK on)."""
    key, _ = task.headline[0]
    return key if all(document.get(key) is not None for document in documents) else "loss"
