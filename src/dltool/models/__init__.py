"""The model catalogue: each entry's parameters here, its network in a module of its own.

Importing this package never imports torch; ``build_model`` (in ``dltool.models.build``)
does, when a network is actually built.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from dltool._registry import Registry
from dltool.params import Params

Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "gelu"]
Init = Literal["default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]


class ModelParams(Params):
    """Fields every model shares: its name and the weight initialisation applied after building."""

    common: ClassVar[frozenset[str]] = frozenset({"name", "init"})
    task: ClassVar[str] = "classification"  # or "reconstruction": what the model's output is
    init: Init = "default"


models: Registry[ModelParams] = Registry("models", ModelParams)


@models.register("mlp", "dltool.models.mlp:MLP")
class MLPParams(ModelParams):
    """Multi-layer perceptron on flattened pixels: `depth` hidden layers of `width` units."""

    depth: int = Field(2, ge=0, description="hidden layers (0: a linear classifier)")
    width: int = Field(256, ge=1, description="units per hidden layer")
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each hidden layer")
    batch_norm: bool = Field(False, description="BatchNorm1d before each activation")
