"""Reconstruction: the network outputs an image shaped like its input (an autoencoder)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dltool.errors import CheckpointError
from dltool.tasks.metrics import reconstruction_metrics
from dltool.tasks.task import Batches, Drawable, Figures, Forward, Scored, Task

RECONSTRUCTIONS_SHOWN = 8  # images drawn by dltool visualize, spread over the split


class Reconstruction(Task):
    name = "reconstruction"
    export_output = "reconstructions"
    export_meaning = (
        "the reconstructed {height}×{width} image, normalised as the input is: (output × std + mean) × 255 gives pixels"
    )

    def target(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return images

    def batch_sums(
        self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, confusion_classes: int
    ) -> dict[str, torch.Tensor]:
        per_sample = F.mse_loss(output.float(), images.float(), reduction="none").flatten(1).mean(1)
        return {"loss_sum": per_sample.sum().double()}

    @torch.inference_mode()
    def evaluate(self, forward: Forward, batches: Batches, classes: list[str], std: list[float]) -> Scored:
        """MSE in normalised units (the training loss) and in [0, 1] pixel units (with PSNR)."""
        loss_sum, squared, pixels, n = 0.0, 0.0, 0, 0
        for images, _ in batches:
            scale = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
            output = forward(images).float()
            loss_sum += float(F.mse_loss(output, images, reduction="none").flatten(1).mean(1).sum())
            squared += float(((output - images) * scale).pow(2).sum())  # the mean cancels out
            pixels += images.numel()
            n += len(images)
        return Scored(reconstruction_metrics(squared, pixels, loss_sum / max(1, n), n))

    def output_shape(self, classes: list[str], in_shape: tuple[int, int, int]) -> list[int]:
        return list(in_shape)

    def figures(self, scored: Drawable) -> Figures:
        """Images spread evenly over the split above the model's outputs."""
        from dltool.figures.eval_plots import reconstructions_figure

        inputs, outputs = reconstruct(scored)
        figure = reconstructions_figure(inputs, outputs, scored.document, scored.split)
        return [("reconstructions", figure, f"{scored.split} images (top) and the autoencoder's outputs (bottom)")]


def reconstruct(scored: Drawable, count: int = RECONSTRUCTIONS_SHOWN) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images spread evenly over the split and the model's outputs, both uint8,
    denormalised as evaluation normalised the inputs."""
    samples = scored.samples
    if len(samples) == 0:
        raise CheckpointError("no images to reconstruct in this split")
    rows = np.unique(np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int))
    inputs = samples.take(rows).images
    mean = torch.tensor(scored.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(scored.std, dtype=torch.float32).view(1, -1, 1, 1)
    pixels = ((scored.run(inputs) * std + mean) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return inputs, pixels
