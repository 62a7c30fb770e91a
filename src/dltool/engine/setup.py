"""Everything a run needs, built from its config: data, model, optimizer, schedule, loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import dltool.tasks as tasks
from dltool._text import counted
from dltool.config.schema import Config
from dltool.data import datasets
from dltool.data.arrays import Split, label_counts, target_kind
from dltool.data.augment import Augmenter
from dltool.data.fetch import fetch_missing
from dltool.data.files import FileSplit
from dltool.data.keypoints import flip_order
from dltool.data.loader import BatchLoader
from dltool.data.normalise import Normalise
from dltool.data.prepare import PreparedData, prepare_data, require_data, with_crop_pct
from dltool.data.splits import for_new_run
from dltool.data.stream import DecodePool, StreamLoader, resolve_workers
from dltool.engine.device import Precision, channels_last_wanted, on_cuda_when_auto, resolve_device
from dltool.engine.distributed import World
from dltool.engine.heap import reuse_wanted
from dltool.engine.init_from import load_init_weights, resolve_init_source
from dltool.engine.loop import Step
from dltool.engine.threads import usable_cores
from dltool.engine.trackers import require_trackers
from dltool.errors import ConfigError, DatasetError, option
from dltool.losses import losses
from dltool.models.build import build_model
from dltool.models.custom import source_record
from dltool.models.freezing import Frozen, find_head, freeze, parameter_counts, unfreeze
from dltool.models.summary import si_count, summarize
from dltool.models.target_scale import fit_target_scale, inherited_scale_line, standardise_errors
from dltool.optim import build_optimizer
from dltool.optim.groups import parameter_groups
from dltool.optim.schedules import build_scheduler

Loader = BatchLoader | StreamLoader


@dataclass(frozen=True)
class Components:
    """A run's parts. ``model`` is the plain network (for state dicts); ``step.model`` is what
    trains (compiled / DDP-wrapped); ``config`` has the measured normalisation filled in."""

    config: Config
    data: PreparedData
    model: nn.Module
    step: Step
    train_batches: Loader
    val_batches: Loader
    test_batches: Loader
    world: World
    frozen: Frozen = Frozen((), ())
    notes: tuple[str, ...] = ()  # for the log: what init-from loaded, trainable parameters

    @property
    def eval_model(self) -> nn.Module:
        """The weights to evaluate and keep: the EMA when there is one."""
        return self.step.ema.module if self.step.ema is not None else self.model

    def close(self) -> None:
        """Stop the stream loader's worker processes (the memory loader has none)."""
        if isinstance(self.train_batches, StreamLoader):
            self.train_batches.pool.close()


def build_components(
    config: Config,
    device: torch.device,
    precision: Precision,
    world: World,
    data: PreparedData | None = None,
    *,
    fresh: bool = True,
    report: Callable[[str], None] | None = None,
) -> Components:
    """Everything for ``config``; ``data`` (already prepared) skips loading ``config.data``.
    A ``fresh`` run reads its weights source (``model.init_from``) here; a resumed one does not.
    ``report`` receives what the stream loader meets while training (unreadable files)."""
    config = _resolved_data(absolute_paths(config), fresh)
    data = data or prepare_data(config.data)
    config = config.model_copy(update={"data": config.data.model_copy(update={"mean": data.mean, "std": data.std})})
    train_cfg = config.train
    task = _task_of(config, data)
    config, model, notes, channels_last = _model(config, data, device, fresh)
    head = find_head(model) if config.optimizer.backbone_lr_scale != 1 else None
    optimizer = build_optimizer(config.optimizer, parameter_groups(model, config.optimizer, head), device.type)
    frozen = freeze(model, config.model.freeze)  # after the optimizer: frozen weights may train later
    loaders = _loaders(config, data, device, world, report)
    notes += [_trainable_line(model, config, data.in_shape), *_stream_notes(loaders[0], config.data.workers)]
    steps_per_epoch = -(-len(loaders[0]) // train_cfg.accumulate)
    step = Step(
        model=_wrap(model, device, world, config),
        loss_fn=standardise_errors(
            losses.build(config.loss, task=task, num_classes=len(data.classes), class_counts=_class_counts(data)),
            model,
        ).to(device),
        optimizer=optimizer,
        scheduler=build_scheduler(
            config.scheduler,
            optimizer,
            epochs=train_cfg.epochs,
            steps_per_epoch=steps_per_epoch,
            maximize=train_cfg.monitor.maximize,
        ),
        scaler=torch.amp.GradScaler(device.type, enabled=precision.needs_scaler),
        precision=precision,
        device=device,
        task=task,
        accumulate=train_cfg.accumulate,
        grad_clip=train_cfg.grad_clip,
        ema=_ema(model, train_cfg.ema_decay),
        channels_last=channels_last,
    )
    train_batches, val_batches, test_batches = loaders
    return Components(config, data, model, step, train_batches, val_batches, test_batches, world, frozen, tuple(notes))


def _task_of(config: Config, data: PreparedData) -> str:
    """The model's task, once the data is known to hold what it trains on."""
    task = tasks.task_name(config.model)
    held, wanted = target_kind(data.splits["train"].labels), tasks.info(task).data
    if held != wanted:
        raise ConfigError(
            f"data.name: {config.data.name} has {held}; model {config.model.name!r} is a {task} model, "
            f"trained on {wanted} ({_head_for(config, held)}; a segmentation folder holds images/ and masks/)"
        )
    least, classes = tasks.info(task).min_classes, data.classes
    if len(classes) < least:
        raise DatasetError(
            f"{config.data.name}: {counted(len(classes), 'class', 'classes')} ({', '.join(classes) or 'none'}); a {task} model needs "
            f"{least} or more to tell apart: {tasks.info(task).few_classes_hint.format(least=least)}"
        )
    return task


def _head_for(config: Config, held: str) -> str:
    """The ``model.head`` that trains this model on data of kind ``held``, when there is one."""
    heads = [t for t in tasks.backbone_tasks() if tasks.info(t).data == held]
    heads += ["classifier"] if held == tasks.info("classification").data else []
    if not heads or not tasks.takes_heads(str(config.model.task)):
        return "see model.head"
    return f"{option('overrides', f'model.head={heads[0]}', python=f'model.head: {heads[0]}')} trains it on {held}"


def _model(
    config: Config, data: PreparedData, device: torch.device, fresh: bool
) -> tuple[Config, nn.Module, list[str], bool]:
    """The network on ``device``, its weights initialised (from the weights source when
    ``fresh``), in channels-last memory format where ``train.channels_last`` says (the last
    value); and ``config`` with the model params the source completed."""
    source = None
    if fresh:
        params, source = resolve_init_source(config.model)
        config = config.model_copy(update={"model": params})
    # A resumed run's checkpoint replaces the pretrained weights: they are not read again.
    params = config.model if fresh else config.model.without_weights()
    outputs = tasks.out_features(params, data.classes)
    model = build_model(params, in_shape=data.in_shape, num_classes=outputs)
    notes = list(getattr(model, "dltool_notes", []))  # a zoo model: the pretrained weights it loaded
    labels = data.splits["train"].labels
    scaled = fit_target_scale(model, labels, data.classes) if fresh else None  # a source's head brings its own
    if record := source_record(params):  # your own model: where its class came from
        notes.append(f"model class {record.reference} from {record.file} (sha256 {(record.sha256 or '?')[:12]})")
    if source:
        notes.append(load_init_weights(model, source, config.model.must_load, data.classes))
        scaled = scaled and (inherited_scale_line(model, labels, data.classes, source.label) or scaled)
    notes += [scaled] if scaled else []
    model = model.to(device)
    if hasattr(model, "init_from_data"):  # before the optimizer: it may freeze what it fits
        model.init_from_data(init_images(data, device))  # type: ignore[operator]
    channels_last = channels_last_wanted(config.train.channels_last, device, model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return config, model, notes, channels_last


def _trainable_line(model: nn.Module, config: Config, in_shape: tuple[int, ...]) -> str:
    """The totals of ``dltool summary``: parameters and one input's multiply-accumulates."""
    found = summarize(model, in_shape, name=config.model.name, depth=1)
    trainable, total = parameter_counts(model)
    freeze_spec = config.model.freeze if isinstance(config.model.freeze, str) else ", ".join(config.model.freeze)
    shape = "×".join(map(str, in_shape))
    return (
        f"parameters: {trainable:,} trainable of {total:,} (model.freeze: {freeze_spec}); "
        f"{si_count(found.macs)} MACs per {shape} input"
    )


def unfreeze_if_due(parts: Components, epoch: int) -> str | None:
    """At ``train.unfreeze_epoch`` (epochs counted from 0, so N frozen epochs come first),
    let everything ``model.freeze`` fixed train; the log line, or None when nothing changed.
    Called before every epoch, so a resumed run unfreezes exactly where it would have."""
    at = parts.config.train.unfreeze_epoch
    model, frozen = parts.model, parts.frozen
    if at is None or epoch < at or all(model.get_parameter(n).requires_grad for n in frozen.parameters):
        return None
    unfreeze(model, frozen)
    trainable, total = parameter_counts(model)
    return f"epoch {epoch + 1}: unfrozen (train.unfreeze_epoch {at}): {trainable:,} of {total:,} parameters train"


def check_runnable(config: Config) -> None:
    """Errors for what this machine lacks, raised before any dir is made: the device, the
    dataset's files, a zoo model's pretrained weights, the trackers the config asks for; and
    a malformed ``$DLTOOL_REUSE_HEAP``. A named dataset's files and the weights are fetched
    when they are missing (the commands fetch the dataset before, showing progress)."""
    resolve_device(config.train.device)
    reuse_wanted()
    fetch_missing(config.data.name, config.data.root)
    require_data(config.data)  # a photo recipe's placeholder name before its weights
    config.model.fetch_weights()
    require_trackers(config)


def _resolved_data(config: Config, fresh: bool) -> Config:
    # The evaluation crop is fixed before any decoding (an image folder's cache is made with it);
    # a new run's test split is held out, a resumed run keeps the splits it was recorded with.
    data = with_crop_pct(config.data)
    return config.model_copy(update={"data": for_new_run(data) if fresh else data})


def absolute_paths(config: Config) -> Config:
    """``config`` with its folder paths (an image-folder dataset, the data root, a model's
    ``path_fields``) made absolute, so the run's config.yaml works from any directory."""
    data_update = {}
    if config.data.name not in datasets and Path(config.data.name).exists():
        data_update["name"] = str(Path(config.data.name).resolve())
    if config.data.root is not None:
        data_update["root"] = str(Path(config.data.root).expanduser().resolve())
    model_update = {
        key: str(Path(value).expanduser().resolve())
        for key in config.model.path_fields
        if (value := getattr(config.model, key)) is not None
    }
    return config.model_copy(
        update={
            "data": config.data.model_copy(update=data_update),
            "model": config.model.model_copy(update=model_update),
        }
    )


def _class_counts(data: PreparedData) -> list[int] | None:
    """Training samples per class, in class order (for ``class_weights: balanced``); of masks,
    pixels per class (ignored pixels, 255, left out); None for points and values, and for
    streamed masks (read with their images, never all at once)."""
    train = data.splits["train"]
    labels = train.labels
    if target_kind(labels) not in ("labels", "masks") or (isinstance(train, FileSplit) and train.masks is not None):
        return None
    return [int(count) for count in label_counts(labels, len(data.classes))]


# Training images a model fits itself to at initialisation (airbench's whitening stem):
# 2,048 CIFAR images give ~2M patches, plenty for a 12×12 covariance.
INIT_IMAGES = 2048


def init_images(data: PreparedData, device: torch.device) -> torch.Tensor:
    """The first ``INIT_IMAGES`` training images, normalised as training feeds them."""
    train = data.splits["train"]
    images = torch.from_numpy(train.take(np.arange(min(INIT_IMAGES, len(train)))).images).to(device)
    return Normalise(data.mean, data.std, device)(images)


def _loaders(
    config: Config, data: PreparedData, device: torch.device, world: World, report: Callable[[str], None] | None
) -> tuple[Loader, Loader, Loader]:
    """Train, val and test batches: from arrays on the device, or streamed from the files."""
    batch_size = config.train.batch_size
    if batch_size % world.size:
        raise ConfigError(
            f"train.batch_size {batch_size} must divide by the {world.size} processes "
            "(it is the global batch; each process takes an equal share)"
        )
    common: dict[str, Any] = {
        "batch_size": batch_size // world.size,
        "mean": data.mean,
        "std": data.std,
        "device": device,
        "shard": (world.rank, world.size),
        "limit": config.train.limit_batches,
    }
    train: dict[str, Any] = {
        "shuffle": True,
        "seed": config.train.seed,
        "num_classes": len(data.classes),
        "sampler": config.data.sampler,
    }
    splits = [data.splits[name] for name in ("train", "val", "test")]
    order = flip_order(config.data.flip_pairs, data.classes) if target_kind(splits[0].labels) == "points" else None
    if not isinstance(splits[0], FileSplit):
        arrays = cast(list[Split], splits)
        first = BatchLoader(arrays[0], augment=config.data.augment, flip_order=order, **train, **common)
        return first, BatchLoader(arrays[1], **common), BatchLoader(arrays[2], read_once=True, **common)
    augmenter = Augmenter(config.data.augment, config.train.seed)
    workers = resolve_workers(config.data.workers)
    augmenters = [augmenter if augmenter.enabled else None, None, None]
    pool = DecodePool(cast(list[FileSplit], splits), workers, device, data.mean, data.std, augmenters, order)
    stream = {key: common[key] for key in ("batch_size", "shard", "limit")}
    loaders = [StreamLoader(pool, i, report=report, **(train if i == 0 else {}), **stream) for i in range(3)]
    return loaders[0], loaders[1], loaders[2]


def _stream_notes(loader: Loader, setting: int | str) -> list[str]:
    """The stream loader's line for the log: who decodes the files."""
    if not isinstance(loader, StreamLoader):
        return []
    count = loader.pool.workers
    if count == 0:
        return ["data.loader stream: files decoded in the training process (data.workers 0)"]
    why = "data.workers auto: one per core, at most 8" if setting == "auto" else "data.workers"
    if count > (cores := usable_cores()):
        why += f"; more than the {counted(cores, 'core')} this process may use, which they share"
    decode = "decodes" if count == 1 else "decode"
    return [f"data.loader stream: {counted(count, 'worker process', 'worker processes')} {decode} the files ({why})"]


def _wrap(model: nn.Module, device: torch.device, world: World, config: Config) -> nn.Module:
    if world.distributed and config.train.unfreeze_epoch is not None:
        # DDP registers the parameters that train when it wraps the model, and only those.
        raise ConfigError(
            "train.unfreeze_epoch is not supported under torchrun yet; "
            f"train frozen, then {option('init_from', python='model.init_from')} that run"
        )
    if world.distributed:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    compile_model = on_cuda_when_auto(config.train.compile, device)
    return cast(nn.Module, torch.compile(model)) if compile_model else model


def _ema(model: nn.Module, decay: float | None) -> AveragedModel | None:
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)  # type: ignore[no-untyped-call]
