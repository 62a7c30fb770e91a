"""The model catalogue: each entry's parameters here, its network in a module of its own.

Importing this package never imports torch; ``build_model`` (in ``dltool.models.build``)
does, when a network is actually built. Every builder takes its entry's fields as keywords
plus the context ``in_shape=(C, H, W)`` and ``num_classes``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from dltool._registry import Registry
from dltool.errors import ConfigError, did_you_mean
from dltool.params import Params
from dltool.tasks import backbone_tasks, takes_heads

Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "gelu"]
Init = Literal["default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]
Task = Literal["classification", "reconstruction", "segmentation"]
Widths = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]
# `none`, `backbone` (all but the classifier head), or globs of parameter names.
Freeze = Literal["none", "backbone"] | list[str]


def _one_glob(value: str) -> list[str]:
    """One parameter-name glob given alone (``layer1.*``); a word close to none or backbone is a typo."""
    if hint := did_you_mean(value, ["none", "backbone"]):
        raise ValueError(f"none, backbone or a list of parameter-name globs{hint}")
    return [value]


class ModelParams(Params):
    """Fields every model shares: its name, how its weights start, and which of them train."""

    common: ClassVar[frozenset[str]] = frozenset({"name", "init", "freeze", "init_from", "head"})
    path_fields: ClassVar[frozenset[str]] = frozenset({"init_from"})
    # What the network outputs: logits (N, num_classes), or an image shaped like its input.
    # A classification backbone may carry another head instead (``head``): its task is then
    # that head's (``dltool.tasks.task_name``).
    task: ClassVar[Task] = "classification"
    # Globs of tensors that a weights source must provide (a model built around a loaded part).
    must_load: ClassVar[tuple[str, ...]] = ()
    init: Init = "default"
    freeze: Freeze = Field("none", description="none, backbone (all but the head) or parameter-name globs")
    init_from: str | None = Field(None, description="a run dir or weights file whose matching tensors start the model")
    head: str = Field(
        "classifier",
        description="classifier: the network's own output; or a task served by a linear head on a "
        "classification backbone (dltool list tasks)",
    )

    @field_validator("head")
    @classmethod
    def _head_on_a_classifier(cls, head: str) -> str:
        heads = ["classifier", *backbone_tasks()]
        if head not in heads:
            raise ValueError(f"should be one of: {', '.join(heads)}")
        if head != "classifier" and not takes_heads(cls.task):
            raise ValueError(f"a {head} head needs a classification backbone, not a {cls.task} model")
        return head

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze_switch(cls, value: object) -> object:
        # encoder-classifier's old `freeze: true/false` reads as backbone/none.
        if isinstance(value, bool):
            return "backbone" if value else "none"
        return _one_glob(value) if isinstance(value, str) and value not in ("none", "backbone") else value

    def weights_source(self) -> str | None:
        """The run dir or file whose tensors start this model at the beginning of training."""
        return self.init_from

    def adopt(self, source: ModelParams) -> ModelParams:
        """These params completed from the source run's model (its architecture, where this
        model is built around part of it); the default takes nothing."""
        del source
        return self

    def data_defaults(self) -> dict[str, Any]:
        """``data`` keys this model sets when the config leaves them unset (a zoo model's weights' input)."""
        return {}

    def fetch_weights(self) -> None:
        """Make sure the weights the model starts from are here (a zoo model's pretrained ones)."""

    def without_weights(self) -> ModelParams:
        """These parameters, building random weights (a run's own weights are loaded over them)."""
        return self


models: Registry[ModelParams] = Registry("models", ModelParams)


@models.register("mlp", "dltool.models.mlp:MLP")
class MLPParams(ModelParams):
    """Multi-layer perceptron on flattened pixels: `depth` hidden layers of `width` units."""

    depth: int = Field(2, ge=0, description="hidden layers (0: a linear classifier)")
    width: int = Field(256, ge=1, description="units per hidden layer")
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each hidden layer")
    batch_norm: bool = Field(False, description="BatchNorm1d before each activation")


@models.register("lenet5", "dltool.models.lenet:LeNet5")
class LeNet5Params(ModelParams):
    """LeNet-5: conv 6 → pool → conv 16 → pool → FC 120 → 84 → classes (LeCun et al. 1998)."""

    activation: Activation = Field("tanh", description="tanh as in the original; relu is the modern choice")
    pool: Literal["avg", "max"] = Field("avg", description="2×2 subsampling: avg as in the original, or max")


@models.register("cnn", "dltool.models.cnn:CNN")
class CNNParams(ModelParams):
    """Plain CNN: conv-BN-activation stages with max-pooling and dropout, global-average-pool head."""

    widths: Widths = Field(default_factory=lambda: [32, 64, 128], description="channels of each stage")
    convs_per_stage: int = Field(2, ge=1, description="3×3 conv-BN-activation blocks per stage")
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each stage (the last one feeds the head)")


@models.register("resnet", "dltool.models.resnet:ResNet")
class ResNetParams(ModelParams):
    """CIFAR ResNet (He et al. 2016 §4.2): 3 stages of n basic blocks, depth = 6n+2."""

    depth: int = Field(20, description="6n+2 layers: 20, 32, 44, 56, 110, ...")
    width_multiplier: float = Field(1.0, gt=0, description="scales the 16/32/64 stage widths")
    shortcut: Literal["A", "B"] = Field(
        "A", description="where the shape changes: A zero-pads channels (the paper's CIFAR choice), B 1×1 conv + BN"
    )
    activation: Activation = Field("relu", description="after the stem and inside and after each block")

    @field_validator("depth")
    @classmethod
    def _six_n_plus_two(cls, depth: int) -> int:
        if depth < 8 or (depth - 2) % 6:
            raise ValueError("depth must be 6n+2 with n ≥ 1: 8, 14, 20, 32, 44, 56, 110, ...")
        return depth


@models.register("airbench", "dltool.models.airbench:Airbench")
class AirbenchParams(ModelParams):
    """airbench94's CIFAR net: whitened 2×2 stem, conv-pool-BN-GELU blocks, no residuals."""

    widths: Widths = Field(default_factory=lambda: [64, 256, 256], description="channels of each block")
    logit_scale: float = Field(1 / 9, gt=0, description="multiplies the logits (airbench: 1/9)")
    whiten: bool = Field(True, description="fit the stem to training patches (patch whitening) and freeze it")


@models.register("autoencoder", "dltool.models.autoencoder:Autoencoder")
class AutoencoderParams(ModelParams):
    """Convolutional autoencoder: stride-2 conv encoder to a `latent_dim` vector, mirrored decoder."""

    task: ClassVar[Task] = "reconstruction"
    latent_dim: int = Field(32, ge=1, description="size of the code between encoder and decoder")
    widths: Widths = Field(default_factory=lambda: [32, 64], description="channels of each stride-2 stage")


@models.register("encoder-classifier", "dltool.models.encoder_classifier:EncoderClassifier")
class EncoderClassifierParams(ModelParams):
    """Classifier head on the encoder of a trained autoencoder run (`encoder_run`)."""

    common: ClassVar[frozenset[str]] = ModelParams.common | {"encoder_run"}
    path_fields: ClassVar[frozenset[str]] = ModelParams.path_fields | {"encoder_run"}
    must_load: ClassVar[tuple[str, ...]] = ("encoder.*",)
    encoder_run: str | None = Field(
        None, description="autoencoder run whose encoder starts the model (read once, when training starts)"
    )
    freeze: Freeze = Field("backbone", description="backbone: keep the encoder (and its BN statistics) fixed")
    latent_dim: int = Field(32, ge=1, description="the encoder's code size (taken from encoder_run)")
    widths: Widths = Field(default_factory=lambda: [32, 64], description="the encoder's stages (from encoder_run)")
    hidden: int = Field(0, ge=0, description="hidden units of the head (0: a linear head)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the code before the head")

    def weights_source(self) -> str | None:
        return self.init_from or self.encoder_run

    def adopt(self, source: ModelParams) -> ModelParams:
        """The encoder's architecture from the run it starts from (an autoencoder, or another
        encoder-classifier)."""
        if not isinstance(source, (AutoencoderParams, EncoderClassifierParams)):
            raise ConfigError(
                f"model.encoder_run: {self.encoder_run} is a {source.name} run ({source.task}); "
                "expected an autoencoder run (dltool train with model.name=autoencoder)"
            )
        return self.model_copy(update={"latent_dim": source.latent_dim, "widths": source.widths})


@models.register("unet", "dltool.models.unet:UNet")
class UNetParams(ModelParams):
    """U-Net (Ronneberger et al. 2015): `depth` poolings doubling `width`, a mirrored decoder with skips."""

    task: ClassVar[Task] = "segmentation"
    depth: int = Field(4, ge=1, le=8, description="down-sampling steps (each halves the map, doubles the width)")
    width: int = Field(64, ge=1, le=1024, description="channels at full resolution")
    batch_norm: bool = Field(True, description="BatchNorm after every 3×3 conv")
    upsampling: Literal["bilinear", "transposed"] = Field(
        "bilinear", description="bilinear (then a 1×1 conv) or a 2×2 transposed conv"
    )


# Zoo families last: their parameters subclass ModelParams above.
from dltool.models.zoo import (  # noqa: E402
    FAMILIES,
    TORCHVISION_SEGMENTATION,
    TorchvisionSegmentationParams,
    ZooParams,
    prefixed_names,
)

for _family in FAMILIES.values():
    _listing = f"{_family.description} (dltool list models --zoo {_family.prefix} [FILTER])"
    models.register_family(_family.prefix, "dltool.models.zoo.build:build_zoo", _listing)(ZooParams)
models.add_spelling(prefixed_names)
# torchvision's segmentation networks: one entry each, before their family's name.
for _arch, _about in TORCHVISION_SEGMENTATION.items():
    _params = type(f"Torchvision_{_arch}", (TorchvisionSegmentationParams,), {"__doc__": _about})
    models.register(f"torchvision:{_arch}", "dltool.models.zoo.build:build_torchvision_segmentation")(_params)

# Your own model classes (`package.module:Class`, `file.py:Class`, entry points), asked last.
from dltool.models.custom import CustomModels  # noqa: E402

models.add_resolver(CustomModels())
