"""TensorBoard event files of a run, in ``RUN/tensorboard/`` (``train.tensorboard``).

What goes in is what the run dir records elsewhere, so ``tensorboard --logdir runs/``
compares runs (and ``--logdir STUDY/`` a study's trials):

- each number of every metrics.jsonl record, under the same name, at step = epoch;
- at the end, ``best_<monitored metric>`` (at the best epoch), the test split's scores
  (``test_loss`` and the task's: ``test_acc``, ``test_miou``, ``test_pck``, ...), and the
  confusion matrix on the test split as an image (classes per image or per pixel);
- the config, flattened to dotted keys, as the run's hparams (the HParams tab, whose metrics
  are these scalars). No experiment summary is written, so TensorBoard takes the union of
  every run's keys: runs with different optimizers still line up.

A resumed run writes the folder again from its checkpoint's history, as metrics.jsonl is
realigned: no epoch twice and none missing, wherever the previous session ended, and the
hparams are those of the resumed config. Only this module imports TensorBoard, and only
when a run asks for it.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from dltool._extras import require
from dltool.config.loading import flatten
from dltool.rundir import RunDir

if TYPE_CHECKING:
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from dltool.engine.setup import Components

AXES = {"epoch", "step"}  # metrics.jsonl keys that place a record rather than measure it
# summary.json's test scores are logged as test_<key>, but these, named as their val_ records are
TEST_SCALARS = {"accuracy": "test_acc", "pixel_accuracy": "test_pixel_acc"}


def require_tensorboard() -> None:
    """A usage error saying what to install when TensorBoard is missing."""
    require("tensorboard", "tensorboard", "train.tensorboard")


class Board:
    """The event writer of one run; the engine keeps one on rank 0 only."""

    def __init__(self, writer: SummaryWriter, parts: Components) -> None:
        self.writer = writer
        self.classes = parts.data.classes
        self.test_split = "val" if parts.data.test_is_val else "test"

    def log_epoch(self, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key not in AXES and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, record["epoch"])
        self.writer.flush()  # a live TensorBoard shows the epoch now, not at the next 2-minute flush

    def log_end(self, summary: dict[str, Any], confusion: torch.Tensor | None) -> None:
        """The best and test scores of summary.json; ``confusion``: the test split's counts, rows true."""
        last = summary["epochs_run"]
        if best := summary["best"]:
            self.writer.add_scalar(f"best_{best['metric']}", best["value"], best["epoch"])
        for key, value in (summary.get("test") or {}).items():
            if key != "n" and isinstance(value, (int, float)):  # the task's scores: test_pck, test_miou, ...
                self.writer.add_scalar(TEST_SCALARS.get(key, f"test_{key}"), value, last)
        if confusion is not None:
            image = _confusion_image(confusion.tolist(), self.classes, self.test_split)
            self.writer.add_image("confusion_matrix", image, last, dataformats="HWC")
        self.writer.flush()


@contextmanager
def open_board(run: RunDir, parts: Components, history: list[dict[str, Any]]) -> Iterator[Board]:
    """A ``Board`` on ``run.tensorboard`` holding the hparams and the epochs of ``history``
    (the tensorboard tracker of ``engine.trackers``). Closed, and so flushed to disk, however
    the run ends."""
    require_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(run.tensorboard, ignore_errors=True)  # a resumed run writes its history again
    with SummaryWriter(str(run.tensorboard)) as writer:
        writer.file_writer.add_summary(_hparams_summary(parts.config.to_dict()))
        board = Board(writer, parts)
        for record in history:
            board.log_epoch(record)
        yield board


def _hparams_summary(config: dict[str, Any]) -> Any:
    """The HParams plugin's session-start summary of ``config`` (dotted keys; values that are
    not a bool, number or string, such as lists and nulls, as JSON text)."""
    from tensorboard.plugins.hparams.summary_v2 import hparams_pb

    return hparams_pb(
        {
            key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
            for key, value in flatten(config).items()
        }
    )


def _confusion_image(matrix: list[list[int]], classes: list[str], split: str) -> np.ndarray:
    """The confusion matrix figure of ``dltool visualize``, as RGB pixels (H, W, 3)."""
    from PIL import Image

    from dltool.figures.canvas import render
    from dltool.figures.confusion import confusion_figure

    png = render(confusion_figure(matrix, classes, normalised=False, split=split), "png")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
