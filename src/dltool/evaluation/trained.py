"""Rebuild a trained model from a run dir, its ``model.safetensors`` or a ``.pt`` checkpoint.

``model.safetensors`` carries the resolved config, the class names and the input shape in
its metadata, and ``last.pt`` carries them too, so either file works on its own, outside
its run dir. Nothing is ever unpickled: ``.pt`` files go through ``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

import dltool.tasks as tasks
from dltool.config.schema import Config
from dltool.config.validate import validate_config
from dltool.data.normalise import Normalise
from dltool.engine.checkpoint import load_checkpoint, load_weights
from dltool.engine.device import Precision, channels_last_wanted, resolve_device, resolve_precision
from dltool.engine.loop import to_memory_format
from dltool.engine.tta import MODES as TTA_MODES
from dltool.engine.tta import with_tta
from dltool.errors import CheckpointError, ConfigError, DltoolError, MissingPathError, UsageError, first_line
from dltool.models.build import build_model
from dltool.rundir import (
    RunDir,
    WeightsMetadata,
    read_weights_header,
    refuse_parent_of_runs,
    run_dir_of,
    stand_in_named,
)

# Inference precision: float32, or an autocast of the forward pass. bf16 runs about twice as fast
# on CPUs with AVX-512 BF16 or AMX (ResNet-18 at 224 px, 2 cores: 102 against 50 images/s) and on
# GPUs; its scores differ from float32's in the second or third decimal.
INFERENCE_AMP = ("off", "bf16", "fp16")


@dataclass(frozen=True)
class Trained:
    """A run's model ready for inference (a ``dltool.evaluation.model.InferenceModel``),
    with what is needed to feed it and read its output.

    ``model`` is the plain network; ``scorer`` is what evaluation and prediction run: the
    network with the test-time augmentation ``tta``. ``precision``: the autocast of
    ``forward`` (predict's ``--amp``; none by default, so rows are float32's).
    """

    model: nn.Module
    config: Config
    classes: list[str]
    in_shape: tuple[int, int, int]
    source: Path
    run_dir: Path | None
    tta: str = "none"
    precision: Precision = Precision(None)

    @property
    def name(self) -> str:
        return self.config.model.name

    @property
    def task(self) -> str:
        return tasks.task_name(self.config.model)

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
    def crop_pct(self) -> float | None:
        return self.config.data.crop_pct

    @cached_property
    def device(self) -> torch.device:
        """Where the model's weights are (read once: ``score`` asks on every batch)."""
        return next(self.model.parameters()).device

    @property
    def device_type(self) -> str:
        return self.device.type

    @cached_property
    def normalise(self) -> Normalise:
        """The input normalisation, on the model's device."""
        return Normalise(self.mean, self.std, self.device)

    @cached_property
    def channels_last(self) -> bool:
        """Whether batches are fed channels-last, as the run trained (``train.channels_last``):
        a CNN's convolutions run them faster (ResNet-18 at 224 px on 2 cores: 1.4x in
        float32, 2x in bf16), to within float rounding (1e-5 on logits)."""
        return channels_last_wanted(self.config.train.channels_last, self.device, self.model)

    def score(self, batch: torch.Tensor) -> torch.Tensor:
        """The scorer's output for a normalised batch on the model's device, in the model's
        memory format and under ``precision``'s autocast."""
        with torch.inference_mode(), self.precision.autocast(self.device):
            return self.scorer(to_memory_format(batch, self.channels_last))

    def forward(self, images: np.ndarray) -> np.ndarray:
        """``score`` on a uint8 NumPy batch (N, C, H, W), normalised on the model's device:
        a GPU is sent a quarter of the bytes that float32 pixels would take, and the
        normalised batch never leaves it. Its output as float32 NumPy
        (``dltool.evaluation.model.InferenceModel``)."""
        return self.score(self.normalise(torch.from_numpy(images).to(self.device))).float().cpu().numpy()


def load_trained(
    path: Path | str,
    *,
    checkpoint: Literal["best", "last"] = "best",
    device: torch.device | str = "cpu",
    tta: str | None = None,
    amp: str = "off",
) -> Trained:
    """The model at ``path`` (a run dir, ``*.safetensors`` or ``*.pt``), in eval mode on ``device``
    (``auto``: cuda, then mps, then cpu; an absent one is a usage error), scored with test-time
    augmentation ``tta`` (``none``, ``flip``; None: the run's ``train.tta``); its ``forward``
    under the autocast ``amp`` (``INFERENCE_AMP``)."""
    path = Path(path)
    if not path.exists():
        raise MissingPathError(path, "run dir or checkpoint")
    if path.is_dir():
        run = RunDir(path)
        path = run.weights if checkpoint == "best" else run.last_checkpoint
        if not path.is_file():
            refuse_parent_of_runs(run.path)
            what = f"best weights ({path.name})" if checkpoint == "best" else str(path.relative_to(run.path))
            raise CheckpointError(f"{run.path}: no {what}; is it a dltool run dir that finished an epoch?")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a run dir nor a weights file")
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
    task = tasks.task_name(config.model)
    if tta not in tasks.info(task).tta:
        raise UsageError(
            f"tta {tta!r} averages a classifier's logits; model {config.model.name!r} is a {task} model "
            f"(use {' or '.join(tasks.info(task).tta)})"
        )
    on = resolve_device(str(device))
    precision = inference_precision(amp, on)
    return Trained(model.to(on).eval(), config, classes, in_shape, path, _run_path(path), tta, precision)


def inference_precision(amp: str, device: torch.device) -> Precision:
    """``amp`` (one of ``INFERENCE_AMP``) as the autocast of inference on ``device``."""
    if amp not in INFERENCE_AMP:
        raise UsageError(f"amp {amp!r}: expected {', '.join(INFERENCE_AMP)}")
    return resolve_precision(amp, device)


def _from_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], WeightsMetadata]:
    with stand_in_named(path):
        state = load_weights(path)
        return state, WeightsMetadata.from_metadata(path, read_weights_header(path).metadata)


def _from_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], WeightsMetadata]:
    checkpoint = load_checkpoint(path)  # its entries' types are checked there
    ema = checkpoint.get("ema")
    # The EMA is what training evaluated and kept; its module's weights are the model's keys.
    state = (
        {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}
        if ema
        else checkpoint["model"]
    )
    shape = checkpoint.get("in_shape")
    return state, WeightsMetadata(checkpoint.get("config"), checkpoint.get("classes"), shape and tuple(shape))


def _describe(path: Path, meta: WeightsMetadata) -> tuple[Config, list[str], tuple[int, int, int]]:
    """Config, classes and input shape from the file, else from its run dir's files."""
    run = run_dir_of(path)
    raw_config, classes = meta.config, meta.classes
    if raw_config is None and run is not None:
        raw_config = run.read_config()
    if classes is None and run is not None:
        classes = run.read_classes()
    if raw_config is None or classes is None or meta.in_shape is None:
        raise CheckpointError(
            f"{path}: carries no dltool config, classes and input shape "
            "(not made by dltool, or moved without its run dir)"
        )
    try:
        config = validate_config(raw_config)
    except ConfigError as error:
        raise CheckpointError(f"{path}: its config no longer validates: {error}") from None
    return config, classes, meta.in_shape


def _rebuild(
    path: Path, config: Config, classes: list[str], in_shape: tuple[int, ...], state: dict[str, torch.Tensor]
) -> nn.Module:
    try:
        # The run's weights replace the pretrained ones: those are not needed (nor read) again.
        outputs = tasks.out_features(config.model, classes)
        model = build_model(config.model.without_weights(), in_shape=in_shape, num_classes=outputs)
        model.load_state_dict(state)
    except DltoolError:
        raise
    # A state that passed the structure checks can still not fit: wrong shapes or names
    # (RuntimeError), or values that break a builder (the rest).
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as error:
        raise CheckpointError(
            f"{path}: weights do not fit a {config.model.name!r} model ({first_line(error)[:200]})"
        ) from None
    return model


def _run_path(path: Path) -> Path | None:
    run = run_dir_of(path)
    return run.path if run is not None else None
