"""A convolutional autoencoder for the reconstruction task.

Images reach the model mean/std-normalised, so the decoder's last layer is linear: its output
lives in that same normalised space (a sigmoid would clip it to [0, 1], which normalised
pixels are not), and the loss compares it with the normalised input directly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dltool.models.cnn import conv_bn_act


class Autoencoder(nn.Module):
    """``encoder``: images (N, C, H, W) → codes (N, latent_dim); ``decoder``: codes → images.

    The encoder is a stride-2 conv-BN-ReLU per width (each halves the side, rounding up) and
    a linear layer to the code; the decoder mirrors it with stride-2 transposed convolutions,
    whose output padding restores each side exactly (odd sides included: 28 → 14 → 7 → 4 → 7
    → 14 → 28), and ends in a linear 3×3 conv to the input's channels.
    """

    def __init__(self, *, latent_dim: int, widths: list[int], in_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        del num_classes  # the reconstruction task has no classes
        channels, height, width = in_shape
        self.latent_dim = latent_dim
        sides: list[tuple[int, int]] = [(height, width)]
        encoder: list[nn.Module] = []
        for stage_width in widths:
            encoder.append(conv_bn_act(channels, stage_width, "relu", stride=2))
            channels = stage_width
            sides.append((math.ceil(sides[-1][0] / 2), math.ceil(sides[-1][1] / 2)))
        code_shape = (channels, *sides[-1])
        encoder += [nn.Flatten(), nn.Linear(math.prod(code_shape), latent_dim)]
        self.encoder = nn.Sequential(*encoder)

        decoder: list[nn.Module] = [
            nn.Linear(latent_dim, math.prod(code_shape)),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, code_shape),
        ]
        outputs = [*reversed(widths[:-1]), widths[0]]
        for out_channels, target in zip(outputs, reversed(sides[:-1])):
            padding = (1 - target[0] % 2, 1 - target[1] % 2)  # 2·ceil(s/2) − 1 + padding = s
            decoder += [
                nn.ConvTranspose2d(channels, out_channels, 3, stride=2, padding=1, output_padding=padding, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            channels = out_channels
        decoder.append(nn.Conv2d(channels, in_shape[0], 3, padding=1))
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
