"""Label image files with a trained classifier: lazily, in input order, in batches.

Paths are expanded lazily (folders walked in sorted order), images decoded in parallel
threads a bounded number of chunks ahead, and rows yielded as soon as their batch is through the
model, so the first rows come out before a large folder has been read and memory stays
flat however many files there are.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from dltool.data.folders import IMAGE_EXTENSIONS
from dltool.data.images import ImageDecodeError, decode_image
from dltool.data.normalise import Normalise
from dltool.errors import UsageError
from dltool.evaluation.trained import InferenceModel


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


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str


@dataclass(frozen=True)
class Decoder:
    """The evaluation transform of one model's input, as a picklable callable: a file's path
    → uint8 (C, H, W), exactly as training's val/test split holds that file."""

    channels: int
    size: tuple[int, int]
    crop_pct: float | None

    @classmethod
    def of(cls, model: InferenceModel) -> Decoder:
        channels, height, width = model.in_shape
        return cls(channels, (height, width), model.crop_pct)

    def __call__(self, path: str) -> np.ndarray:
        return decode_image(path, channels=self.channels, size=self.size, crop_pct=self.crop_pct)


def expand_paths(inputs: Iterable[str]) -> Iterator[str]:
    """Files as given; folders walked recursively in sorted order (image extensions only);
    glob patterns expanded, sorted. A name that matches nothing is an unreadable row."""
    for item in inputs:
        if os.path.isdir(item):
            yield from _walk(item)
        elif not os.path.exists(item) and glob.has_magic(item):
            yield from sorted(glob.glob(item, recursive=True))
        else:
            yield item


def _walk(folder: str) -> Iterator[str]:
    for directory, subdirs, files in os.walk(folder):
        subdirs.sort()
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield os.path.join(directory, name)


def predict(
    model: InferenceModel, paths: Iterable[str], *, top_k: int = 3, batch_size: int = 64, workers: int | None = None
) -> Iterator[Prediction | Unreadable]:
    """One Prediction or Unreadable per path, in input order.

    ``model`` is a trained run's (``load_trained``) or an exported file's (``load_exported``):
    only the forward pass differs, so both give the same rows."""
    if model.task != "classification":
        raise UsageError(f"predict labels images; model {model.name!r} reconstructs them (score it with dltool eval)")
    normalise = Normalise(model.mean, model.std, model.device)
    top_k = max(1, min(top_k, len(model.classes)))
    decode = Decoder.of(model)
    pending: list[tuple[str, np.ndarray]] = []
    for path, result in _decoded(paths, decode, chunk=batch_size, workers=workers):
        if isinstance(result, Unreadable):
            yield result  # reported at once; the good rows keep their input order
            continue
        pending.append((path, cast(np.ndarray, result)))  # not Unreadable: decoded pixels
        if len(pending) == batch_size:
            yield from _flush(model, pending, normalise, top_k)
            pending = []
    yield from _flush(model, pending, normalise, top_k)


def _decoded(paths: Iterable[str], decode, *, chunk: int, workers: int | None) -> Iterator[tuple[str, object]]:
    """(path, array or Unreadable) in input order. Chunks of ``chunk`` paths are decoded in
    worker threads, a bounded number ahead: the main thread runs the model meanwhile.

    Small images decode mostly under the GIL, so more threads than spare cores only add
    contention: the default leaves one core to inference (one decoding thread on 2 cores).
    """
    workers = workers or max(1, min(8, (os.cpu_count() or 2) - 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        queue: deque[Future] = deque()
        for group in _chunks(expand_paths(paths), chunk):
            queue.append(pool.submit(_decode_all, decode, group))
            if len(queue) > workers + 1:
                yield from queue.popleft().result()
        while queue:
            yield from queue.popleft().result()


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group


def _decode_all(decode, paths: list[str]) -> list[tuple[str, object]]:
    results: list[tuple[str, object]] = []
    for path in paths:
        try:
            results.append((path, decode(path)))
        except ImageDecodeError as error:
            results.append((path, Unreadable(path, error.reason)))
    return results


@torch.inference_mode()
def _flush(
    model: InferenceModel, pending: list[tuple[str, np.ndarray]], normalise: Normalise, top_k: int
) -> Iterator[Prediction]:
    if not pending:
        return
    batch = torch.from_numpy(np.stack([array for _, array in pending]))
    images = normalise(batch.to(normalise.scale.device))
    probs = torch.softmax(model.forward(images).float(), dim=1)
    scores, indices = probs.topk(top_k, dim=1)
    for (path, _), row_scores, row_indices in zip(pending, scores.tolist(), indices.tolist()):
        yield Prediction(path, [(model.classes[i], s) for i, s in zip(row_indices, row_scores)])


def read_path_lines(lines: Iterable[str]) -> Iterator[str]:
    """Paths from newline-separated text (``-`` on the command line), blank lines skipped."""
    for line in lines:
        if line := line.rstrip("\r\n"):
            yield line
