"""What ``predict`` needs of a model, whatever runs it (no torch here).

``Trained`` (a run's PyTorch module, ``dltool.evaluation.trained``) is one such model,
``dltool.export.Exported`` (an ONNX or TorchScript file) another. Everything around the
forward pass — decoding, the evaluation transform, normalising, the task's rows — is NumPy
and the same for both, so a model gives the same rows whichever file it comes from, and an
ONNX export predicts without importing torch.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class InferenceModel(Protocol):
    """A model ready for inference: what feeds it (uint8 images of ``in_shape`` made by the
    evaluation transform with ``crop_pct``, normalised with ``mean``/``std``), its forward
    pass and what its output means (its ``task`` and ``classes``)."""

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

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Normalised float32 (N, C, H, W) → the task's output, float32: logits (N, classes),
        (N, classes, H, W) for segmentation, ..."""
        ...
