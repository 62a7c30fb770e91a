"""Zoo families: ``torchvision:ARCH`` and ``timm:ARCH`` model names, with pretrained weights.

This module is metadata only (no torch): the parameters every zoo model shares and the
table of families. Each family is one module behind the small ``FamilyImpl`` interface
(``dltool.models.zoo.torchvision_zoo``, ``dltool.models.zoo.timm_zoo``), imported when a
zoo config is validated or built; ``dltool.models.zoo.build`` builds and loads weights.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import Field, ValidationInfo, field_validator, model_validator

from dltool.errors import did_you_mean, suggest
from dltool.models import ModelParams, Task

# Attributes every zoo model carries: the dotted name of its classifier head (what
# `model.freeze: backbone` leaves trainable), and lines for the run log (what loading did).
HEAD_ATTRIBUTE = "dltool_head"
NOTES_ATTRIBUTE = "dltool_notes"
# A `model.pretrained` string ending so is a weights file; any other string is a tag.
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class FamilyImpl(Protocol):
    """What a family module provides (torch is imported inside it)."""

    def architectures(self) -> list[str]: ...
    def weight_tags(self, arch: str) -> list[str]: ...
    def all_weight_tags(self) -> dict[str, list[str]]: ...  # by architecture, for listing
    def builder_keywords(self, arch: str) -> set[str] | None: ...  # None: cannot tell
    def preprocessing(self, arch: str, weights: bool | str) -> dict[str, Any]: ...  # True: default weights


@dataclass(frozen=True)
class Family:
    """One library of architectures: ``PREFIX:ARCH`` names, implemented by ``module``."""

    prefix: str
    module: str
    description: str

    def impl(self) -> Any:  # a FamilyImpl module
        return importlib.import_module(self.module)


FAMILIES: dict[str, Family] = {
    f.prefix: f
    for f in (
        Family(
            "torchvision",
            "dltool.models.zoo.torchvision_zoo",
            "every torchvision classification model, ImageNet weights from $TORCH_HOME",
        ),
        Family(
            "timm",
            "dltool.models.zoo.timm_zoo",
            "every timm model (pytorch-image-models), weights from the Hugging Face cache",
        ),
    )
}


def split_name(name: str) -> tuple[Family, str]:
    """``'timm:resnet18'`` → (the timm family, ``'resnet18'``)."""
    prefix, _, arch = name.partition(":")
    return FAMILIES[prefix], arch


def init_keywords(model_class: type) -> set[str]:
    """The keywords ``model_class(...)`` takes, less the class count (dltool sets it from the data)."""
    taken = inspect.signature(model_class).parameters.values()
    return {p.name for p in taken if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"num_classes"}


def registered_architectures(prefix: str) -> list[str]:
    """The architectures the model registry names ``PREFIX:ARCH`` one by one (torchvision's
    segmentation networks), which the family's own list leaves out: a typo's suggestions."""
    from dltool.models import models  # at call time: dltool.models imports this module

    return [e.name.partition(":")[2] for e in models if not e.family and e.name.startswith(f"{prefix}:")]


def prefixed_names(name: str) -> list[str]:
    """``PREFIX:name`` for each family with an architecture ``name``: what a bare ``resnet18``
    (as timm's and torchvision's own scripts name models) stands for. Imports the libraries:
    for an unknown name's error only."""
    if not name.isidentifier():  # a path, a class reference or a PREFIX:ARCH name: none is meant so
        return []
    return [
        f"{p}:{name}" for p, f in FAMILIES.items() if name in {*f.impl().architectures(), *registered_architectures(p)}
    ]


def is_weights_file(pretrained: bool | str) -> bool:
    return isinstance(pretrained, str) and pretrained.lower().endswith(WEIGHT_SUFFIXES)


class ZooParams(ModelParams):
    """A zoo architecture; the head is sized from the dataset's classes."""

    # The builder needs `name`, which names the family and the architecture, and `head`, which
    # says what the head's outputs are when the log names a re-initialised one.
    common: ClassVar[frozenset[str]] = ModelParams.common - {"name", "head"}
    # The module implementing these architectures (a FamilyImpl); None: the family's own.
    impl_module: ClassVar[str | None] = None
    pretrained: bool | str = Field(
        False, description="true: the architecture's default weights; a weights tag; or a .safetensors/.pth file"
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="more keyword arguments of the library's builder (e.g. drop_rate: 0.2)"
    )

    @classmethod
    def family_impl(cls, name: str) -> tuple[str, str, Any]:
        """(prefix, architecture, the module implementing it) of a zoo name."""
        family, arch = split_name(name)
        return family.prefix, arch, importlib.import_module(cls.impl_module) if cls.impl_module else family.impl()

    @field_validator("name")
    @classmethod
    def _known_architecture(cls, name: str) -> str:
        prefix, arch, impl = cls.family_impl(name)
        known = impl.architectures()
        if arch not in known:
            names = {*known, *registered_architectures(prefix)}
            hint = did_you_mean(arch, names) or suggest(arch, names)
            raise ValueError(f"unknown {prefix} architecture {arch!r}{hint} (see: dltool list models --zoo {prefix})")
        return name

    @field_validator("pretrained")
    @classmethod
    def _known_weights(cls, pretrained: bool | str, info: ValidationInfo) -> bool | str:
        if isinstance(pretrained, bool) or "name" not in info.data:
            return pretrained
        if is_weights_file(pretrained):
            return str(Path(pretrained).expanduser().resolve())
        prefix, arch, impl = cls.family_impl(info.data["name"])
        tags = impl.weight_tags(arch)
        if pretrained not in tags:
            listed = ", ".join(tags) if tags else f"none: {prefix}:{arch} has no pretrained weights"
            raise ValueError(
                f"{pretrained!r} is neither a weights tag of {prefix}:{arch} (tags: {listed}) "
                f"nor a {'/'.join(WEIGHT_SUFFIXES)} file"
            )
        return pretrained

    @field_validator("kwargs")
    @classmethod
    def _builder_takes(cls, kwargs: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "name" not in info.data:
            return kwargs
        prefix, arch, impl = cls.family_impl(info.data["name"])
        allowed = impl.builder_keywords(arch)
        for key in kwargs if allowed is not None else ():
            if key not in allowed:
                raise ValueError(
                    f"{key!r} is not a keyword of the {prefix}:{arch} builder"
                    f"{did_you_mean(key, allowed)} (allowed: {', '.join(sorted(allowed))})"
                )
        return kwargs

    @model_validator(mode="after")
    def _init_keeps_weights(self) -> ZooParams:
        if self.pretrained is not False and self.init != "default":
            raise ValueError(f"init {self.init!r} would overwrite the pretrained weights; use init: default")
        return self

    def data_defaults(self) -> dict[str, Any]:
        """The input the weights expect (a weights file is taken to expect the default weights' input)."""
        _, arch, impl = self.family_impl(self.name)
        weights = True if is_weights_file(self.pretrained) else self.pretrained
        return impl.preprocessing(arch, weights)

    def fetch_weights(self) -> None:
        """Find the pretrained weights (downloading them into the library's cache if need be),
        so a missing file fails before a run dir is made."""
        from dltool.models.zoo.build import weights_path

        if self.pretrained is not False:
            weights_path(self.name, self.pretrained, self.family_impl(self.name)[2])

    def without_weights(self) -> ZooParams:
        return self.model_copy(update={"pretrained": False})


# torchvision's semantic segmentation builders (`dltool.models.zoo.torchvision_seg`), listed
# here without importing torchvision; a test checks the list against torchvision's.
TORCHVISION_SEGMENTATION = {
    "deeplabv3_mobilenet_v3_large": "DeepLabV3 on MobileNetV3-Large (torchvision); COCO-VOC weights",
    "deeplabv3_resnet50": "DeepLabV3 on ResNet-50 (torchvision); COCO-VOC weights",
    "deeplabv3_resnet101": "DeepLabV3 on ResNet-101 (torchvision); COCO-VOC weights",
    "fcn_resnet50": "Fully convolutional network on ResNet-50 (torchvision); COCO-VOC weights",
    "fcn_resnet101": "Fully convolutional network on ResNet-101 (torchvision); COCO-VOC weights",
    "lraspp_mobilenet_v3_large": "LR-ASPP on MobileNetV3-Large (torchvision); COCO-VOC weights",
}


class TorchvisionSegmentationParams(ZooParams):
    """A torchvision segmentation network; its classifier sized from the dataset's classes."""

    task: ClassVar[Task] = "segmentation"
    impl_module: ClassVar[str | None] = "dltool.models.zoo.torchvision_seg"
