"""Label image files with a trained model (its task's rows): lazily, in input order, in batches.

Files are decoded in worker processes a bounded number of batches ahead
(``dltool.evaluation.inputs``) while this process runs the model, and rows are yielded as
soon as their batch is through it: the first rows come out before a large folder has been
read, and memory stays flat however many files there are.

Everything here is NumPy: only the model's forward pass (normalising included: a run's
model does it on its own device) differs between a run (PyTorch) and an export
(onnxruntime, TorchScript), and an ONNX export predicts without importing torch.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

import numpy as np

import dltool.tasks as tasks
from dltool.data.resize import fit_transform
from dltool.errors import UsageError, option
from dltool.evaluation.inputs import (
    Chunk,
    Decoder,
    Input,
    Unreadable,
    decoded_chunks,
    expand_paths,
    read_path_lines,
)
from dltool.evaluation.model import InferenceModel, default_batch_size
from dltool.tasks.rows import Inputs, Prediction

__all__ = ["Decoder", "Prediction", "Unreadable", "expand_paths", "predict", "read_path_lines"]


def predict(
    model: InferenceModel,
    paths: Iterable[Input],
    *,
    top_k: int = 3,
    batch_size: int | None = None,
    workers: int | None = None,
) -> Generator[Any, None, None]:
    """One row (a classifier's ``Prediction``, a keypoint model's points, ...: the task's
    ``dltool.tasks.rows``) or Unreadable per path or image in memory (``pictures.InMemory``),
    in input order (a batch's unreadable files come just before its rows).

    ``model`` is a trained run's (``load_trained``) or an exported file's (``load_exported``):
    only the forward pass differs, so both give the same rows. ``workers``: decoding
    processes (0: decode in this process; None: in this process while the model is the slower
    side, else ``default_workers()``: ``dltool.evaluation.inputs.decoded_chunks``)."""
    _check_predicts(model)
    for chunk in decoded_chunks(
        paths, Decoder.of(model), chunk=batch_size or default_batch_size(model), workers=workers
    ):
        yield from chunk.unreadable
        yield from _predict(model, chunk, _top(model, top_k))


def prediction_columns(model: InferenceModel, top_k: int) -> list[str]:
    """The columns of ``predict``'s rows for ``model`` (csv, Parquet): ``path`` first."""
    _check_predicts(model)
    return tasks.rows_of(model.task).columns(model.classes, _top(model, top_k))


def text_columns(model: InferenceModel, top_k: int) -> set[str]:
    """Which of ``prediction_columns`` hold text (Parquet's types)."""
    return tasks.rows_of(model.task).text_columns(_top(model, top_k))


def _check_predicts(model: InferenceModel) -> None:
    if tasks.info(model.task).masks_out:  # the command asks for --out first; Python callers meet this
        segment = option("out", "DIR", python="dltool.segment(run, inputs, out)")
        raise UsageError(f"model {model.name!r} is a {model.task} model: it predicts mask images, written by {segment}")
    if tasks.info(model.task).rows is None:
        what = tasks.tasks.get(model.task).description.lower().rstrip(".")
        score = option("evaluate", python="dltool.evaluate(run)")
        raise UsageError(f"predict has no rows for model {model.name!r}: {what} (score it with {score})")


def _top(model: InferenceModel, top_k: int) -> int:
    return max(1, min(top_k, len(model.classes)))


def _predict(model: InferenceModel, chunk: Chunk, top_k: int) -> list[Any]:
    if not chunk.paths:
        return []
    output = model.forward(chunk.images)
    inputs = Inputs(chunk.paths, _frames(chunk.sizes, model.in_shape[1:], model.crop_pct))
    return tasks.rows_of(model.task).predictions(output, inputs, model.classes, top_k)


def _frames(sizes: list[tuple[int, int]], fitted: tuple[int, int], crop_pct: float | None) -> np.ndarray:
    """Per image: its stored pixels per unit of the model's input, and where the input's
    origin lies in it (``dltool.tasks.rows.Inputs``)."""
    frames = np.zeros((len(sizes), 2, 2))
    extent = np.array([fitted[1], fitted[0]], dtype=np.float64)
    for row, stored in enumerate(sizes):
        scale, offset = fit_transform(stored, fitted, crop_pct)
        frames[row] = extent / scale, offset / scale
    return frames
