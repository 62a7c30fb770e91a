"""Training curves from ``metrics.jsonl``: one run (train vs val, best epoch marked) or
several runs overlaid (a colour per run; train dashed, val solid)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dltool.figures.canvas import new_figure

CURVE_SIZE = (6.4, 4.0)  # inches; one run
OVERLAY_SIZE = (7.6, 4.4)  # inches; several runs, room for the legend
# Epochs up to which each point is drawn as a dot as well.
DOTS_UP_TO = 30


@dataclass(frozen=True)
class Curve:
    """What one run's metrics plot needs: its label, per-epoch records, the best epoch."""

    label: str
    records: list[dict[str, Any]]
    best: dict[str, Any] | None  # summary.json's best: {epoch, metric, value}


@dataclass(frozen=True)
class Quantity:
    name: str  # the file name
    title: str
    ylabel: str
    keys: tuple[tuple[str, str], ...]  # (metrics.jsonl key, legend label)


QUANTITIES = (
    Quantity("loss", "Loss", "loss", (("train_loss", "train"), ("val_loss", "val"))),
    Quantity("accuracy", "Accuracy", "accuracy", (("train_acc", "train"), ("val_acc", "val"))),
    Quantity("lr", "Learning rate (end of epoch)", "learning rate", (("lr", "lr"),)),
)


def has_quantity(curves: list[Curve], quantity: Quantity) -> bool:
    return any(_value(r.get(key)) is not None for c in curves for r in c.records for key, _ in quantity.keys)


def curve_figure(curves: list[Curve], quantity: Quantity) -> Figure:
    """``quantity`` against epochs. One run: train and val in two colours, the best epoch
    as a dashed line. Several: a colour per run, train dashed and val solid, each run's
    best epoch a star on its val curve."""
    overlay = len(curves) > 1
    figure = new_figure(*(OVERLAY_SIZE if overlay else CURVE_SIZE))
    ax = figure.add_subplot()
    for index, curve in enumerate(curves):
        for position, (key, label) in enumerate(quantity.keys):
            epochs, values = _series(curve.records, key)
            if not epochs:
                continue
            style: dict[str, Any] = {"marker": "o", "markersize": 3} if len(epochs) <= DOTS_UP_TO else {}
            if overlay:
                dashed = key.startswith("train_")
                ax.plot(
                    epochs,
                    values,
                    color=f"C{index % 10}",
                    linestyle="--" if dashed else "-",
                    alpha=0.7 if dashed else 1.0,
                    label=f"{curve.label} {label}" if len(quantity.keys) > 1 else curve.label,
                    **style,
                )
            else:
                ax.plot(epochs, values, color=f"C{position}", label=label, **style)
        _mark_best(ax, curve, quantity, overlay, f"C{index % 10}")
    ax.set_title(quantity.title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(quantity.ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if quantity.name == "lr":
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if ax.get_legend_handles_labels()[0]:
        if overlay:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
        else:
            ax.legend(fontsize=8)
    return figure


def _mark_best(ax, curve: Curve, quantity: Quantity, overlay: bool, colour: str) -> None:
    if not curve.best or curve.best.get("epoch") is None:
        return
    epoch = curve.best["epoch"]
    if not overlay:
        ax.axvline(
            epoch,
            color="grey",
            linestyle=":",
            linewidth=1.2,
            label=f"best: epoch {epoch} ({curve.best.get('metric')} {_short(curve.best.get('value'))})",
        )
        return
    val_key = next((key for key, _ in quantity.keys if key.startswith("val_")), quantity.keys[0][0])
    record = next((r for r in curve.records if r.get("epoch") == epoch), None)
    value = _value(record.get(val_key)) if record else None
    if value is not None:
        ax.plot(
            [epoch],
            [value],
            marker="*",
            markersize=11,
            color=colour,
            markeredgecolor="black",
            markeredgewidth=0.5,
            linestyle="none",
        )


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(r["epoch"], _value(r.get(key))) for r in records]
    kept = [(e, v) for e, v in pairs if v is not None]
    return [e for e, _ in kept], [v for _, v in kept]


def _value(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
