"""Rebuild a trained model from a run dir, its ``model.safetensors`` or a ``.pt`` checkpoint.

``model.safetensors`` carries the resolved config, the class names and the input shape in
its metadata, and ``last.pt`` carries them too, so either file works on its own, outside
its run dir. Nothing is ever unpickled: ``.pt`` files go through ``weights_only=True``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from dltool._safetensors import read_metadata
from dltool.config.schema import Config
from dltool.config.validate import validate_config
from dltool.engine.checkpoint import load_checkpoint, load_weights
from dltool.engine.device import resolve_device
from dltool.engine.tta import MODES as TTA_MODES
from dltool.engine.tta import with_tta
from dltool.errors import CheckpointError, ConfigError, DltoolError, UsageError, first_line
from dltool.models import models
from dltool.models.build import build_model
from dltool.rundir import RunDir


class InferenceModel(Protocol):
    """A model ready for inference: what feeds it (uint8 images of ``in_shape``, normalised
    with ``mean``/``std``), its forward pass and what its output means. ``Trained`` (a
    PyTorch module) is one; ``dltool.export.Exported`` (an ONNX or TorchScript file) another."""

    @property
    def name(self) -> str: ...  # the model's registry name, for messages
    @property
    def task(self) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def in_shape(self) -> tuple[int, int, int]: ...
    @property
    def mean(self) -> list[float]: ...
    @property
    def std(self) -> list[float]: ...
    @property
    def device(self) -> torch.device: ...  # where forward wants its inputs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float32 (N, C, H, W) → logits (N, classes), or images for reconstruction."""
        ...


@dataclass(frozen=True)
class Trained:
    """A model ready for inference, with what is needed to feed it and read its output.

    ``model`` is the plain network; ``scorer`` is what evaluation and prediction run: the
    network with the test-time augmentation ``tta``.
    """

    model: nn.Module
    config: Config
    classes: list[str]
    in_shape: tuple[int, int, int]
    source: Path
    run_dir: Path | None
    tta: str = "none"

    @property
    def name(self) -> str:
        return self.config.model.name

    @property
    def task(self) -> str:
        return models.get(self.config.model.name).params.task

    @property
    def scorer(self) -> nn.Module:
        """The network as it is scored: with the run's test-time augmentation."""
        return with_tta(self.model, self.tta)

    @property
    def mean(self) -> list[float]:
        assert self.config.data.mean is not None  # measured into the config before training
        return self.config.data.mean

    @property
    def std(self) -> list[float]:
        assert self.config.data.std is not None
        return self.config.data.std

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.scorer(images)


def load_trained(
    path: Path | str,
    *,
    checkpoint: Literal["best", "last"] = "best",
    device: torch.device | str = "cpu",
    tta: str | None = None,
) -> Trained:
    """The model at ``path`` (a run dir, ``*.safetensors`` or ``*.pt``), in eval mode on ``device``
    (``auto``: cuda, then mps, then cpu; an absent one is a usage error), scored with test-time
    augmentation ``tta`` (``none``, ``flip``; None: the run's ``train.tta``)."""
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        path = run.weights if checkpoint == "best" else run.last_checkpoint
        if not path.is_file():
            what = "best weights (model.safetensors)" if checkpoint == "best" else "checkpoints/last.pt"
            raise CheckpointError(f"{run.path}: no {what}; is it a dltool run dir that finished an epoch?")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such run dir or checkpoint")
    if path.suffix == ".safetensors":
        state, meta = _from_safetensors(path)
    elif path.suffix == ".pt":
        state, meta = _from_checkpoint(path)
    else:
        raise CheckpointError(f"{path}: expected a run dir, a .safetensors or a .pt file")
    config, classes, in_shape = _describe(path, meta)
    model = _rebuild(path, config, classes, in_shape, state)
    tta = config.train.tta if tta is None else tta
    if tta not in TTA_MODES:
        raise UsageError(f"tta {tta!r}: expected {' or '.join(TTA_MODES)}")
    if tta != "none" and models.get(config.model.name).params.task != "classification":
        raise UsageError(
            f"tta {tta!r} averages a classifier's logits; model {config.model.name!r} reconstructs images (use none)"
        )
    return Trained(
        model.to(resolve_device(str(device))).eval(), config, classes, in_shape, path, _run_dir_of(path), tta
    )


def _from_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = load_weights(path)
    metadata = read_metadata(path.read_bytes())
    meta: dict[str, Any] = {}
    for key in ("config", "classes"):
        if key in metadata:
            meta[key] = json.loads(metadata[key])
    if "in_shape" in metadata:
        meta["in_shape"] = [int(v) for v in metadata["in_shape"].split(",")]
    return state, meta


def _from_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    checkpoint = load_checkpoint(path)
    ema = checkpoint.get("ema")
    # The EMA is what training evaluated and kept; its module's weights are the model's keys.
    state = (
        {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}
        if ema
        else checkpoint["model"]
    )
    return state, {k: checkpoint[k] for k in ("config", "classes", "in_shape") if k in checkpoint}


def _describe(path: Path, meta: dict[str, Any]) -> tuple[Config, list[str], tuple[int, int, int]]:
    """Config, classes and input shape from the file, else from its run dir's files."""
    run_dir = _run_dir_of(path)
    raw_config, classes = meta.get("config"), meta.get("classes")
    if raw_config is None and run_dir is not None:
        from dltool.config.loading import read_yaml

        raw_config = read_yaml(RunDir(run_dir).config)
    if classes is None and run_dir is not None and RunDir(run_dir).classes.is_file():
        classes = json.loads(RunDir(run_dir).classes.read_text(encoding="utf-8"))
    if raw_config is None or classes is None or "in_shape" not in meta:
        raise CheckpointError(
            f"{path}: carries no dltool config, classes and input shape "
            "(not made by dltool, or moved without its run dir)"
        )
    try:
        config = validate_config(raw_config)
    except ConfigError as error:
        raise CheckpointError(f"{path}: its config no longer validates: {error}") from None
    return config, list(classes), tuple(meta["in_shape"])  # type: ignore[return-value]


def _rebuild(
    path: Path, config: Config, classes: list[str], in_shape: tuple[int, ...], state: dict[str, torch.Tensor]
) -> nn.Module:
    try:
        model = build_model(config.model, in_shape=in_shape, num_classes=len(classes))
        model.load_state_dict(state)
    except DltoolError:
        raise
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(
            f"{path}: weights do not fit a {config.model.name!r} model ({first_line(error)})"
        ) from None
    return model


def _run_dir_of(path: Path) -> Path | None:
    """The run dir holding ``path`` (``RUN/model.safetensors`` or ``RUN/checkpoints/last.pt``)."""
    for candidate in (path.parent, path.parent.parent):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None
