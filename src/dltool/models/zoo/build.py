"""Build a zoo model (``torchvision:ARCH``, ``timm:ARCH``) and load its pretrained weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

import dltool.tasks as tasks
from dltool.errors import CheckpointError, ConfigError
from dltool.models.zoo import NOTES_ATTRIBUTE, is_weights_file, split_name
from dltool.models.zoo.weights import load_weights, read_weights, weights_file


def build_zoo(
    name: str,
    pretrained: bool | str,
    kwargs: dict[str, Any],
    in_shape: tuple[int, ...],
    num_classes: int,
    head: str = "classifier",
) -> nn.Module:
    """The architecture ``name`` with a head of ``num_classes`` outputs (those of ``head``: the
    classifier's classes, or a task's outputs); with ``pretrained``, its weights.

    The model carries ``dltool_head`` (the dotted name of its classifier head) and
    ``dltool_notes`` (lines for the run log: which weights were loaded, a re-initialised head).
    """
    family, _ = split_name(name)
    return build_with(family.impl(), name, pretrained, kwargs, in_shape, num_classes, head)


def build_torchvision_segmentation(
    name: str,
    pretrained: bool | str,
    kwargs: dict[str, Any],
    in_shape: tuple[int, ...],
    num_classes: int,
    head: str = "classifier",
) -> nn.Module:
    """A torchvision segmentation architecture (``dltool.models.zoo.torchvision_seg``), as ``build_zoo``."""
    from dltool.models.zoo import torchvision_seg

    return build_with(
        torchvision_seg, name, pretrained, kwargs, in_shape, num_classes, head, torchvision_seg.without_auxiliary
    )


def build_with(
    impl: Any,
    name: str,
    pretrained: bool | str,
    kwargs: dict[str, Any],
    in_shape: tuple[int, ...],
    num_classes: int,
    head: str,
    kept: Callable[[dict[str, Tensor]], dict[str, Tensor]] = lambda state: state,
) -> nn.Module:
    """The architecture of ``name`` built by the family module ``impl``, its head's
    ``num_classes`` outputs for ``head`` (``model.head``); ``kept``: the tensors of a
    pretrained file that the model takes."""
    arch = name.partition(":")[2]
    try:
        model = impl.build(arch, dict(kwargs), tuple(in_shape), num_classes)
    except TypeError as error:  # a keyword the builder sets itself (e.g. a ResNet's `layers`)
        raise ConfigError(f"model.kwargs: {name} cannot take {sorted(kwargs)}: {error}") from None
    notes: list[str] = []
    setattr(model, NOTES_ATTRIBUTE, notes)
    if pretrained is not False:
        path, label = weights_path(name, pretrained, impl)
        state = read_weights(path) if is_weights_file(pretrained) else read_cached_weights(path)
        notes.append(load_weights(model, kept(state), label, _head_outputs(head, num_classes)))
    return model


def read_cached_weights(path: Path) -> dict[str, Tensor]:
    """``read_weights`` of a file in a library's cache: one that cannot be read says how to
    fetch it again (a copy cut short, a disk error)."""
    try:
        return read_weights(path)
    except CheckpointError as error:
        raise CheckpointError(f"{error}; delete it to download it again, or copy a whole one there") from None


def _head_outputs(head: str, width: int) -> str:
    """What the head's ``width`` outputs are: '4 classes', or a task's ('18 outputs, x and y of 9 points')."""
    return tasks.get("classification" if head == "classifier" else head).head_outputs(width)


def weights_path(name: str, pretrained: bool | str, impl: Any = None) -> tuple[Path, str]:
    """The local weights file ``pretrained`` names for ``name`` (fetched into the cache if need be),
    and how to name those weights in messages; ``impl``: the family module (None: by prefix)."""
    if is_weights_file(pretrained):
        path = Path(str(pretrained))
        if not path.is_file():
            raise CheckpointError(f"model.pretrained: {path} does not exist")
        return path, f"{name} from {path}"
    family, arch = split_name(name)
    source = (impl or family.impl()).weights_source(arch, pretrained)
    path = weights_file(source)
    return path, f"{source.label} ({path.name})"
