"""The config tree: six sections, typed and validated; the single source of defaults.

``model``, ``optimizer``, ``scheduler`` and ``loss`` name a registry entry and are
validated against that entry's parameters (see ``dltool.config.validate``); ``data`` and
``train`` are fixed schemas defined here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SerializeAsAny,
    field_validator,
    model_validator,
)

import dltool.tasks as tasks
from dltool.config.augment import AugmentConfig
from dltool.config.devices import device_name
from dltool.config.section import Section
from dltool.config.tracking import MlflowConfig, Trackers
from dltool.errors import did_you_mean
from dltool.losses import LossParams
from dltool.models import ModelParams
from dltool.optim import OptimizerParams, SchedulerParams

# Upper bounds of settings that would otherwise fail deep inside numpy, torch or the OS.
MAX_SEED = 2**63 - 1  # torch's seeds are 64-bit
MAX_IMAGE_SIZE = 4096  # px a side; larger images belong to a streaming loader, not a uint8 cache
MAX_THREADS = 1024
MAX_WORKERS = 256


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def auto_or_whole(value: object, low: int, high: int) -> object:
    """``value`` when it is ``"auto"`` or a whole number in [low, high] (YAML's booleans are not)."""
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        return value
    raise ValueError(f"should be 'auto' or a whole number from {low} to {high}")


PointName = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)]
PointPair = tuple[PointName, PointName]  # YAML reads `[1, 2]` as numbers: points "1" and "2"


class DataConfig(Section):
    name: str = Field("digits", description="a registered dataset (dltool list datasets) or a folder of class folders")
    root: str | None = Field(None, description="dataset and cache folder; default $DLTOOL_DATA or the user cache")
    image_size: int | None = Field(None, ge=1, le=MAX_IMAGE_SIZE, description="resize images to this square size")
    channels: Literal[1, 3] | None = Field(None, description="1 (grey) or 3 (RGB); null: the dataset's own")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of train drawn as val")
    test_fraction: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="share of train held out as test when the dataset has no test split (stratified, drawn "
        "before val; a segmentation folder's one images/+masks/ pool: at random); 0: val doubles as test; "
        "null: 0.1 for a new run, 0 for a run recorded without it",
    )
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the drawn test and val splits (and of train_per_class)"
    )
    split_by: Literal["name", "shuffle"] | None = Field(
        None,
        description="how the drawn test and val splits pick files: name (a hash of each file's name and "
        "split_seed: adding or removing files moves no other between splits; shares per class up to chance) "
        "or shuffle (exact shares, drawn again when the files change; always, for datasets without file "
        "names); null: name for a new run, shuffle for a run recorded without it",
    )
    cv_folds: int = Field(0, ge=0, le=100, description="k-fold cross-validation: val is fold cv_fold of k (0: off)")
    cv_fold: int = Field(0, ge=0, description="the fold held out as val (0 to cv_folds - 1), set by train --folds")
    classes: list[str] | None = Field(None, min_length=1, description="keep only these classes (null: all)")
    train_per_class: int | None = Field(
        None, ge=1, description="keep this many training images per class (few-shot); val and test stay whole"
    )
    mean: list[float] | None = Field(None, description="per-channel mean; null: measured on train")
    std: list[float] | None = Field(None, description="per-channel std; null: measured on train")
    augment: AugmentConfig = AugmentConfig()
    sampler: Literal["random", "balanced"] = Field(
        "random",
        description="how training draws an epoch: random (each image once) or balanced (with replacement, "
        "weighted by inverse class frequency: every class equally often)",
    )
    loader: Literal["auto", "memory", "stream"] = Field(
        "auto",
        description="memory: decode once into a uint8 cache; stream: decode files while training, in worker "
        "processes; auto: memory when the decoded training set fits data.memory_budget",
    )
    workers: Literal["auto"] | int = Field(
        "auto", description="decoding processes of the stream loader (0: in the training process); auto: one per core"
    )
    memory_budget: float | None = Field(
        None, gt=0, description="GiB the memory loader may hold ('8G', '512M' also); null: half the RAM or cgroup limit"
    )
    crop_pct: float | None = Field(
        None,
        gt=0,
        le=1,
        description="eval transform: resize the short side to image_size / crop_pct, then centre-crop image_size; "
        "null: 0.875 for image folders, 1.0 for fixed-size datasets",
    )
    flip_pairs: list[PointPair] = Field(default_factory=list, description="keypoints: points a flip swaps")
    nme_points: PointPair | None = Field(None, description="keypoints: NME's distance (null: the diagonal)")
    pck_alpha: float = Field(0.05, gt=0, le=1, description="keypoints: PCK's share of the NME's distance")

    @field_validator("channels", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        if isinstance(value, bool):  # YAML's `true` would otherwise pass for 1
            raise ValueError("should be 1, 3 or null")
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_or_count(cls, value: object) -> object:
        return auto_or_whole(value, 0, MAX_WORKERS)

    @field_validator("memory_budget", mode="before")
    @classmethod
    def _gibibytes(cls, value: object) -> object:
        if isinstance(value, str) and (match := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT])i?B?\s*", value, re.I)):
            return float(match.group(1)) * 1024.0 ** ("KMGT".index(match.group(2).upper()) - 2)
        return value

    @field_validator("classes", mode="before")
    @classmethod
    def _numbers_are_names(cls, value: object) -> object:
        # `classes: [5, 6]` names the digits' classes "5" and "6".
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    @model_validator(mode="after")
    def _fold_in_range(self) -> DataConfig:
        if self.cv_folds == 1 or (self.cv_folds and self.cv_fold >= self.cv_folds):
            raise ValueError(f"cv_fold {self.cv_fold} of cv_folds {self.cv_folds}: needs 2+ folds, fold below that")
        return self

    @model_validator(mode="after")
    def _normalisation_pairs(self) -> DataConfig:
        if (self.mean is None) != (self.std is None):
            raise ValueError("set both mean and std, or neither")
        if self.std is not None and (len(self.std) != len(self.mean or []) or min(self.std) <= 0):
            raise ValueError("std needs one positive value per mean value")
        return self


class MonitorConfig(Section):
    metric: str = Field("val_loss", description="a metrics.jsonl key of the model's task: val_loss, val_acc, ...")
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: max for accuracies and scores, min else")

    @field_validator("metric")
    @classmethod
    def _a_metric(cls, value: str) -> str:
        known = tasks.record_metrics()  # the losses, and each task's own (a classifier's accuracies)
        if value not in known:
            raise ValueError(f"should be one of: {', '.join(known)}{did_you_mean(value, known)}")
        return value

    @property
    def maximize(self) -> bool:
        return self.mode == "max" or (self.mode == "auto" and tasks.maximize(self.metric))


class EarlyStoppingConfig(Section):
    patience: int | None = Field(None, ge=1, description="epochs without improvement; null: off")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")


class TrainConfig(Section):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: Annotated[str, AfterValidator(device_name)] = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = Field("auto", description="autocast; auto: half on GPU where faster")
    threads: Literal["auto"] | int = Field(
        "auto", description="CPU threads; auto: one per core for large steps, else the faster as probed"
    )
    monitor: MonitorConfig = MonitorConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm to this")
    accumulate: int = Field(1, ge=1, description="batches whose gradients make one optimizer step")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="keep an EMA of the weights (e.g. 0.999)")
    channels_last: Literal["auto"] | bool = Field("auto", description="auto: on for networks with convolutions")
    compile: Literal["auto"] | bool = Field(False, description="torch.compile the model; auto: on CUDA")
    tta: Literal["none", "flip"] = Field(
        "none", description="test-time augmentation of val/test scores: flip averages image and mirror logits"
    )
    max_time: float | None = Field(None, gt=0, description="wall-clock budget in seconds ('90m' and '2h' work too)")
    limit_batches: int | None = Field(None, ge=1, description="at most this many batches per epoch and eval")
    tensorboard: bool = Field(False, description="write TensorBoard event files into RUN/tensorboard/")
    tracking: Trackers = Field([], description="experiment trackers: mlflow, tensorboard (or none)")
    mlflow: MlflowConfig = MlflowConfig()
    keep_checkpoints: int = Field(
        0, ge=0, description="keep the last N epochs' checkpoints/epoch-NNNN.pt (and the best epoch's); 0: last.pt only"
    )
    unfreeze_epoch: int | None = Field(
        None, ge=1, description="train with model.freeze for this many epochs, then train everything"
    )
    nonfinite_patience: int = Field(
        3, ge=1, description="fail the run when the loss is NaN or infinite for this many steps in a row"
    )

    @field_validator("max_time", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if not isinstance(value, str) or _is_float(value):  # 'inf': refused below as not finite
            return value
        if not (match := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", value)):
            raise ValueError("should be seconds, or a number with s, m or h: 90m, 1.5h")
        return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]

    @field_validator("threads", mode="before")
    @classmethod
    def _auto_or_positive(cls, value: object) -> object:
        return auto_or_whole(value, 1, MAX_THREADS)


class Config(Section):
    """The whole resolved configuration of a run."""

    data: DataConfig = DataConfig()
    model: SerializeAsAny[ModelParams]
    optimizer: SerializeAsAny[OptimizerParams]
    scheduler: SerializeAsAny[SchedulerParams]
    loss: SerializeAsAny[LossParams]
    train: TrainConfig = TrainConfig()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready values, in section order."""
        return self.model_dump(mode="json")
