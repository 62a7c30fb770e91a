"""Regression: each target's predicted values against the true ones."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from dltool.figures.canvas import grid_shape, message_figure, new_figure
from dltool.figures.classes import clip_name

COLUMNS = 4
PANEL = 2.6  # inches per target
SHOWN = 16  # targets drawn, in their order


def predicted_figure(
    truth: np.ndarray, predicted: np.ndarray, names: list[str], r2: dict[str, float | None], split: str = "test"
) -> Figure:
    """One scatter per target (the first ``SHOWN``): predicted against true values where the
    truth is present (NaN: missing), the diagonal dashed, titled with the target's R²."""
    names = names[:SHOWN]
    if len(truth) == 0 or not names:
        return message_figure(f"No {split} values to show.")
    rows, columns = grid_shape(len(names), COLUMNS)
    figure = new_figure(columns * PANEL, rows * PANEL + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False)
    for t, (ax, name) in enumerate(zip(axes.flat, names)):
        present = ~np.isnan(truth[:, t])
        x, y = truth[present, t], predicted[present, t]
        ax.scatter(x, y, s=6, color="C0", alpha=0.6)
        ends = [float(np.min(np.r_[x, y], initial=0.0)), float(np.max(np.r_[x, y], initial=1.0))]
        ax.plot(ends, ends, color="grey", linestyle="--", linewidth=1)
        score = r2.get(name)
        ax.set_title(f"{clip_name(name)}: R² {'–' if score is None else f'{score:.3f}'}", fontsize=8)
        ax.set_xlabel("true", fontsize=7)
        ax.set_ylabel("predicted", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(names) :]:
        ax.set_axis_off()
    figure.suptitle(f"Predicted against true values ({split})", fontsize=10)
    return figure
