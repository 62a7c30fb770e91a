"""Build a network from its validated parameters and initialise its weights."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

import dltool.tasks as tasks
from dltool._memory import check_fits
from dltool.models import ModelParams, models
from dltool.models.target_scale import add_target_scale

FanMode = Literal["fan_in", "fan_out"]

# Gains follow each scheme's usual pairing: Xavier for tanh/sigmoid nets, Kaiming for ReLU.
# A transposed conv's weight is (in, out, kh, kw): torch's "fan_in" reads dim 1 (out), so
# Kaiming uses "fan_out" there, which is the fan-in of its forward pass (up to the stride).
_INITIALISERS: dict[str, Callable[[torch.Tensor, FanMode], object]] = {
    "xavier_uniform": lambda w, mode: nn.init.xavier_uniform_(w),
    "xavier_normal": lambda w, mode: nn.init.xavier_normal_(w),
    "kaiming_uniform": lambda w, mode: nn.init.kaiming_uniform_(w, mode=mode, nonlinearity="relu"),
    "kaiming_normal": lambda w, mode: nn.init.kaiming_normal_(w, mode=mode, nonlinearity="relu"),
}
WEIGHTED_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def build_model(params: ModelParams, *, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network named by ``params``, for inputs of ``in_shape`` (C, H, W); refused when its
    weights alone would not fit in memory. A task that ``scales_outputs`` gets its last step
    (``dltool.models.target_scale``), unfitted."""
    needed = weight_bytes(params, in_shape, num_classes)
    check_fits(needed, f"model {params.name!r}", lambda: _size_settings(params, in_shape, num_classes, needed))
    model = models.build(params, in_shape=tuple(in_shape), num_classes=num_classes)
    initialise(model, params.init)
    if tasks.info(tasks.task_name(params)).scales_outputs:
        add_target_scale(model, num_classes)
    return model


def _size_settings(params: ModelParams, in_shape: tuple[int, ...], num_classes: int, needed: int) -> str:
    """The settings that size a network too large for memory: its own numbers, and the input
    size where its weights grow with it (an MLP on photos kept at 4032×3024)."""
    sizes = _size_keys(params)
    if len(in_shape) == 3 and weight_bytes(params, (in_shape[0], 32, 32), num_classes) < needed:
        sizes.append(f"data.image_size (the images are {in_shape[2]}×{in_shape[1]} px; photos train at 224)")
    return " or ".join(sizes) or "the model"


def _size_keys(params: ModelParams) -> list[str]:
    """The model's number-valued keys (widths, depths, channel lists) as dotted config keys."""
    kwargs = params.builder_kwargs().items()
    return [f"model.{k}" for k, v in kwargs if isinstance(v, (int, list)) and not isinstance(v, bool)]


def weight_bytes(params: ModelParams, in_shape: tuple[int, ...], num_classes: int) -> int:
    """Bytes of the network's weights and buffers, counted on torch's meta device: its tensors
    have shapes but no storage, so nothing is allocated."""
    with torch.device("meta"), warnings.catch_warnings():
        # A zoo model with pretrained weights loads them while it is built, into meta tensors
        # here, which torch warns is a no-op: for a count of shapes that is the point.
        warnings.simplefilter("ignore", UserWarning)
        probe = models.build(params, in_shape=tuple(in_shape), num_classes=num_classes)
    return sum(t.numel() * t.element_size() for t in itertools.chain(probe.parameters(), probe.buffers()))


def initialise(model: nn.Module, scheme: str) -> None:
    """Re-initialise linear and (transposed) conv weights with ``scheme``, biases to zero.

    ``default`` keeps torch's initialisation; normalisation layers always keep theirs
    (weight 1, bias 0). Parts a model lists in its ``pretrained`` attribute (weights loaded
    from a run) are left alone.
    """
    if scheme == "default":
        return
    init = _INITIALISERS[scheme]
    loaded = {id(m) for part in getattr(model, "pretrained", ()) for m in part.modules()}
    for module in model.modules():
        if isinstance(module, WEIGHTED_LAYERS) and id(module) not in loaded:
            transposed = isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
            init(module.weight, "fan_out" if transposed else "fan_in")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
