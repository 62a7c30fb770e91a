"""A classifier on the encoder of a trained autoencoder run (transfer from reconstruction)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dltool._safetensors import read_metadata
from dltool.config import load_config
from dltool.engine.checkpoint import load_weights
from dltool.errors import CheckpointError, ConfigError, DltoolError
from dltool.models import models
from dltool.rundir import open_run_dir


class EncoderClassifier(nn.Module):
    """``encoder`` (loaded from ``encoder_run``) → [dropout] → linear, or → linear-ReLU-[dropout]-linear.

    With ``freeze`` the encoder's parameters have ``requires_grad=False`` (the optimizer
    never moves them) and ``train()`` keeps the encoder in eval mode, so its BatchNorm layers
    normalise with the autoencoder's running statistics and never update them.
    """

    def __init__(
        self,
        *,
        encoder_run: str,
        freeze: bool,
        hidden: int,
        dropout: float,
        in_shape: tuple[int, ...],
        num_classes: int,
    ):
        super().__init__()
        self.freeze = freeze
        self.encoder, latent_dim = load_encoder(Path(encoder_run), tuple(in_shape))
        if freeze:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
        head: list[nn.Module] = []
        if hidden:
            head += [nn.Linear(latent_dim, hidden), nn.ReLU(inplace=True)]
            latent_dim = hidden
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(latent_dim, num_classes))
        self.head = nn.Sequential(*head)

    @property
    def pretrained(self) -> tuple[nn.Module, ...]:
        """Parts whose weights were loaded: ``initialise`` leaves them alone."""
        return (self.encoder,)

    def train(self, mode: bool = True) -> EncoderClassifier:
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def load_encoder(run_dir: Path, in_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """The trained encoder of autoencoder run ``run_dir`` and its code size, for ``in_shape`` inputs.

    Every failure is one ``ConfigError`` (not an autoencoder run, another input shape) or
    ``CheckpointError`` (no run, missing or unfitting weights) that starts with the key.
    """
    try:
        return _load_encoder(run_dir, in_shape)
    except DltoolError as error:
        raise type(error)(f"model.encoder_run: {error}") from None


def _load_encoder(run_dir: Path, in_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    run = open_run_dir(run_dir)
    try:
        config = load_config(str(run.config))
    except DltoolError as error:
        raise ConfigError(f"{run.config} is not a valid config: {error}") from None
    entry = models.get(config.model.name)
    if entry.params.task != "reconstruction":
        raise ConfigError(
            f"{run_dir} is a {config.model.name} run ({entry.params.task}); "
            "expected an autoencoder run (dltool train with model.name=autoencoder)"
        )
    if not run.weights.is_file():
        raise CheckpointError(f"{run_dir} has no {run.weights.name}; has the run finished an epoch?")
    run_shape = _trained_shape(run.weights)
    if run_shape is not None and run_shape != in_shape:
        raise ConfigError(
            f"the encoder of {run_dir} was trained on {_shape(run_shape)} inputs, this dataset gives "
            f"{_shape(in_shape)}; use the same dataset and data.image_size"
        )
    autoencoder = models.build(config.model, in_shape=in_shape, num_classes=0)
    try:
        autoencoder.load_state_dict(load_weights(run.weights))
    except RuntimeError as error:
        reason = str(error).splitlines()[0]
        raise CheckpointError(f"{run.weights} does not fit its config ({reason})") from None
    return autoencoder.encoder, autoencoder.latent_dim


def _trained_shape(weights: Path) -> tuple[int, ...] | None:
    """The input shape recorded by ``dltool train`` in the weights' metadata, if any."""
    try:
        text = read_metadata(weights.read_bytes()).get("in_shape")
        return tuple(int(part) for part in text.split(",")) if text else None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{weights}: not readable safetensors weights ({error})") from None


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))
