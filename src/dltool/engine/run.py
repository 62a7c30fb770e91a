"""One training run end to end: set up, resume, epochs, best weights, test score, summary."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltool import __version__
from dltool._io import atomic_write_json, atomic_write_text, dump_yaml
from dltool.config.schema import Config, MonitorConfig
from dltool.config.validate import validate_config
from dltool.data.loader import BatchLoader
from dltool.data.prepare import PreparedData, prepare_data
from dltool.engine.checkpoint import (
    capture_rng, load_checkpoint, load_weights, restore_rng, save_checkpoint, save_weights,
)
from dltool.engine.device import resolve_device, resolve_precision, resolve_threads
from dltool.engine.loop import EpochStats, Step, evaluate, train_one_epoch
from dltool.engine.observer import Observer
from dltool.errors import UsageError
from dltool.losses import losses
from dltool.models.build import build_model
from dltool.optim import optimizers
from dltool.optim.schedules import build_scheduler
from dltool.rundir import RunDir

CHECKPOINT_FORMAT = "dltool-checkpoint/1"


@dataclass
class Progress:
    """The bookkeeping of a run that a checkpoint carries besides the tensors."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches done in the current epoch
    step: int = 0  # optimizer steps so far
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    bad_epochs: int = 0  # epochs since the monitored metric last improved
    wall_time_s: float = 0.0  # over every session of the run
    partial: dict[str, Any] | None = None  # EpochStats of an unfinished epoch


@dataclass(frozen=True)
class RunResult:
    """What ``train`` returns: ``status`` is the summary's (completed, early_stopped, interrupted)."""

    run_dir: Path
    status: str
    summary: dict[str, Any]


def train(
    config: Config,
    run: RunDir,
    *,
    observer: Observer | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Train ``config`` into the (new, empty) run directory ``run``.

    Setting ``stop`` ends training at the next step boundary with a resumable checkpoint.
    """
    return _execute(config, run, observer or Observer(), stop or threading.Event(), checkpoint=None)


def resume(
    run: RunDir,
    *,
    overrides: dict[str, Any] | None = None,
    observer: Observer | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Continue ``run`` from ``checkpoints/last.pt``; ``overrides`` may raise ``train.epochs``
    or change ``train.device``, nothing else (a different config is a different run)."""
    checkpoint = load_checkpoint(run.last_checkpoint)
    config = _resumed_config(checkpoint["config"], overrides or {})
    return _execute(config, run, observer or Observer(), stop or threading.Event(), checkpoint)


RESUMABLE_OVERRIDES = {"train.epochs", "train.device"}


def _resumed_config(saved: dict[str, Any], overrides: dict[str, Any]) -> Config:
    changed = set(overrides) - RESUMABLE_OVERRIDES
    if changed:
        raise UsageError(
            f"cannot change {', '.join(sorted(changed))} when resuming; "
            f"only {', '.join(sorted(RESUMABLE_OVERRIDES))} (start a new run for the rest)"
        )
    raw = {section: dict(values) for section, values in saved.items()}
    for key, value in overrides.items():
        section, leaf = key.split(".")
        raw[section][leaf] = value
    return validate_config(raw)


@dataclass(frozen=True)
class _Setup:
    config: Config
    data: PreparedData
    step: Step
    train_batches: BatchLoader
    val_batches: BatchLoader
    test_batches: BatchLoader


def _execute(
    config: Config, run: RunDir, observer: Observer, stop: threading.Event, checkpoint: dict | None
) -> RunResult:
    device = resolve_device(config.train.device)
    precision = resolve_precision(config.train.amp, device)
    with _cpu_threads(resolve_threads(config.train.threads)):
        _seed_everything(config.train.seed)
        setup = _set_up(config, device, precision)
        progress = _restore(setup, checkpoint, run) if checkpoint else Progress()
        clock = _Clock(progress.wall_time_s)
        _write_run_files(run, setup)
        base = {"device": str(device), "amp": precision.name, "world_size": 1,
                "threads": torch.get_num_threads()}
        observer.on_start({"run_dir": str(run.path), "epochs": config.train.epochs,
                           "batches": len(setup.train_batches), "resumed_at": progress.epoch, **base})
        for line in setup.data.messages():  # unreadable files, drawn splits, resizes
            observer.on_message(line)
        try:
            status = _fit(setup, run, progress, clock, observer, stop)
            extra = {"test": _test_score(setup, run)} if status != "interrupted" else {}
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, last.pt is the previous one
            run.write_summary(_summary("interrupted", progress, clock, base))
            raise
        except BaseException as error:
            run.write_summary(_summary("failed", progress, clock, base, error=f"{type(error).__name__}: {error}"))
            raise
        summary = _summary(status, progress, clock, base, **extra)
        run.write_summary(summary)
    return RunResult(run.path, status, summary)


class _Clock:
    """Wall time of a run over all its sessions."""

    def __init__(self, before: float):
        self.before, self.started = before, time.perf_counter()

    def total(self) -> float:
        return self.before + time.perf_counter() - self.started


def _set_up(config: Config, device: torch.device, precision: Any) -> _Setup:
    data = prepare_data(config.data)
    config = config.model_copy(update={"data": config.data.model_copy(update={"mean": data.mean, "std": data.std})})
    model = build_model(config.model, in_shape=data.in_shape, num_classes=len(data.classes)).to(device)
    optimizer = optimizers.build(config.optimizer, params=model.parameters())
    loader_args = {"batch_size": config.train.batch_size, "mean": data.mean, "std": data.std, "device": device}
    train_batches = BatchLoader(data.splits["train"], shuffle=True, seed=config.train.seed,
                                augment=config.data.augment, **loader_args)
    scheduler = build_scheduler(
        config.scheduler, optimizer, epochs=config.train.epochs, steps_per_epoch=len(train_batches)
    )
    step = Step(
        model=model,
        loss_fn=losses.build(config.loss).to(device),
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(device.type, enabled=precision.needs_scaler),
        precision=precision,
        device=device,
    )
    return _Setup(
        config, data, step, train_batches,
        BatchLoader(data.splits["val"], **loader_args),
        BatchLoader(data.splits["test"], **loader_args),
    )


def _fit(
    setup: _Setup, run: RunDir, progress: Progress, clock: _Clock, observer: Observer, stop: threading.Event
) -> str:
    """The epoch loop; returns the run's status."""
    train_cfg, step = setup.config.train, setup.step
    batches = len(setup.train_batches)

    def after_step(stats: EpochStats) -> None:
        progress.batch += 1
        progress.step += 1
        observer.on_step(progress.epoch, progress.batch, batches, stats.mean_loss)

    while progress.epoch < train_cfg.epochs:
        stats = EpochStats.from_state(progress.partial) if progress.partial else EpochStats()
        epoch_batches = setup.train_batches.batches(progress.epoch, start=progress.batch)
        if not train_one_epoch(step, epoch_batches, stats, should_stop=stop.is_set, on_step=after_step):
            progress.partial = stats.state_dict()
            _save(run, setup, progress, clock)
            return "interrupted"
        val_started = time.perf_counter()
        val = evaluate(step.model, setup.val_batches.batches(), step.precision, step.device)
        record = {
            "epoch": progress.epoch + 1,
            "step": progress.step,
            "lr": step.scheduler.get_last_lr()[0],
            "train_loss": stats.mean_loss(),
            "train_acc": stats.accuracy(),
            "val_loss": val.loss,
            "val_acc": val.accuracy,
            "epoch_time_s": stats.seconds + time.perf_counter() - val_started,
            "samples_per_s": stats.samples / max(stats.seconds, 1e-9),
        }
        progress.epoch, progress.batch, progress.partial = progress.epoch + 1, 0, None
        progress.history.append(record)
        if _improved(progress, record, train_cfg.monitor, train_cfg.early_stopping.min_delta):
            save_weights(run.weights, step.model, _weights_metadata(setup))
        _save(run, setup, progress, clock)
        run.append_metrics(record)
        observer.on_epoch(record)
        patience = train_cfg.early_stopping.patience
        if patience is not None and progress.bad_epochs >= patience:
            observer.on_message(f"early stopping: {train_cfg.monitor.metric} has not improved in {patience} epochs")
            return "early_stopped"
    return "completed"


def _improved(progress: Progress, record: dict[str, Any], monitor: MonitorConfig, min_delta: float) -> bool:
    """Update best/bad_epochs with this epoch; True when it is the new best."""
    value = record[monitor.metric]
    best = progress.best["value"] if progress.best else None
    better = math.isfinite(value) and (
        best is None or (value > best + min_delta if monitor.maximize else value < best - min_delta)
    )
    if better:
        progress.best = {"epoch": record["epoch"], "metric": monitor.metric, "value": value}
        progress.bad_epochs = 0
    else:
        progress.bad_epochs += 1
    return better


def _test_score(setup: _Setup, run: RunDir) -> dict[str, Any] | None:
    """The best weights' loss and accuracy on the test split."""
    if not run.weights.is_file():
        return None
    setup.step.model.load_state_dict(load_weights(run.weights))
    result = evaluate(setup.step.model, setup.test_batches.batches(), setup.step.precision, setup.step.device)
    return {"loss": result.loss, "accuracy": result.accuracy, "n": result.samples}


def _save(run: RunDir, setup: _Setup, progress: Progress, clock: _Clock) -> None:
    step = setup.step
    progress.wall_time_s = clock.total()
    save_checkpoint(run.last_checkpoint, {
        "format": CHECKPOINT_FORMAT,
        "model": step.model.state_dict(),
        "optimizer": step.optimizer.state_dict(),
        "scheduler": step.scheduler.state_dict(),
        "scaler": step.scaler.state_dict(),
        "progress": asdict(progress),
        "rng": capture_rng(),
        "config": setup.config.to_dict(),
        "classes": setup.data.classes,
        "versions": _versions(),
    })


def _restore(setup: _Setup, checkpoint: dict[str, Any], run: RunDir) -> Progress:
    step = setup.step
    step.model.load_state_dict(checkpoint["model"])
    step.optimizer.load_state_dict(checkpoint["optimizer"])
    step.scheduler.load_state_dict(checkpoint["scheduler"])
    step.scaler.load_state_dict(checkpoint["scaler"])
    restore_rng(checkpoint["rng"])
    progress = Progress(**checkpoint["progress"])
    # metrics.jsonl may hold an epoch the checkpoint does not (killed in between): realign.
    run.write_metrics(progress.history)
    return progress


def _write_run_files(run: RunDir, setup: _Setup) -> None:
    v = _versions()
    header = (f"# Resolved config of run {run.path.name} (dltool {v['dltool']}, torch {v['torch']}).\n"
              f"# `dltool train {run.config}` reproduces it.\n")
    atomic_write_text(run.config, header + dump_yaml(setup.config.to_dict()))
    atomic_write_json(run.classes, setup.data.classes)


def _weights_metadata(setup: _Setup) -> dict[str, str]:
    return {"format": "pt", "in_shape": ",".join(map(str, setup.data.in_shape)),
            "num_classes": str(len(setup.data.classes)), "dltool_version": __version__}


def _summary(status: str, progress: Progress, clock: _Clock, base: dict[str, Any], **extra: Any) -> dict:
    return {
        "status": status,
        "epochs_run": progress.epoch,
        "best": progress.best,
        "final": progress.history[-1] if progress.history else None,
        **extra,
        "wall_time_s": round(clock.total(), 3),
        **base,
        "dltool_version": __version__,
        "torch_version": str(torch.__version__),
    }


def _versions() -> dict[str, str]:
    return {"dltool": __version__, "torch": str(torch.__version__)}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def _cpu_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
