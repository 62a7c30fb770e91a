"""A network's layers, output shapes, parameter counts and multiply-accumulates for one input,
as torchinfo measures them (one forward pass of a zero image, with hooks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torchinfo
from torch import nn

from dltool.errors import ConfigError


@dataclass(frozen=True)
class LayerRow:
    """One module: its dotted ``name`` in the network, class, nesting ``depth`` (1: a child of
    the network), output shape for a batch of one, its own and its children's parameters."""

    name: str
    kind: str
    depth: int
    output_shape: list[int]
    params: int
    trainable: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    """``layers`` down to a depth; totals over the whole network, for one input of ``input_shape``."""

    model: str
    input_shape: list[int]
    layers: list[LayerRow]
    total_params: int
    trainable_params: int
    macs: int  # multiply-accumulates of one sample's forward pass

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "frozen_params": self.frozen_params}

    def totals_line(self) -> str:
        """``85,514 parameters (85,514 trainable, 0 frozen), 85.5 K MACs per 1×8×8 input``."""
        shape = "×".join(map(str, self.input_shape[1:]))
        return (
            f"{self.total_params:,} parameters ({self.trainable_params:,} trainable, {self.frozen_params:,} frozen), "
            f"{si_count(self.macs)} MACs per {shape} input"
        )


def summarize(model: nn.Module, in_shape: tuple[int, ...], *, name: str, depth: int = 3) -> ModelSummary:
    """The summary of ``model`` for inputs of ``in_shape`` (C, H, W), its layers listed down to
    ``depth``. Runs in eval mode on the model's device and restores its mode; the zero input
    draws no random numbers, so training that follows is unchanged."""
    device = next(model.parameters(), torch.zeros(0)).device
    try:
        stats = torchinfo.summary(
            model,
            input_data=[torch.zeros(1, *in_shape, device=device)],
            depth=depth,
            mode="eval",
            verbose=0,
            col_names=("output_size", "num_params", "mult_adds"),
        )
    except RuntimeError as error:  # torchinfo's wraps the network's own, after every layer it ran
        raise ConfigError(_unfit(name, in_shape, error.__cause__ or error)) from None
    layers = [_row(info) for info in stats.summary_list if 0 < info.depth <= depth]
    return ModelSummary(
        model=name,
        input_shape=[1, *in_shape],
        layers=layers,
        total_params=int(stats.total_params),
        trainable_params=int(stats.trainable_params),
        macs=int(stats.total_mult_adds),
    )


def _unfit(name: str, in_shape: tuple[int, ...], cause: BaseException) -> str:
    """Why the network fails on one input of ``in_shape``; a size its layers cannot shrink
    further (a kernel larger than what is left of the image) is the input's size to raise."""
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    hint = "; if the images are smaller than the network takes, raise data.image_size" if "size" in reason else ""
    return f"model {name!r} cannot take a {'×'.join(map(str, in_shape))} input: {reason}{hint}"


def _row(info: Any) -> LayerRow:
    names = []
    node = info
    while node is not None and node.depth > 0:
        names.append(node.var_name)
        node = node.parent_info
    shape = info.output_size if isinstance(info.output_size, list) else []
    return LayerRow(
        name=".".join(reversed(names)),
        kind=info.class_name,
        depth=info.depth,
        output_shape=[int(n) for n in shape],
        params=int(info.num_params),
        trainable=int(info.trainable_params),
        macs=_macs(info),
    )


# torchinfo's own MACs of a container multiply every parameter below it by the container's
# output size (its table shows "--"): an autoencoder's encoder read 868 K where its layers do 87 K.
def _macs(info: Any) -> int:
    """A layer's MACs; a container's, the sum of the layers below it (all its ``children``)."""
    if info.is_leaf_layer:
        return int(info.macs)
    return sum(int(child.macs) for child in info.children if child.is_leaf_layer)


def si_count(n: float) -> str:
    """``1234567`` → ``1.23 M``: a count with an SI prefix, three significant digits."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}"
    return f"{n:.0f}"
