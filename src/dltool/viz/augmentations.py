"""``augmentations``: the same training images under several draws of a run's or a recipe's
``data.augment``, as training sees them (one draw per epoch; MixUp/CutMix included), with
the targets that move with them: a segmentation image's mask over it, a keypoint image's points.

Run reports embed the grid when ``RUN/plots/augmentations.png`` exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dltool._io import slug
from dltool.figures.canvas import Plot, Plotter, Visualization, new_figure, show_image
from dltool.figures.classes import clip_name

NAME = "augmentations"
CAPTION = (
    "the same training images (top row, as stored) under the augmentation of epochs 0, 1, ... (one row each);"
    " masks are drawn over their images, points as green circles"
)
MASK_ALPHA = 0.5  # a mask's colours over its image, as predict --overlay blends them
IMAGES = 8
DRAWS = 5


def visualize_augmentations(target: str, *, out: Path | None = None, fmt: str = "png") -> Visualization:
    """``augmentations.<fmt>`` of run dir or recipe/YAML ``target`` into ``out`` (default
    ``RUN/plots``, or ``plots/<recipe>`` in the working directory)."""
    from dltool.config import load_config
    from dltool.config.loading import resolve_source
    from dltool.rundir import RunDir, is_run_dir

    config = load_config(target)
    if out is None:
        run = Path(target).expanduser()
        out = RunDir(run).plots if is_run_dir(run) else Path("plots") / slug(resolve_source(target).name, "recipe")
    plotter = Plotter(Path(out), fmt)
    notes = [] if _augments(config.data.augment) else ["data.augment is all off: every row shows the stored images"]
    draws = draw_rows(config, IMAGES, DRAWS)
    if draws.kind == "values":
        notes.append("the images alone: regression values do not move with them and are not drawn")
    path = plotter.save(augmentations_figure(config, draws), NAME, CAPTION)
    return plotter.visualization([path], [*notes, *draws.skipped])


def _augments(augment: Any) -> bool:
    from dltool.data.augment import Augmenter

    return Augmenter(augment, 0).enabled


@dataclass(frozen=True)
class Draws:
    """Training images as stored, their targets (``kind``: see ``target_kind``) and class
    names, and per epoch the uint8 images training sees with the targets they carry (labels
    or (N, K) weights when mixed; masks and points moved with their images); ``skipped``:
    'skipped PATH: reason' for each chosen file that could not be read (left out)."""

    stored: np.ndarray
    labels: np.ndarray
    classes: list[str]
    rows: list[np.ndarray]
    targets: list[np.ndarray]
    skipped: list[str]

    @property
    def kind(self) -> str:
        from dltool.data.arrays import target_kind

        return target_kind(self.labels)

    @property
    def classified(self) -> bool:
        """Whether ``labels`` are a class index per image (not masks, points or values)."""
        return self.kind == "labels"

    def titles(self) -> list[str]:
        """Each image's title: its class name, clipped; none where there are no classes."""
        return [clip_name(self.classes[int(label)], 12) if self.classified else "" for label in self.labels]


def draw_rows(config: Any, count: int, draws: int) -> Draws:
    """``count`` training images spread over the split, under epochs 0..draws-1 of
    ``config``'s augmentation, through the loader the run uses (``data.loader``)."""
    import torch

    from dltool.data.augment import Augmenter
    from dltool.data.prepare import prepare_data

    data = prepare_data(config.data)
    train = data.splits["train"]
    spread = np.unique(np.linspace(0, len(train) - 1, min(count, len(train))).round().astype(np.int64))
    stored, indices, skipped = _stored(train, spread)
    labels = _targets(train.take(indices))
    batch = torch.from_numpy(stored), torch.from_numpy(labels)
    augmenter = Augmenter(config.data.augment, config.train.seed)
    flips = _flip_order(config, labels, data.classes)
    rows, targets = [], []
    for epoch in range(draws):
        out, target = _training_images(train, batch, augmenter, (epoch, indices), flips)
        if labels.ndim == 1:  # Mixing commutes with the normalisation (weights sum to 1): shown as is.
            out, target = augmenter.mix(out.float(), target, epoch, 0, len(data.classes))
        rows.append(out.float().round().clamp(0, 255).to(torch.uint8).numpy())
        targets.append(target.numpy())
    return Draws(stored, labels, data.classes, rows, targets, skipped)


def _targets(split: Any) -> np.ndarray:
    """A few samples' targets as training holds them (a streamed split's masks decoded)."""
    from dltool.data.files import FileSplit

    return split.targets if isinstance(split, FileSplit) else split.labels


def _flip_order(config: Any, labels: np.ndarray, classes: list[str]) -> Any:
    """The points' order after a horizontal flip (``data.flip_pairs``), as the loaders take it."""
    import torch

    from dltool.data.arrays import target_kind
    from dltool.data.keypoints import flip_order

    order = flip_order(config.data.flip_pairs, classes) if target_kind(labels) == "points" else None
    return None if order is None else torch.tensor(order)


def _stored(train: Any, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The images of ``indices`` as stored, the indices they are and a line per file left out:
    a streamed split holds every file found, and training skips those it cannot decode."""
    from dltool.data.files import FileSplit, decode_rows

    if not isinstance(train, FileSplit):
        return train.take(indices).images, indices, []
    images, failed = decode_rows(train, indices, threads=1)
    kept = np.setdiff1d(indices, np.array([row for row, _ in failed], np.int64))  # both sorted
    return images, kept, [f"skipped {train.path(row)}: {reason}" for row, reason in failed]


def _training_images(train: Any, stored: Any, augmenter: Any, at: tuple[int, np.ndarray], flips: Any) -> Any:
    """uint8 images and their targets for (epoch, indices) ``at`` as the run's loader makes
    them: the stream loader cuts each random crop from its file (its own decoder, in this
    process); the memory loader augments the images and targets it holds (``stored``)."""
    import torch

    from dltool.data.arrays import target_kind
    from dltool.data.files import FileSplit
    from dltool.data.keypoints import augmented
    from dltool.data.stream import BatchDecoder

    if isinstance(train, FileSplit):
        slots = torch.full((1, 3), -1, dtype=torch.int64)  # written by decoding workers only
        flip_order = None if flips is None else flips.tolist()
        images, targets, _skipped = BatchDecoder([train], [augmenter], slots, flip_order=flip_order)[(0, *at)]
        return images, targets
    return augmented(augmenter, target_kind(stored[1].numpy()), stored, at, flips)


def augmentations_figure(config: Any, d: Draws) -> Figure:
    """A grid: the stored images on top, one row per epoch's draw below, each titled with
    its class (and its weight in the target when mixed)."""
    tile = 0.9 if d.stored.shape[-1] <= 64 else 1.5
    figure = new_figure(len(d.stored) * tile + 0.8, (len(d.rows) + 1) * (tile + 0.2) + 0.4)
    axes = figure.subplots(len(d.rows) + 1, len(d.stored), squeeze=False)
    names = d.titles()
    for column, image in enumerate(d.stored):
        show_image(axes[0, column], image, names[column])
    for column, image in enumerate(d.stored):
        _draw_target(axes[0, column], image, d.labels[column], d.kind)
    for row, (images, target) in enumerate(zip(d.rows, d.targets, strict=True), start=1):
        for column, image in enumerate(images):
            mixed = d.classified and target.ndim == 2  # (N, classes) weights, not (N, T) values
            weight = f" {target[column, d.labels[column]]:.2f}" if mixed else ""
            show_image(axes[row, column], image, names[column] + weight)
            _draw_target(axes[row, column], image, target[column], d.kind)
        axes[row, 0].text(-0.1, 0.5, f"epoch {row - 1}", transform=axes[row, 0].transAxes, ha="right", va="center")
    figure.suptitle(f"data.augment of {config.data.name}: stored (top) and {len(d.rows)} draws", fontsize=10)
    return figure


def _draw_target(ax: Any, image: np.ndarray, target: np.ndarray, kind: str) -> None:
    """A mask's class colours over its (C, H, W) image, or its points as green circles."""
    from dltool.data.table_decode import POINT_ROWS
    from dltool.figures.masks import coloured
    from dltool.figures.points import circles

    if kind == "masks":
        ax.imshow(coloured(target).transpose(1, 2, 0), alpha=MASK_ALPHA, interpolation="nearest")
    elif kind == "points":
        circles(ax, target[: len(target) - POINT_ROWS] * np.array(image.shape[:0:-1]))


def saved_plot(folder: Path) -> list[Plot]:
    """``augmentations.png`` of ``folder`` as a report plot, when it exists."""
    path = folder / f"{NAME}.png"
    if not path.is_file():
        return []
    return [Plot(NAME, path, CAPTION, path.read_bytes())]
