"""Keypoints: a linear head of 2 outputs per point, (x, y) as shares of the image's width and height.

Targets (``dltool.data.table_decode``) are (N, K + 2, 2): the K points (NaN: missing), then
each image's pixels per unit of x and y, then (NME normaliser, PCK threshold) in pixels. So
errors are measured in pixels of the images as stored, without the task knowing the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dltool.tasks.task import Batches, Drawable, Figures, Forward, Scored, Task

EXTRA_ROWS = 2  # target rows after the points: pixel scale, (normaliser, threshold)
SHOWN = 24  # worst images drawn by dltool visualize
SUMS = ("points", "squared_px", "normed", "nme_sum", "hits")


@dataclass(frozen=True)
class PointErrors:
    """Per point of each sample (N, K): the distance in pixels, the distance over the NME's
    normaliser, and whether it is within the PCK threshold; NaN/False where not scored."""

    pixels: torch.Tensor
    normalised: torch.Tensor
    hit: torch.Tensor


def point_errors(output: torch.Tensor, labels: torch.Tensor) -> PointErrors:
    count = labels.shape[1] - EXTRA_ROWS
    predicted = output.float().view(len(output), count, 2)
    truth, scale, norms = labels[:, :count], labels[:, count], labels[:, count + 1]
    pixels = ((predicted - truth) * scale[:, None, :]).norm(dim=-1)  # NaN where the point is missing
    normalised = pixels / norms[:, :1]
    return PointErrors(pixels, normalised, normalised <= (norms[:, 1:] / norms[:, :1]))


class Keypoints(Task):
    name = "keypoints"
    export_output = "points"
    export_meaning = (
        "x and y of each point in the order of classes (x1, y1, x2, y2, ...), as shares of the input's "
        "width and height (× {width} and × {height} for its pixels): dltool predict maps them through the"
        " resize and crop back to the image's own pixels"
    )

    def out_features(self, classes: list[str]) -> int:
        return 2 * len(classes)

    def head_outputs(self, width: int) -> str:
        return f"{width} outputs, x and y of {width // 2} points"

    def target(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels[:, :-EXTRA_ROWS].flatten(1)

    def zero_sums(self, confusion_classes: int, device: torch.device) -> dict[str, torch.Tensor]:
        zero = torch.zeros((), dtype=torch.float64, device=device)
        return super().zero_sums(confusion_classes, device) | {key: zero.clone() for key in SUMS}

    def batch_sums(
        self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, confusion_classes: int
    ) -> dict[str, torch.Tensor]:
        errors = point_errors(output, labels)
        present, normed = ~errors.pixels.isnan(), ~errors.normalised.isnan()
        target = self.target(images, labels)
        squared = (output.float() - target).square()
        counted = (~target.isnan()).sum(1).clamp(min=1)
        per_sample = torch.where(target.isnan(), 0.0, squared).sum(1) / counted  # the mean over present values
        return {
            "loss_sum": per_sample.sum().double(),
            "points": present.sum().double(),
            "squared_px": torch.where(present, errors.pixels, 0.0).square().sum().double(),
            "normed": normed.sum().double(),
            "nme_sum": torch.where(normed, errors.normalised, 0.0).sum().double(),
            "hits": (errors.hit & normed).sum().double(),
        }

    def means(self, sums: dict[str, Any]) -> dict[str, float]:
        points, normed = max(1.0, float(sums["points"])), max(1.0, float(sums["normed"]))
        scores = {
            "rmse_px": float(sums["squared_px"] / points) ** 0.5,
            "nme": float(sums["nme_sum"]) / normed,
            "pck": float(sums["hits"]) / normed,
        }
        return super().means(sums) | scores

    def record(self, train: dict[str, float], val: dict[str, float]) -> dict[str, float]:
        return {"val_pck": val["pck"], "val_nme": val["nme"], "val_rmse_px": val["rmse_px"]}

    @torch.inference_mode()
    def evaluate(self, forward: Forward, batches: Batches, classes: list[str], std: list[float]) -> Scored:
        """Scores over all points and per point; ``outputs``: the predictions (N, 2K)."""
        outputs, labels = [], []
        for images, batch_labels in batches:
            outputs.append(forward(images).float().cpu())
            labels.append(batch_labels.cpu())
        output = torch.cat(outputs) if outputs else torch.zeros(0, 2 * len(classes))
        truth = torch.cat(labels) if labels else torch.zeros(0, len(classes) + EXTRA_ROWS, 2)
        sums = self.batch_sums(output, output, truth, 0)
        document: dict[str, Any] = dict(self.means(sums | {"n": len(output)}))
        norms = truth[:, -1]
        alphas = (norms[:, 1] / norms[:, 0])[~norms[:, 0].isnan()]
        document["pck_alpha"] = round(float(alphas[0]), 6) if len(alphas) else None
        document["per_point"] = self._per_point(point_errors(output, truth), classes)
        return Scored(document, output.double().numpy())

    def _per_point(self, errors: PointErrors, classes: list[str]) -> dict[str, dict[str, Any]]:
        table = {}
        for k, name in enumerate(classes):
            pixels, normalised = errors.pixels[:, k], errors.normalised[:, k]
            present, normed = ~pixels.isnan(), ~normalised.isnan()
            table[name] = {
                "n": int(present.sum()),
                "rmse_px": float(pixels[present].square().mean().sqrt()) if present.any() else None,
                "nme": float(normalised[normed].mean()) if normed.any() else None,
                "pck": float((errors.hit[:, k] & normed).sum() / normed.sum()) if normed.any() else None,
            }
        return table

    def figures(self, scored: Drawable) -> Figures:
        """The images with the largest mean point error (pixels of the image as stored), worst first."""
        from dltool.figures.points import worst_points_figure

        samples, outputs, classes, split = scored.samples, scored.outputs, scored.classes, scored.split
        assert outputs is not None  # evaluate keeps the predictions
        labels = torch.from_numpy(np.asarray(samples.labels, np.float32))
        errors = point_errors(torch.from_numpy(outputs).float(), labels).pixels.nanmean(1).numpy()
        rows = np.flatnonzero(~np.isnan(errors))
        worst = rows[np.argsort(-errors[rows], kind="stable")][:SHOWN]
        images = [samples.image(int(i)) for i in worst]
        size = np.array(images[0].shape[:0:-1]) if images else np.ones(2)  # (width, height)
        truth = labels[worst, : len(classes)].numpy() * size
        predicted = outputs[worst].reshape(len(worst), len(classes), 2) * size
        figure = worst_points_figure(images, truth, predicted, errors[worst], split)
        return [("worst_points", figure, "the images with the largest mean point error: truth ○, prediction ×")]

    def output_shape(self, classes: list[str], in_shape: tuple[int, int, int]) -> list[int]:
        return [2 * len(classes)]
