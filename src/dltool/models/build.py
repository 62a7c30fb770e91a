"""Build a network from its validated parameters and initialise its weights."""

from __future__ import annotations

from torch import nn

from dltool.models import ModelParams, models

# Gains follow each scheme's usual pairing: Xavier for tanh/sigmoid nets, Kaiming for ReLU.
_INITIALISERS = {
    "xavier_uniform": lambda w: nn.init.xavier_uniform_(w),
    "xavier_normal": lambda w: nn.init.xavier_normal_(w),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
}


def build_model(params: ModelParams, *, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network named by ``params``, for inputs of ``in_shape`` (C, H, W)."""
    model = models.build(params, in_shape=tuple(in_shape), num_classes=num_classes)
    initialise(model, params.init)
    return model


def initialise(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear weights with ``scheme`` (biases to zero); ``default`` keeps torch's."""
    if scheme == "default":
        return
    init = _INITIALISERS[scheme]
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            init(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
