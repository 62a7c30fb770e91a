"""A classifier on the encoder of an autoencoder (transfer from reconstruction).

The model is built from its params alone (``latent_dim`` and ``widths`` describe the
encoder); the trained encoder's weights are copied in once, when training starts, from
``encoder_run`` by the init-from machinery (``dltool.engine.init_from``), and from then on
travel in the classifier's own ``model.safetensors``.
"""

from __future__ import annotations

import torch
from torch import nn

from dltool.models.autoencoder import Autoencoder


class EncoderClassifier(nn.Module):
    """``encoder`` (an autoencoder's) → [dropout] → linear, or → linear-ReLU-[dropout]-linear.

    ``freeze: backbone`` (the default) keeps the encoder fixed: see ``dltool.models.freezing``.
    """

    dltool_head = "head"

    def __init__(
        self,
        *,
        latent_dim: int,
        widths: list[int],
        hidden: int,
        dropout: float,
        in_shape: tuple[int, ...],
        num_classes: int,
    ):
        super().__init__()
        self.encoder = Autoencoder(latent_dim=latent_dim, widths=widths, in_shape=in_shape, num_classes=0).encoder
        head: list[nn.Module] = []
        if hidden:
            head += [nn.Linear(latent_dim, hidden), nn.ReLU(inplace=True)]
            latent_dim = hidden
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(latent_dim, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))
