"""What an int8 export is asked for (``dltool export --int8``) and how its file scored.

Light (no torch, no onnxruntime), so the command line can show the defaults; the work is in
``dltool.export.quantize``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dltool.errors import UsageError

CALIBRATION_IMAGES = 256
MAX_DROP = 0.01


@dataclass(frozen=True)
class Int8:
    """How to quantize: ``calibration`` training images set the activation ranges, and the
    quantized model's headline test score may be worse than the float model's by at most
    ``max_drop`` of it (0.01: 1%)."""

    calibration: int = CALIBRATION_IMAGES
    max_drop: float = MAX_DROP

    def __post_init__(self) -> None:
        if self.calibration < 1:
            raise UsageError(f"calibration {self.calibration}: expected 1 or more images")
        if not 0 <= self.max_drop <= 1:
            raise UsageError(f"max_drop {self.max_drop:g}: expected a fraction from 0 to 1")


@dataclass(frozen=True)
class Int8Check:
    """The quantized file's headline score against the float model's on ``images`` of ``split``."""

    split: str
    score: str  # the eval document's key
    float_score: float
    int8_score: float
    higher_is_better: bool
    images: int
    calibration_images: int
    max_drop: float
    speedup: float | None = None  # the int8 file's speed over the float file's, on the machine that exported it

    @property
    def drop(self) -> float:
        """How much worse the int8 score is, as a fraction of the float score (negative: better)."""
        worse = self.float_score - self.int8_score
        return (worse if self.higher_is_better else -worse) / max(abs(self.float_score), 1e-12)

    def document(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "images": self.images,
            "score": self.score,
            "float": self.float_score,
            "int8": self.int8_score,
            "max_drop": self.max_drop,
            "speedup": self.speedup,
        }
