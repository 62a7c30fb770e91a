"""An exported model file with its sidecar JSON, ready for inference like a trained run.

The sidecar is the model's file name plus ``.json`` (``model.onnx`` → ``model.onnx.json``),
so an ONNX and a TorchScript export can share a folder and a stem. It says how to prepare an
image for the model — decode to ``channels``, fit to ``image_size`` (height, width) with the
evaluation crop ``crop_pct`` (``dltool.data.images.fit_image``; absent in exports of runs made
before it: a plain resize), then ``(pixel / 255 − mean) / std`` per channel, float32 NCHW — what comes out, the class names
in output order, and the SHA-256 of the model file it describes: a model file replaced
without its sidecar (or the reverse) is refused rather than fed the wrong way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import dltool.tasks as tasks
from dltool.data.normalise import normalise
from dltool.errors import CheckpointError, MissingPathError
from dltool.export.formats import FORMATS, Forward

EXPORT_SUFFIXES = frozenset(format.suffix for format in FORMATS.values())


class Sidecar(BaseModel):
    """The sidecar's fields that running the model needs (the file holds more, for people)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: Literal["onnx", "torchscript"]
    sha256: str
    task: str  # a name of dltool.tasks
    model: str
    classes: list[str] = []  # none where they name no output (an autoencoder's: Task.names_outputs)
    channels: int = Field(ge=1)
    image_size: tuple[int, int]
    mean: list[float]
    std: list[float]
    crop_pct: float | None = Field(None, gt=0, le=1)
    tta: str = "none"  # averaged inside the graph
    source: str | None = None  # the weights it was exported from

    @field_validator("task")
    @classmethod
    def _a_task(cls, task: str) -> str:
        if task not in tasks.names():
            raise ValueError(f"should be one of: {', '.join(tasks.names())}")
        return task


def sidecar_path(model_file: Path) -> Path:
    return model_file.with_name(model_file.name + ".json")


def is_export(path: Path) -> bool:
    """Whether ``path`` names an exported model (by its suffix, or by a sidecar beside it)."""
    path = Path(path)
    return path.suffix in EXPORT_SUFFIXES or (path.is_file() and sidecar_path(path).is_file())


@dataclass(frozen=True)
class Exported:
    """An exported model: its file, its sidecar and the forward pass of the format's runtime
    (a ``dltool.evaluation.model.InferenceModel``)."""

    path: Path
    sidecar: Sidecar
    run: Forward
    device: str  # where it runs: cpu for ONNX files; any device torch has for TorchScript

    @property
    def name(self) -> str:
        return self.sidecar.model

    @property
    def task(self) -> str:
        return self.sidecar.task

    @property
    def classes(self) -> list[str]:
        return self.sidecar.classes

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.sidecar.channels, *self.sidecar.image_size)

    @property
    def mean(self) -> list[float]:
        return self.sidecar.mean

    @property
    def std(self) -> list[float]:
        return self.sidecar.std

    @property
    def crop_pct(self) -> float | None:
        return self.sidecar.crop_pct

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    def forward(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W), normalised here in NumPy (no torch for an ONNX file), through the runtime."""
        return self.run(normalise(images, self.mean, self.std))


def load_exported(path: Path, *, device: str = "cpu") -> Exported:
    """The model in ``path`` (written by ``dltool export``) with its sidecar.

    ``device``: where it runs (cpu, cuda, cuda:N, mps). ONNX files run on onnxruntime's CPU
    provider, without importing torch."""
    path = Path(path)
    if not path.exists():
        raise MissingPathError(path, "file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    sidecar = read_sidecar(path)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sidecar.sha256:
        raise CheckpointError(
            f"{path}: its sidecar {sidecar_path(path).name} describes another file (export the model again)"
        )
    try:
        forward = FORMATS[sidecar.format].open(data, device)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return Exported(path, sidecar, forward, device)


def read_sidecar(model_file: Path) -> Sidecar:
    path = sidecar_path(model_file)
    if not path.is_file():
        raise CheckpointError(
            f"{model_file}: no sidecar {path.name} beside it (dltool export writes the two "
            "together; it says how to prepare images for the model)"
        )
    try:
        return Sidecar.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = error.errors()[0] if isinstance(error, ValidationError) else None
        where = f"{'.'.join(map(str, reason['loc']))}: {reason['msg']}" if reason else str(error)
        raise CheckpointError(f"{path}: not a dltool export sidecar ({where})") from None
