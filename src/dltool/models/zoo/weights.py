"""Pretrained weights of zoo models: find them in the library's cache, else download them,
else fail with the one line that says where to put the file; then load them into a model.

Only safe formats are read: ``.safetensors``, and ``.pth``/``.pt``/``.bin`` through
``torch.load(weights_only=True)``. A file that does not fit the architecture is an error
naming the tensors; a classifier head of another class count is re-initialised (and said so).
"""

from __future__ import annotations

import shutil
import socket
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from dltool._env import env_flag
from dltool._io import atomic_open
from dltool._torch_load import safe_load
from dltool.errors import CheckpointError, first_line
from dltool.models.zoo import HEAD_ATTRIBUTE

# Seconds a weights server may take to answer: an offline machine fails fast, not after minutes.
DOWNLOAD_TIMEOUT_S = 15.0
CHUNK_BYTES = 1 << 20
# Tensors named per kind of mismatch in an error line.
NAMES_SHOWN = 4


class WeightsUnavailable(CheckpointError):
    """Pretrained weights that are not cached and cannot be downloaded."""


@dataclass(frozen=True)
class WeightsSource:
    """Where one set of pretrained weights lives: ``folder/file_names[0]`` is where a user puts
    the file by hand; ``cached`` lists where the library itself may have stored it."""

    label: str  # e.g. "torchvision:resnet18 IMAGENET1K_V1", for messages
    folder: Path
    file_names: tuple[str, ...]
    num_classes: int
    url: str | None = None  # a plain HTTPS file (torchvision); else ``download`` fetches it
    download: Callable[[], Path] | None = None
    page: str | None = None  # where ``download`` fetches from (its server is tried first)
    cached: tuple[Path, ...] = ()


def offline() -> bool:
    """Whether the environment forbids the network ($DLTOOL_OFFLINE or $HF_HUB_OFFLINE)."""
    return any([env_flag("DLTOOL_OFFLINE"), env_flag("HF_HUB_OFFLINE")])  # a list: both are checked


def weights_file(source: WeightsSource) -> Path:
    """The local file of ``source``: cached, else downloaded into the cache, else ``WeightsUnavailable``."""
    for candidate in (*source.cached, *(source.folder / name for name in source.file_names)):
        if candidate.is_file():
            return candidate
    reason = "offline: $DLTOOL_OFFLINE or $HF_HUB_OFFLINE is set" if offline() else None
    if reason is None:
        try:
            return _download(source)
        except Exception as error:  # any network or server failure ends in the same advice
            reason = f"download failed: {first_line(error)}"
    raise WeightsUnavailable(
        f"{source.label} weights are not cached and cannot be fetched ({reason}); "
        f"put {source.file_names[0]} in {source.folder}/ or set model.pretrained=PATH (a local .safetensors/.pth file)"
    )


def _download(source: WeightsSource) -> Path:
    _check_reachable(source.url or source.page)
    if source.download is not None:
        return source.download()
    if source.url is None or not source.url.startswith("https://"):
        raise ValueError(f"no https URL for these weights ({source.url})")
    target = source.folder / source.file_names[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    # A whole-file fetch (weights are tens of MB), streamed to a temporary file and renamed.
    with urllib.request.urlopen(source.url, timeout=DOWNLOAD_TIMEOUT_S) as response, atomic_open(target) as file:
        shutil.copyfileobj(response, file, CHUNK_BYTES)
    return target


def _check_reachable(url: str | None) -> None:
    """One connection attempt to the server first: a machine without a route fails in seconds
    instead of sitting through a download library's retries with back-off."""
    parts = urllib.parse.urlsplit(url or "")
    if not parts.hostname:
        raise ValueError(f"no server to download from ({url})")
    try:
        socket.create_connection((parts.hostname, parts.port or 443), timeout=DOWNLOAD_TIMEOUT_S).close()
    except OSError as error:
        raise ConnectionError(f"{parts.hostname} is unreachable: {first_line(error)}") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (a bare state dict, or one under 'state_dict'/'model')."""
    if not path.is_file():
        raise CheckpointError(f"model.pretrained: {path} does not exist")
    if path.suffix != ".safetensors":
        state = safe_load(path, "weights file")
    else:
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a readable weights file ({first_line(error)})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no dict of tensors (not a state dict)")
    return state


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], label: str, outputs: str) -> str:
    """Copy ``state`` into ``model``; the head (``model.dltool_head``) is kept freshly initialised
    where its shape differs (another class count). Returns the line that says what happened,
    naming the new head's ``outputs`` ('4 classes')."""
    own = model.state_dict()
    head_name: str = getattr(model, HEAD_ATTRIBUTE)
    head = head_name + "."
    resized = sorted(k for k in own if k.startswith(head) and k in state and state[k].shape != own[k].shape)
    mismatched = _mismatches(own, state, set(resized))
    if mismatched:
        raise CheckpointError(f"{label}: the weights do not fit {type(model).__name__}: " + "; ".join(mismatched))
    model.load_state_dict({k: v for k, v in state.items() if k not in resized}, strict=False)
    line = f"pretrained {label}: loaded {len(state) - len(resized)} of {len(own)} tensors"
    if resized:
        classes = next(state[k].shape[0] for k in resized)
        line += f"; head {head_name} re-initialised for {outputs} (the weights have {classes}): {', '.join(resized)}"
    return line


def _mismatches(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], resized: set[str]) -> list[str]:
    """'missing …', 'unexpected …', 'shape differs …' parts naming the tensors, or none."""
    # Old checkpoints predate BatchNorm's step counter; torch fills it in when it is absent.
    missing = sorted(k for k in own.keys() - state.keys() if not k.endswith("num_batches_tracked"))
    unexpected = sorted(state.keys() - own.keys())
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(own.keys() & state.keys())
        if k not in resized and state[k].shape != own[k].shape
    ]
    parts = []
    for what, names in (("missing", missing), ("unexpected", unexpected), ("shape differs (file vs model)", shapes)):
        if names:
            more = f" (+{len(names) - NAMES_SHOWN} more)" if len(names) > NAMES_SHOWN else ""
            parts.append(f"{what}: {', '.join(names[:NAMES_SHOWN])}{more}")
    return parts
