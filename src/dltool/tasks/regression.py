"""Regression: named numbers per image from a linear head, compared with targets (NaN: missing)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dltool.tasks.task import Batches, Drawable, Figures, Forward, Scored, Task

SUMS = ("count", "absolute", "squared", "total", "total_squared")  # per target, over present values
UNITS = "target_std"  # the errors' units, added to the sums by models.target_scale.target_units


def scores(sums: dict[str, Any]) -> dict[str, Any]:
    """MAE, RMSE (over every present value) and R² (the mean of each target's), with each
    target's own (``per_target``: arrays of T) from the per-target sums."""
    count, absolute, squared, total, total_squared = (np.atleast_1d(np.asarray(sums[k], np.float64)) for k in SUMS)
    values = max(1.0, float(count.sum()))
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = total_squared - total**2 / count
        r2 = np.where(spread > 0, 1 - squared / spread, np.nan)
        per_target = {"n": count, "mae": absolute / count, "rmse": np.sqrt(squared / count), "r2": r2}
    r2_mean = float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan")
    mae, rmse = float(absolute.sum()) / values, (float(squared.sum()) / values) ** 0.5
    return {"mae": mae, "rmse": rmse, "r2": r2_mean, "per_target": per_target}


class Regression(Task):
    name = "regression"
    export_output = "values"
    export_meaning = "one value per target, in the order of classes, in the targets' own units"

    def head_outputs(self, width: int) -> str:
        return f"{width} outputs, one per target"

    def batch_sums(
        self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, confusion_classes: int
    ) -> dict[str, torch.Tensor]:
        present = ~labels.isnan()
        truth = torch.where(present, labels, 0.0).double()
        error = torch.where(present, output.double() - truth, 0.0)
        per_sample = error.square().sum(1) / present.sum(1).clamp(min=1)  # the mean over present values
        return {
            "loss_sum": per_sample.sum(),
            "count": present.sum(0).double(),
            "absolute": error.abs().sum(0),
            "squared": error.square().sum(0),
            "total": truth.sum(0),
            "total_squared": truth.square().sum(0),
        }

    def zero_sums(self, confusion_classes: int, device: torch.device) -> dict[str, torch.Tensor]:
        # Scalars: the first batch's (T,) sums broadcast over them.
        zero = torch.zeros((), dtype=torch.float64, device=device)
        return super().zero_sums(confusion_classes, device) | {key: zero.clone() for key in SUMS}

    def means(self, sums: dict[str, Any]) -> dict[str, float]:
        measured = scores({k: torch.as_tensor(sums[k]).cpu().numpy() for k in SUMS})
        return super().means(sums) | {k: measured[k] for k in ("mae", "rmse", "r2")} | _loss_in_units(sums)

    def record(self, train: dict[str, float], val: dict[str, float]) -> dict[str, float]:
        return {"val_mae": val["mae"], "val_rmse": val["rmse"], "val_r2": val["r2"]}

    @torch.inference_mode()
    def evaluate(
        self,
        forward: Forward,
        batches: Batches,
        classes: list[str],
        std: list[float],
        target_std: list[float] | None = None,
    ) -> Scored:
        """MAE, RMSE and R² over all targets and per target; ``outputs``: the predictions (N, T).
        With ``target_std`` (a model that scales its outputs), ``loss`` is in those units."""
        sums: dict[str, Any] = self.zero_sums(0, torch.device("cpu"))
        outputs, n = [], 0
        for images, labels in batches:
            output = forward(images).float()
            for key, value in self.batch_sums(output, images, labels, 0).items():
                sums[key] = sums[key] + value.cpu()
            outputs.append(output.double().cpu().numpy())
            n += len(images)
        measured = scores({k: sums[k].numpy() for k in SUMS})
        document: dict[str, Any] = {"n": n, "loss": float(sums["loss_sum"]) / max(1, n)}
        document |= _loss_in_units(sums | ({} if target_std is None else {UNITS: target_std}))
        document |= {k: measured[k] for k in ("mae", "rmse", "r2")}
        table = measured["per_target"]
        document["per_target"] = {
            name: {
                "n": int(table["n"][t]) if t < len(table["n"]) else 0,
                **{k: _number(table[k], t) for k in ("mae", "rmse", "r2")},
            }
            for t, name in enumerate(classes)
        }
        return Scored(document, np.concatenate(outputs) if outputs else np.zeros((0, len(classes))))

    def figures(self, scored: Drawable) -> Figures:
        """Each target's predicted values against the true ones."""
        from dltool.figures.values import predicted_figure

        assert scored.outputs is not None  # evaluate keeps the predictions
        truth = np.asarray(scored.samples.labels, np.float64)[:, : len(scored.classes)]
        r2 = {name: row.get("r2") for name, row in scored.document.get("per_target", {}).items()}
        figure = predicted_figure(truth, scored.outputs, scored.classes, r2, scored.split)
        return [("predicted", figure, "each target's predicted against true values; the dashed line is y = x")]


def _loss_in_units(sums: dict[str, Any]) -> dict[str, float]:
    """``loss`` as the mean squared error over the present values, each in its target's
    standard deviation (``UNITS`` in the sums: the unit the training loss measures errors in),
    so that ``val_loss`` compares with ``train_loss``; nothing without units."""
    if UNITS not in sums:
        return {}
    squared, count = (np.atleast_1d(torch.as_tensor(sums[k]).double().cpu().numpy()) for k in ("squared", "count"))
    units = np.asarray(torch.as_tensor(sums[UNITS]).double().cpu().numpy())
    return {"loss": float((squared / units**2).sum() / max(1.0, float(count.sum())))}


def _number(values: np.ndarray, index: int) -> float | None:
    """One target's score; None where it has none (no values, or no spread for R²)."""
    value = float(values[index]) if index < len(values) else float("nan")
    return value if np.isfinite(value) else None
