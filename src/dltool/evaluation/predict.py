"""Label image files with a trained classifier: lazily, in input order, in batches.

Files are decoded in worker processes a bounded number of batches ahead
(``dltool.evaluation.inputs``) while this process runs the model, and rows are yielded as
soon as their batch is through it: the first rows come out before a large folder has been
read, and memory stays flat however many files there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

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

__all__ = ["Decoder", "Prediction", "Unreadable", "expand_paths", "predict", "read_path_lines"]


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (label, probability), most likely first

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def score(self) -> float:
        return self.top[0][1]


def predict(
    model: InferenceModel, paths: Iterable[str], *, top_k: int = 3, batch_size: int = 32, workers: int | None = None
) -> Iterator[Prediction | Unreadable]:
    """One Prediction or Unreadable per path, in input order (a batch's unreadable files
    come just before its predictions).

    ``model`` is a trained run's (``load_trained``) or an exported file's (``load_exported``):
    only the forward pass differs, so both give the same rows. ``workers``: decoding
    processes (0: decode in this process; None: ``default_workers()``)."""
    if model.task != "classification":
        raise UsageError(f"predict labels images; model {model.name!r} reconstructs them (score it with dltool eval)")
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
    probs = torch.softmax(model.forward(images).float(), dim=1)
    scores, indices = probs.topk(top_k, dim=1)
    for path, row_scores, row_indices in zip(chunk.paths, scores.tolist(), indices.tolist()):
        yield Prediction(path, [(model.classes[i], s) for i, s in zip(row_indices, row_scores)])
