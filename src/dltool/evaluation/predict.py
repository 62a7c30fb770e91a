"""Label image files with a trained classifier: lazily, in input order, in batches.

Files are decoded in worker processes a bounded number of batches ahead
(``dltool.evaluation.inputs``) while this process runs the model, and rows are yielded as
soon as their batch is through it: the first rows come out before a large folder has been
read, and memory stays flat however many files there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

import dltool.tasks as tasks
from dltool.data.normalise import Normalise
from dltool.errors import UsageError
from dltool.evaluation.inputs import (
    Chunk,
    Decoder,
    Unreadable,
    decoded_chunks,
    default_workers,
    expand_paths,
    read_path_lines,
)
from dltool.evaluation.trained import InferenceModel, Trained
from dltool.tasks.task import Prediction

__all__ = ["Decoder", "Prediction", "Unreadable", "expand_paths", "predict", "read_path_lines"]


def predict(
    model: InferenceModel, paths: Iterable[str], *, top_k: int = 3, batch_size: int = 32, workers: int | None = None
) -> Iterator[Prediction | Unreadable]:
    """One Prediction or Unreadable per path, in input order (a batch's unreadable files
    come just before its predictions).

    ``model`` is a trained run's (``load_trained``) or an exported file's (``load_exported``):
    only the forward pass differs, so both give the same rows. ``workers``: decoding
    processes (0: decode in this process; None: ``default_workers()``)."""
    if not tasks.info(model.task).predicts:
        what = tasks.tasks.get(model.task).description.lower().rstrip(".")
        raise UsageError(f"predict has no rows for model {model.name!r}: {what} (score it with dltool eval)")
    normalise = Normalise(model.mean, model.std, model.device)
    top_k = max(1, min(top_k, len(model.classes)))
    workers = default_workers() if workers is None else workers
    for chunk in decoded_chunks(paths, Decoder.of(model), chunk=batch_size, workers=workers):
        yield from chunk.unreadable
        yield from _classify(model, chunk, normalise, top_k)


@torch.inference_mode()
def _classify(model: InferenceModel, chunk: Chunk, normalise: Normalise, top_k: int) -> Iterator[Prediction]:
    if not chunk.paths:
        return
    images = normalise(torch.from_numpy(chunk.images).to(normalise.scale.device))
    if isinstance(model, Trained) and images.device.type == "cpu":
        # oneDNN's convolutions run channels-last inputs 1.6× faster (ResNet-18, 224 px, 2 cores),
        # to within float rounding (1e-5 on logits); a network without convolutions is unaffected.
        images = images.contiguous(memory_format=torch.channels_last)
    yield from tasks.get(model.task).predictions(model.forward(images), chunk.paths, model.classes, top_k)
