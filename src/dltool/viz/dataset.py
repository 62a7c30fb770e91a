"""A dataset (registered name or image folder) at a glance: sample images per class and the
class balance of each split (or images with their masks, or their keypoints), exactly as
``dltool train`` prepares it (drawn val split)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from dltool._io import slug
from dltool.data.arrays import Split, label_counts
from dltool.errors import UsageError, option
from dltool.figures.canvas import Plotter, Visualization, grid_shape, new_figure, show_image
from dltool.figures.classes import class_ticks, clip_name
from dltool.figures.masks import mask_samples_figure
from dltool.figures.points import points_samples_figure
from dltool.viz import report

if TYPE_CHECKING:
    from dltool.data.files import FileSplit

SPLIT_ORDER = ("train", "val", "test")
ROWS_UP_TO = 20  # classes drawn as one row each; beyond, one image per class in a grid
PER_CLASS = 8  # images per class row
GRID_COLUMNS = 10
CLASSES_SHOWN = 100  # classes in the one-per-class grid
SAMPLE_TILE = 0.9  # inches per image
SAMPLE_SEED = 0
# What a class's count counts, by the dataset's targets: masks count their pixels of it.
COUNTED = {"labels": "images", "masks": "pixels", "points": "images"}


def visualize_dataset(
    name: str, *, out: Path | None = None, fmt: str = "png", split: str = "train", root: str | None = None
) -> Visualization:
    """``samples`` (images of ``split`` by class, or with their masks or points), ``balance``
    (samples per class and split; not for points) and ``report.html`` into ``out`` (default
    ``plots/<dataset name>`` in the working directory)."""
    from dltool.config.schema import DataConfig
    from dltool.data.arrays import target_kind
    from dltool.data.fetch import fetch_missing
    from dltool.data.prepare import prepare_data
    from dltool.data.splits import for_new_run

    fetch_missing(name, root)  # a named dataset not downloaded yet, as a run fetches it
    data = prepare_data(for_new_run(DataConfig(name=name, root=root)))
    splits = [s for s in SPLIT_ORDER if s in data.splits and not (s == "test" and data.test_is_val)]
    if split not in data.splits:
        raise UsageError(f"{option('split', split)}: {name} has splits {', '.join(splits)}")
    chosen = data.splits[split]
    kind = target_kind(chosen.labels)
    if kind == "values":
        raise UsageError(f"{name} holds values, not classes or points: visualize a run trained on it instead")
    plotter = Plotter(Path(out) if out is not None else default_out(name), fmt)
    written = [plotter.save(*_samples(kind, chosen, data.classes, split))]
    counts = {s: _counts(kind, data.splits[s], len(data.classes)) for s in splits}
    if kind != "points":
        no_test = " (no test split: val doubles as test)" if data.test_is_val else ""
        unit = COUNTED[kind]
        balance = balance_figure({s: data.splits[s].labels for s in splits}, data.classes, unit)
        written.append(plotter.save(balance, "balance", f"{unit} per class in each split" + no_test))
    page = _dataset_report(name, data, counts, plotter, "point" if kind == "points" else "class", COUNTED[kind])
    written.append(page.write(plotter.out / "report.html"))
    return plotter.visualization(written, [])


def _samples(kind: str, chosen: Split | FileSplit, classes: list[str], split: str) -> tuple[Figure, str, str]:
    """The samples figure of a split of ``kind`` (labels, masks or points), its name and caption."""
    if kind == "masks":
        return mask_samples_figure(chosen, classes, split), "samples", f"{split} images and their masks"
    if kind == "points":
        return points_samples_figure(chosen, len(classes), split), "samples", f"{split} images and their points"
    caption = f"{split} images, chosen at random (seed {SAMPLE_SEED}) within each class"
    return samples_figure(chosen, classes, split), "samples", caption


def _counts(kind: str, split: Split | FileSplit, names: int) -> np.ndarray:
    """Per class, the split's samples; per point, the images where it is present."""
    if kind != "points":
        return label_counts(split.labels, names)
    return (~np.isnan(np.asarray(split.labels)[:, :names]).any(2)).sum(0)


def _dataset_report(
    name: str, data: Any, counts: dict[str, np.ndarray], plotter: Plotter, noun: str, unit: str
) -> report.Report:
    """report.html of a dataset: its splits, normalisation, the plots, and the ``unit``
    (images, a segmentation's pixels) per class (or the images where each point is present)."""
    plural = "points" if noun == "point" else "classes"
    page = report.Report(
        f"Dataset {name}",
        f"{len(data.classes)} {plural} · images "
        + "×".join(map(str, data.in_shape))
        + " · "
        + ", ".join(f"{s} {len(data.splits[s])}" for s in counts),
    )
    page.add(
        "Splits",
        report.table(
            ["split", "images", f"smallest {noun} ({unit})", f"largest {noun} ({unit})"],
            [[s, len(data.splits[s]), int(c.min()), int(c.max())] for s, c in counts.items()],
        ),
    )
    page.add("Normalisation (train split)", report.key_values({"mean": data.mean, "std": data.std}))
    page.add("Plots", report.figures(plotter.plots))
    title = "Images where each point is present" if noun == "point" else f"{unit.capitalize()} per class"
    rows = [[c, *(int(counts[s][i]) for s in counts)] for i, c in enumerate(data.classes)]
    page.add(title, report.table([noun, *counts], rows))
    page.add("Notes", report.notes(data.messages()))
    return page


def default_out(name: str) -> Path:
    return Path("plots") / slug(name, "dataset", strip="_.")


def samples_size(n_classes: int) -> tuple[float, float]:
    if n_classes <= ROWS_UP_TO:
        return PER_CLASS * SAMPLE_TILE + 1.4, n_classes * SAMPLE_TILE + 0.5
    rows, columns = grid_shape(min(n_classes, CLASSES_SHOWN), GRID_COLUMNS)
    return columns * (SAMPLE_TILE + 0.2), rows * (SAMPLE_TILE + 0.3) + 0.5


def choose_samples(labels: np.ndarray, n_classes: int, per_class: int, seed: int = SAMPLE_SEED) -> list[np.ndarray]:
    """For each class, up to ``per_class`` indices drawn without replacement (sorted)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        chosen.append(np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False)))
    return chosen


def samples_figure(samples: Split | FileSplit, classes: list[str], split: str = "train") -> Figure:
    """Up to 20 classes: a row of ``PER_CLASS`` images per class, named on the left. More: one
    image per class (the first 100 classes), titled with its class. Only the images shown
    are read."""
    labels = samples.labels
    n = len(classes)
    figure = new_figure(*samples_size(n))
    if n <= ROWS_UP_TO:
        chosen = choose_samples(labels, n, PER_CLASS)
        axes = figure.subplots(n, PER_CLASS, squeeze=False)
        for row, (name, indices) in enumerate(zip(classes, chosen)):
            for column in range(PER_CLASS):
                ax = axes[row, column]
                if column < len(indices):
                    show_image(ax, samples.image(indices[column]))
                else:
                    ax.set_axis_off()
            axes[row, 0].text(
                -0.15,
                0.5,
                f"{clip_name(name)} ({int(np.sum(labels == row))})",
                transform=axes[row, 0].transAxes,
                ha="right",
                va="center",
                fontsize=8,
            )
    else:
        shown = min(n, CLASSES_SHOWN)
        chosen = choose_samples(labels, shown, 1)
        rows, columns = grid_shape(shown, GRID_COLUMNS)
        axes = figure.subplots(rows, columns, squeeze=False)
        for ax, name, indices in zip(axes.flat, classes, chosen):
            if len(indices):
                show_image(ax, samples.image(indices[0]), clip_name(name, 12))
            else:
                ax.set_axis_off()
                ax.set_title(clip_name(name, 12), fontsize=7)
        for ax in axes.flat[shown:]:
            ax.set_axis_off()
    more = f", first {CLASSES_SHOWN} of {n} classes" if n > CLASSES_SHOWN else ""
    figure.suptitle(f"Samples of the {split} split ({len(labels)} images{more})", fontsize=10)
    return figure


def balance_size(n_classes: int, n_splits: int) -> tuple[float, float]:
    return min(20.0, max(6.4, 1.2 + 0.12 * n_classes * (n_splits + 1))), 4.2


def balance_figure(labels_by_split: dict[str, np.ndarray], classes: list[str], unit: str = "images") -> Figure:
    """Grouped bars: for each class, one bar per split, counting ``unit`` (images, or the
    pixels of masks)."""
    n, splits = len(classes), list(labels_by_split)
    figure = new_figure(*balance_size(n, len(splits)))
    ax = figure.add_subplot()
    width = 0.8 / max(1, len(splits))
    positions = np.arange(n)
    for index, split in enumerate(splits):
        counts = label_counts(labels_by_split[split], n)
        bars = ax.bar(
            positions + (index - (len(splits) - 1) / 2) * width,
            counts,
            width=width,
            label=f"{split} ({int(counts.sum())})",
            color=f"C{index}",
        )
        if n <= 12:
            ax.bar_label(bars, fmt="%d", fontsize=6, padding=1)  # whole counts, never 1.17821e+06
    ticks, names = class_ticks(classes)
    ax.set_xticks(ticks, names, rotation=90 if max(map(len, names), default=0) > 3 else 0, fontsize=7)
    ax.set_xlabel("class")
    ax.set_ylabel(unit)
    ax.set_title("Class balance per split")
    figure.legend(loc="outside right upper", fontsize=8, frameon=False)
    ax.grid(True, axis="y", alpha=0.3)
    return figure
