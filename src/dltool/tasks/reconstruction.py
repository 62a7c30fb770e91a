"""Reconstruction: the network outputs an image shaped like its input (an autoencoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dltool.tasks.metrics import reconstruction_metrics
from dltool.tasks.task import Batches, Forward, Scored, Task


class Reconstruction(Task):
    name = "reconstruction"
    export_output = "reconstructions"

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
