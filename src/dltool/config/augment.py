"""The ``data.augment`` section: augmentation of training images, the same in both loaders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from dltool.config.section import Section


def _within(low: float, high: float) -> Callable[[tuple[float, float]], tuple[float, float]]:
    """A check of [low, high] ranges (e.g. `scale: [0.08, 1.0]`) with both ends in (``low``, ``high``]."""

    def check(value: tuple[float, float]) -> tuple[float, float]:
        if not low < value[0] <= value[1] <= high:
            raise ValueError(f"should be [low, high] with {low:g} < low <= high <= {high:g}")
        return value

    return check


def _pair(value: object) -> object:
    if isinstance(value, (list, tuple)) and len(value) != 2:
        raise ValueError("should be [low, high]")
    return value


# [low, high] of a value drawn per image.
Share = Annotated[tuple[float, float], BeforeValidator(_pair), AfterValidator(_within(0, 1))]
Positive = Annotated[tuple[float, float], BeforeValidator(_pair), AfterValidator(_within(0, 100))]
Probability = Annotated[float, Field(ge=0, le=1)]


def _switch(value: object, key: str | None = None) -> object:
    """A sub-section's shorthands: `true` on with its defaults, `false` off, a bare value its ``key``."""
    if value is True:
        return {}
    if value is False:
        return None
    if key is not None and not isinstance(value, (dict, type(None))):
        return {key: value}
    return value


class ResizedCropConfig(Section):
    scale: Share = Field((0.08, 1.0), description="share of the image's area the crop covers, drawn in [low, high]")
    ratio: Positive = Field((3 / 4, 4 / 3), description="the crop's width / height, drawn log-uniformly in [low, high]")


class AffineConfig(Section):
    degrees: float = Field(0.0, ge=0, le=180, description="rotation drawn in [-degrees, degrees]")
    translate: float = Field(0.0, ge=0, le=1, description="shift drawn in ±translate × width (and × height)")
    scale: Positive = Field((1.0, 1.0), description="zoom factor drawn in [low, high]")
    shear: float = Field(0.0, ge=0, lt=90, description="horizontal shear angle drawn in [-shear, shear] degrees")


class ColorJitterConfig(Section):
    brightness: float = Field(0.0, ge=0, description="multiply by a factor drawn in [1-b, 1+b] (torchvision's)")
    contrast: float = Field(0.0, ge=0, description="blend with the image's grey mean, factor in [1-c, 1+c]")
    saturation: float = Field(0.0, ge=0, description="blend with the grey image, factor in [1-s, 1+s]")
    hue: float = Field(0.0, ge=0, le=0.5, description="rotate the hue by a share of the circle drawn in [-h, h]")


class BlurConfig(Section):
    probability: Probability = Field(0.5, description="share of the images blurred")
    sigma: Positive = Field((0.1, 2.0), description="Gaussian sigma (px) drawn in [low, high]")


class AutoAugmentConfig(Section):
    policy: Literal["none", "trivial", "randaugment"] = Field(
        "none",
        description="trivial: TrivialAugmentWide (one op, random strength); randaugment: `ops` ops at `magnitude`",
    )
    ops: int = Field(2, ge=1, le=16, description="randaugment: ops applied in a row to each image")
    magnitude: int = Field(9, ge=0, le=30, description="randaugment: strength, 0..30 (of 31 bins)")


class ErasingConfig(Section):
    probability: Probability = Field(0.5, description="share of the images with a rectangle erased (mid-grey)")
    scale: Share = Field((0.02, 0.33), description="share of the image's area erased, drawn in [low, high]")
    ratio: Positive = Field((0.3, 3.3), description="the rectangle's width / height, drawn log-uniformly")


class AugmentConfig(Section):
    """Augmentation of training images, the same in both loaders; all off by default.

    Every random choice is drawn per sample from (seed, epoch, sample index)."""

    random_resized_crop: ResizedCropConfig | None = Field(
        None, description="crop a random box (area share, aspect ratio) and resize it to the image size; true: defaults"
    )
    crop_padding: int = Field(0, ge=0, le=256, description="random crop after zero-padding each side by this (px)")
    flip: bool = Field(False, description="random horizontal flip, half of the images")
    vflip: bool = Field(False, description="random vertical flip, half of the images")
    affine: AffineConfig | None = Field(None, description="random rotation, shift, zoom and shear (black fill)")
    auto: AutoAugmentConfig = Field(
        AutoAugmentConfig(), description="none | trivial | randaugment (or {policy, ops, magnitude})"
    )
    color_jitter: ColorJitterConfig | None = Field(None, description="random brightness, contrast, saturation, hue")
    grayscale: Probability = Field(0.0, description="share of the images turned grey")
    blur: BlurConfig | None = Field(None, description="Gaussian blur of a share of the images; true: defaults")
    cutout: int = Field(0, ge=0, le=1024, description="zero a random square this wide (px), clipped at the borders")
    random_erasing: ErasingConfig | None = Field(
        None, description="erase a random rectangle (a probability, or {probability, scale, ratio}; true: defaults)"
    )
    mixup: float = Field(0.0, ge=0, le=100, description="MixUp's Beta(alpha, alpha); 0: off")
    cutmix: float = Field(
        0.0, ge=0, le=100, description="CutMix's Beta(alpha, alpha); 0: off (with mixup: one per batch)"
    )

    @field_validator("random_resized_crop", "affine", "color_jitter", "blur", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        return _switch(value)

    @field_validator("random_erasing", mode="before")
    @classmethod
    def _probability(cls, value: object) -> object:
        return _switch(value, "probability")

    @field_validator("auto", mode="before")
    @classmethod
    def _policy(cls, value: object) -> object:
        return {"policy": value} if isinstance(value, str) else value
