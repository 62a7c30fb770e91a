"""The confusion matrix figure: ``dltool visualize`` draws it for a run's eval, and a run
that logs to TensorBoard ends with it (``engine.tensorboard``)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from dltool.figures.canvas import new_figure
from dltool.figures.classes import class_ticks

# Numbers are drawn in the confusion matrix's cells up to this many classes.
CELL_NUMBERS_UP_TO = 20


def confusion_size(n_classes: int) -> tuple[float, float]:
    side = min(20.0, max(4.6, 1.4 + 0.42 * n_classes))
    return side + 1.0, side  # + the colour bar


def confusion_figure(matrix: list[list[int]], classes: list[str], *, normalised: bool, split: str = "test") -> Figure:
    """Rows true, columns predicted (``classes`` order). ``normalised`` divides each row by
    its count (the diagonal is then each class's recall). Cell text artists carry the gid
    ``cell-<row>-<column>`` (an SVG group id), so the numbers can be read back from a file."""
    counts = np.asarray(matrix, dtype=np.int64).reshape(len(classes), len(classes))
    rows = counts.sum(1, keepdims=True)
    values = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0) if normalised else counts
    figure = new_figure(*confusion_size(len(classes)))
    ax = figure.add_subplot()
    image = ax.imshow(
        values, cmap="Blues", vmin=0, vmax=1 if normalised else max(1, int(values.max())), interpolation="nearest"
    )
    figure.colorbar(image, ax=ax, shrink=0.85, aspect=30, pad=0.02)
    if len(classes) <= CELL_NUMBERS_UP_TO:
        dark = (values.max() or 1) / 2
        for i in range(len(classes)):
            for j in range(len(classes)):
                text = f"{values[i, j]:.2f}" if normalised else str(int(values[i, j]))
                artist = ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8 if len(classes) <= 12 else 6,
                    color="white" if values[i, j] > dark else "black",
                )
                artist.set_gid(f"cell-{i}-{j}")
    ticks, names = class_ticks(classes)
    ax.set_xticks(ticks, names, rotation=90 if max(map(len, names)) > 2 else 0, fontsize=7)
    ax.set_yticks(ticks, names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    n = int(counts.sum())
    ax.set_title(
        f"Confusion matrix, row-normalised ({split}, n={n})" if normalised else f"Confusion matrix ({split}, n={n})"
    )
    return figure
