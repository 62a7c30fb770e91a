"""Building blocks shared by the networks of the catalogue."""

from __future__ import annotations

from torch import nn


class LastLayerHead:
    """For ``nn.Sequential`` networks whose last layer is the classifier head: names it
    (``dltool_head``, see ``dltool.models.freezing``)."""

    @property
    def dltool_head(self) -> str:
        return str(len(self) - 1)  # type: ignore[arg-type]  # mixed into nn.Sequential


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}


def activation_layer(name: str) -> nn.Module:
    return ACTIVATIONS[name]()
