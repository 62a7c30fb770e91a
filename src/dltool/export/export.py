"""Write a trained model as an ONNX or TorchScript file with its sidecar, verified first.

Nothing is written until the file, loaded back by its own runtime (onnxruntime, torch.jit),
has reproduced the PyTorch model's outputs on sample inputs at two batch sizes within
``TOLERANCE`` (of the largest output, when that is beyond ±1) — and, for an int8 ONNX file (``dltool.export.quantize``), until the quantized
file has scored within ``Int8.max_drop`` of the model on the run's test split. Then the
sidecar and the model are each written atomically.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import dltool.tasks as tasks
from dltool._io import atomic_write_bytes, atomic_write_json, sweep_stale_temporaries
from dltool._text import counted
from dltool._version import __version__
from dltool.errors import ExportError, UnknownNameError, UsageError
from dltool.evaluation.model import InferenceModel
from dltool.evaluation.trained import Trained
from dltool.export.exported import Exported, Sidecar, sidecar_path
from dltool.export.formats import FORMATS, INPUT_NAME, Format
from dltool.export.int8 import Int8, Int8Check
from dltool.export.quantize import quantize_trained
from dltool.rundir import RunDir, check_output

# The largest difference allowed between the file's outputs and PyTorch's: absolute, or relative
# to the largest output beyond ±1 (float32 keeps 7 digits: a regression's weights near 100,000
# differ by 0.008 at their last one).
TOLERANCE = 1e-4
# The model is traced on a batch of EXAMPLE_BATCH and checked at other sizes, below and above it,
# so a batch dimension fixed by the tracer would fail the verification.
EXAMPLE_BATCH, SAMPLE_BATCHES = 2, (1, 5)
CPU = torch.device("cpu")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sidecar: Path
    format: str
    runtime: str  # what ran the file for the verification
    max_abs_diff: float  # over every sample output
    tolerance: float  # the largest difference allowed: TOLERANCE × the largest output beyond ±1
    batch_sizes: tuple[int, ...]
    int8: Int8Check | None = None  # how the quantized file scored, for an int8 export


def default_output(trained: Trained, format_name: str, int8: bool = False) -> Path:
    """``RUN/export/model<suffix>`` (``model.int8.onnx`` quantized), or beside the weights
    when they have no run dir."""
    suffix = (".int8" if int8 else "") + FORMATS[format_name].suffix
    if trained.run_dir is not None:
        return RunDir(trained.run_dir).export_file(suffix)
    return trained.source.with_suffix(suffix)


def export_trained(
    trained: Trained,
    format_name: str,
    output: Path | None = None,
    *,
    opset: int | None = None,
    force: bool = False,
    tolerance: float = TOLERANCE,
    int8: Int8 | None = None,
) -> ExportResult:
    """Write ``trained`` (loaded on the CPU) as ``format_name`` to ``output`` (default:
    ``default_output``) and its sidecar beside it; ``int8``: quantized (ONNX only).

    An existing file is replaced only with ``force``. Raises ``ExportError`` when the exporter
    fails, the file's outputs differ from the model's by more than ``tolerance``, or the
    quantized file scores worse than ``int8`` allows."""
    format = checked_format(trained, format_name, opset, int8)
    output = Path(output) if output is not None else default_output(trained, format_name, int8 is not None)
    for path in (output, sidecar_path(output)):
        check_output(path, kind="dltool export", force=force, inputs=[trained.source])
    example, *samples = _sample_inputs(trained, (EXAMPLE_BATCH, *SAMPLE_BATCHES))
    traced = trained.normalise(torch.from_numpy(example))  # the file takes normalised float32, as the model does
    data = format.write(trained.scorer.eval(), traced, opset, tasks.get(trained.task).export_output)
    document = _sidecar_document(trained, format, data, output)
    exported = Exported(output, Sidecar.model_validate(document), format.open(data, "cpu"), "cpu")
    diff, largest = _max_abs_diff(trained, exported, samples)
    tolerance *= max(1.0, largest)
    if not diff <= tolerance:  # NaN fails too
        raise ExportError(
            f"{format.runtime}'s outputs differ from PyTorch's by up to {diff:.3g} "
            f"(allowed: {tolerance:g}); nothing written"
        )
    check = None
    if int8 is not None:  # another file: its own hash
        data, check = quantize_trained(trained, data, int8)
        document = _sidecar_document(trained, format, data, output)
    document |= _verification(format, diff, tolerance, check)
    output.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(output.parent, of=[output.name, sidecar_path(output).name])  # a killed export's
    atomic_write_json(sidecar_path(output), document)
    atomic_write_bytes(output, data)
    return ExportResult(
        output, sidecar_path(output), format.name, format.runtime, diff, tolerance, SAMPLE_BATCHES, check
    )


def checked_format(trained: Trained, format_name: str, opset: int | None, int8: Int8 | None) -> Format:
    """The format ``format_name``, once the export's settings are known to fit it (else a usage error)."""
    if format_name not in FORMATS:
        raise UnknownNameError("export format", format_name, FORMATS)
    format = FORMATS[format_name]
    if opset is not None and format.name != "onnx":
        raise UsageError(f"opset {opset}: only ONNX files have an opset")
    if int8 is not None and format.name != "onnx":
        raise UsageError(f"int8: only ONNX files are quantized (not {format.name})")
    if trained.device != CPU:
        raise UsageError("export a model loaded on the CPU (load_trained's default device)")
    return format


def _verification(format: Format, diff: float, tolerance: float, check: Int8Check | None) -> dict[str, Any]:
    """The sidecar's account of the checks: the float file against PyTorch, then the int8 file's score."""
    document: dict[str, Any] = {
        "verification": {
            "runtime": format.runtime,
            "max_abs_diff": diff,
            "tolerance": tolerance,
            "batch_sizes": list(SAMPLE_BATCHES),
        }
    }
    if check is not None:
        document["verification"]["int8"] = check.document()
        document["quantization"] = {
            "weights": "int8, per output channel",
            "activations": "uint8, per tensor",
            "format": "QDQ (onnxruntime)",
            "calibration": {"split": "train", "images": check.calibration_images, "method": "min-max"},
        }
    return document


def _sample_inputs(model: InferenceModel, batch_sizes: tuple[int, ...]) -> list[np.ndarray]:
    """Seeded random uint8 images of the model's shape (each forward pass normalises them)."""
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randint(0, 256, (n, *model.in_shape), generator=generator, dtype=torch.uint8).numpy() for n in batch_sizes
    ]


def _max_abs_diff(model: InferenceModel, exported: Exported, samples: list[np.ndarray]) -> tuple[float, float]:
    """The largest absolute difference between the two models' outputs (NaN if either has
    one), and the largest absolute output of PyTorch's."""
    diffs, largest = [], []
    for images in samples:
        expected, got = model.forward(images), exported.forward(images)
        if got.shape != expected.shape:
            raise ExportError(
                f"{exported.path.name}: outputs of shape {tuple(got.shape)} for a batch of "
                f"{len(images)}, expected {tuple(expected.shape)}"
            )
        diffs.append(np.abs(got.astype(np.float32) - expected).max(initial=0.0))
        largest.append(np.abs(expected).max(initial=0.0))
    return float(np.max(diffs)), float(np.max(largest))


def _sidecar_document(model: Trained, format: Format, data: bytes, output: Path) -> dict[str, Any]:
    channels, height, width = model.in_shape
    task = tasks.get(model.task)
    outputs = task.output_shape(model.classes, model.in_shape)
    return {
        "format": format.name,
        "file": output.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "task": model.task,
        "model": model.name,
        **({"classes": model.classes} if tasks.info(model.task).names_outputs else {}),
        "channels": channels,
        "image_size": [height, width],
        "mean": model.mean,
        "std": model.std,
        "crop_pct": model.crop_pct,
        "tta": model.tta,  # inside the graph: a flip TTA run's export averages the two passes itself
        "preprocessing": f"decode to {counted(channels, 'channel')}, {_fitting(model)}, "
        "then (pixel / 255 - mean) / std per channel; float32, NCHW",
        "input": {"name": INPUT_NAME, "shape": ["batch", channels, height, width], "dtype": "float32"},
        "output": {"name": task.export_output, "shape": ["batch", *outputs], "dtype": "float32"},
        "postprocessing": task.export_meaning.format(height=height, width=width),
        **format.describe(data),  # ONNX: its opset
        "source": str(model.source.resolve()),
        "run_dir": str(model.run_dir.resolve()) if model.run_dir else None,
        "dltool_version": __version__,
        "torch_version": torch.__version__,
    }


def _fitting(model: Trained) -> str:
    """The evaluation transform in words (``dltool.data.images.fit_image``)."""
    _, height, width = model.in_shape
    if model.crop_pct is None:
        return f"resize to {height}×{width} (antialiased bilinear)"
    return (
        f"resize (antialiased bilinear, aspect kept) to cover {height}×{width} / crop_pct "
        f"({model.crop_pct:g}), then cut out the centre {height}×{width}"
    )
