"""``dltool predict``'s rows: what a task makes of a batch's outputs, in NumPy (no torch).

A task that writes rows names its ``Rows`` in its registry entry (``TaskParams.rows``, a lazy
``"module:Class"`` target, loaded by ``dltool.tasks.rows_of``), apart from its behaviour's
module, which imports torch: ``dltool predict`` with an ONNX export runs the rows without
it, and a run's own model runs the same code on its outputs, made NumPy once per batch.

A row is an object with ``path``, ``values()`` (in ``Rows.columns`` order), ``document()``
(a JSON line) and ``line()`` (a terminal table's line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dltool._text import right_aligned


@dataclass(frozen=True)
class Inputs:
    """The images of a ``dltool predict`` batch: their ``paths``, and per image ``frames``
    (N, 2, 2): row 0 the stored image's pixels per unit of x and of y of the model's input
    (shares of its width and height), row 1 the stored pixel position of the input's (0, 0)
    — so a point at (u, v) of the input lies at (u, v) · row 0 + row 1 in the stored image."""

    paths: list[str]
    frames: np.ndarray


class Rows:
    """One task's rows; stateless (one shared instance per task)."""

    def predictions(self, output: np.ndarray, inputs: Inputs, classes: list[str], top_k: int) -> list[Any]:
        """The rows of a batch's ``output`` (the network's, as NumPy), one per image of ``inputs``."""
        raise NotImplementedError

    def columns(self, classes: list[str], top_k: int) -> list[str]:
        """The columns of the rows (csv, Parquet, DataFrames): ``path`` first."""
        raise NotImplementedError

    def text_columns(self, top_k: int) -> set[str]:
        """The columns that hold text; the others hold numbers (a target may be named ``label``)."""
        return {"path"}


@dataclass(frozen=True)
class Prediction:
    """A classifier's row for one image: its labels, most likely first."""

    path: str
    top: list[tuple[str, float]]  # (label, probability), most likely first

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def score(self) -> float:
        return self.top[0][1]

    def values(self) -> list[Any]:
        return [self.path, self.label, self.score, *[v for label, s in self.top for v in (label, s)]]

    def document(self) -> dict[str, Any]:
        top_k = [{"label": label, "score": s} for label, s in self.top]
        return {"path": self.path, "label": self.label, "score": self.score, "top_k": top_k}

    def line(self) -> str:
        others = "  ".join(f"{label} {s:.3f}" for label, s in self.top[1:])
        return f"{right_aligned(self.label, 12)} {self.score:6.3f}  {self.path}" + (f"   ({others})" if others else "")


class LabelRows(Rows):
    """Classification: the ``top_k`` classes by softmax probability (ties: the first class)."""

    def predictions(self, output: np.ndarray, inputs: Inputs, classes: list[str], top_k: int) -> list[Prediction]:
        logits = output.astype(np.float64)
        exp = np.exp(logits - logits.max(1, keepdims=True))
        probabilities = exp / exp.sum(1, keepdims=True)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        scores = np.take_along_axis(probabilities, order, 1)
        return [
            Prediction(path, [(classes[i], s) for i, s in zip(indices, row)])
            for path, indices, row in zip(inputs.paths, order.tolist(), scores.tolist())
        ]

    def columns(self, classes: list[str], top_k: int) -> list[str]:
        """``path, label, score, top1_label, top1_score, ...`` for ``top_k`` labels a row."""
        return ["path", "label", "score", *[f"top{i}_{f}" for i in range(1, top_k + 1) for f in ("label", "score")]]

    def text_columns(self, top_k: int) -> set[str]:
        return {"path", "label", *[f"top{i}_label" for i in range(1, top_k + 1)]}


@dataclass(frozen=True)
class PointRow:
    """A keypoint model's row: each point's (x, y) in pixels of the input image as stored."""

    path: str
    names: list[str]
    points: list[tuple[float, float]]

    def values(self) -> list[Any]:
        return [self.path, *[v for point in self.points for v in point]]

    def document(self) -> dict[str, Any]:
        return {"path": self.path, "points": {n: {"x": x, "y": y} for n, (x, y) in zip(self.names, self.points)}}

    def line(self) -> str:
        return "  ".join(f"{n} {x:.1f},{y:.1f}" for n, (x, y) in zip(self.names, self.points)) + f"  {self.path}"


def coordinate_columns(names: list[str]) -> list[str]:
    """``x1, y1`` for a numbered point, ``nose_x, nose_y`` for a named one (points.csv's own form)."""
    return [c for n in names for c in ((f"x{n}", f"y{n}") if n.isdigit() else (f"{n}_x", f"{n}_y"))]


class PointRows(Rows):
    """Keypoints: the network's (x, y) shares of its input, mapped to the stored image's pixels."""

    def predictions(self, output: np.ndarray, inputs: Inputs, classes: list[str], top_k: int) -> list[PointRow]:
        points = output.astype(np.float32).reshape(len(output), len(classes), 2).astype(np.float64)
        pixels = points * inputs.frames[:, None, 0] + inputs.frames[:, None, 1]
        return [
            PointRow(path, classes, [(float(x), float(y)) for x, y in row]) for path, row in zip(inputs.paths, pixels)
        ]

    def columns(self, classes: list[str], top_k: int) -> list[str]:
        return ["path", *coordinate_columns(classes)]


@dataclass(frozen=True)
class ValueRow:
    """A regression model's row: each target's predicted value."""

    path: str
    names: list[str]
    numbers: list[float]

    def values(self) -> list[Any]:
        return [self.path, *self.numbers]

    def document(self) -> dict[str, Any]:
        return {"path": self.path, "values": dict(zip(self.names, self.numbers))}

    def line(self) -> str:
        return "  ".join(f"{n} {v:.4g}" for n, v in zip(self.names, self.numbers)) + f"  {self.path}"


class ValueRows(Rows):
    """Regression: the network's outputs, one named value each."""

    def predictions(self, output: np.ndarray, inputs: Inputs, classes: list[str], top_k: int) -> list[ValueRow]:
        return [ValueRow(path, classes, row) for path, row in zip(inputs.paths, output.astype(np.float64).tolist())]

    def columns(self, classes: list[str], top_k: int) -> list[str]:
        return ["path", *classes]
