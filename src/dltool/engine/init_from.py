"""``--init-from``: start a new run from another run's weights, or from a weights file.

Every tensor whose name and shape match is copied; the rest keep their fresh
initialisation (a new head when the classes differ). The source is read once, when
training starts: the run's own ``model.safetensors`` holds every weight from then on, and
``--resume`` reads only the checkpoint.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dltool._safetensors import read_metadata
from dltool._torch_load import safe_load
from dltool.config import load_config
from dltool.engine.checkpoint import load_weights
from dltool.errors import CheckpointError, ConfigError, DltoolError
from dltool.models import ModelParams
from dltool.models.freezing import in_head
from dltool.models.target_scale import MEAN, STD
from dltool.rundir import open_run_dir

# Names of the new tensors shown in the log line; the rest are counted.
NEW_SHOWN = 8


@dataclass(frozen=True)
class InitSource:
    """Where a model's first weights come from: ``label`` as the config gives it."""

    label: str
    weights: Path


def resolve_init_source(params: ModelParams) -> tuple[ModelParams, InitSource | None]:
    """The model's weights source, with ``params`` completed from the source run's model
    (``ModelParams.adopt``); ``(params, None)`` when the model starts from scratch."""
    label = params.weights_source()
    if label is None:
        return params, None
    path = Path(label).expanduser()
    if path.is_file():
        return params, InitSource(label, path)
    if not path.exists():
        raise ConfigError(f"model.init_from {label}: no such run dir or weights file")
    run = open_run_dir(path)
    try:
        source_model = load_config(str(run.config)).model
    except DltoolError as error:
        raise ConfigError(f"init-from {label}: {run.config} is not a valid config: {error}") from None
    if not run.weights.is_file():
        raise CheckpointError(f"init-from {label}: the run has no {run.weights.name}; has it finished an epoch?")
    return params.adopt(source_model), InitSource(label, run.weights)


def load_init_weights(
    model: nn.Module, source: InitSource, must_load: tuple[str, ...] = (), classes: list[str] | None = None
) -> str:
    """Copy ``source``'s tensors that match ``model`` by name and shape; the log line saying
    what was loaded. Nothing matching is a CheckpointError; a tensor that ``must_load`` names
    and the source lacks (in that shape) is a ConfigError.

    The head is new when the source's weights record other ``classes`` (dltool writes them
    into every model.safetensors): its rows would score the wrong classes, even where the
    class count, and so the shape, is the same.
    """
    tensors = read_tensors(source.weights)
    state = model.state_dict()
    matched = {k: v for k, v in tensors.items() if k in state and state[k].shape == v.shape}
    if classes is not None and _classes_of(source.weights) not in (None, classes):
        # The target scale goes with the head: it maps that head's outputs to the source's targets.
        parts = [p for p in (getattr(model, "dltool_head", None), MEAN, STD) if p]
        matched = {k: v for k, v in matched.items() if not any(in_head(k, p) for p in parts)}
    if not matched:
        raise CheckpointError(
            f"init-from {source.label}: none of its {len(tensors)} tensors matches the model by name and shape "
            f"(it has {_some(list(tensors))}; the model has {_some(list(state))})"
        )
    missing = [k for k in state if k not in matched and any(fnmatch.fnmatchcase(k, p) for p in must_load)]
    if missing:
        raise ConfigError(
            f"init-from {source.label}: no tensor of the right shape for {_some(missing)}; "
            "was it trained on the same dataset and data.image_size?"
        )
    model.load_state_dict(matched, strict=False)
    new = [k for k in state if k not in matched]
    more = f" and {len(new) - NEW_SHOWN} more" if len(new) > NEW_SHOWN else ""
    listed = ", ".join(new[:NEW_SHOWN]) + more if new else "none"
    return f"init-from {source.label}: loaded {len(matched)} of {len(state)} tensors; new: {listed}"


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The named tensors of a ``.safetensors`` file, or of a ``.pth``/``.pt`` file read with the
    safe loader (a plain state dict, or a checkpoint holding one under ``model`` or ``state_dict``)."""
    if path.suffix == ".safetensors":
        return load_weights(path)
    state = safe_load(path, "weights file")
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds no named tensors")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _classes_of(weights: Path) -> list[str] | None:
    """The class names a dltool weights file records, or None (another tool's file, a .pth)."""
    if weights.suffix != ".safetensors":
        return None
    try:
        text = read_metadata(weights.read_bytes()).get("classes")
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None  # read_tensors has already said what is wrong with an unreadable file


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
