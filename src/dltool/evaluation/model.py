"""What ``predict`` needs of a model, whatever runs it (no torch here).

``Trained`` (a run's PyTorch module, ``dltool.evaluation.trained``) is one such model,
``dltool.export.Exported`` (an ONNX or TorchScript file) another. Everything around the
forward pass — decoding, the evaluation transform, the task's rows — is NumPy and the same
for both, so a model gives the same rows whichever file it comes from, and an ONNX export
predicts without importing torch. The forward pass takes the uint8 pixels and normalises
them where it runs (``dltool.data.normalise``: the same bits in NumPy and in torch on a CPU),
so a model on a GPU is sent bytes, not float32.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class InferenceModel(Protocol):
    """A model ready for inference: what feeds it (uint8 images of ``in_shape`` made by the
    evaluation transform with ``crop_pct``, which its forward pass normalises with
    ``mean``/``std``), its forward pass and what its output means (its ``task`` and
    ``classes``)."""

    @property
    def name(self) -> str: ...  # the model's registry name, for messages
    @property
    def task(self) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def in_shape(self) -> tuple[int, int, int]: ...
    @property
    def mean(self) -> list[float]: ...
    @property
    def std(self) -> list[float]: ...
    @property
    def crop_pct(self) -> float | None: ...  # None: stretched to in_shape (runs before crop_pct)
    @property
    def device_type(self) -> str: ...  # where the forward pass runs: cpu, cuda, mps

    def forward(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) → the task's output, float32: logits (N, classes),
        (N, classes, H, W) for segmentation, ...; normalises the pixels itself."""
        ...


# Images per forward pass on a CPU: 8 at 224² (32 from 112² down). More are no faster there
# (ResNet-18, 2 cores: 46.6, 46.4 and 46.2 images/s at 8, 16 and 32 images) but hold more
# activations: `dltool predict`'s peak RSS was 904, 942 and 1,020 MB.
CPU_BATCH_PIXELS = 8 * 224 * 224
ACCELERATOR_BATCH = 32


def default_batch_size(model: InferenceModel, largest: int = ACCELERATOR_BATCH) -> int:
    """Images per forward pass when the caller names none: ``largest`` on an accelerator, on a
    CPU as many as hold ``CPU_BATCH_PIXELS`` (1 to ``largest``)."""
    if model.device_type != "cpu":
        return largest
    _, height, width = model.in_shape
    return max(1, min(largest, CPU_BATCH_PIXELS // (height * width)))
