"""One training run end to end: set up, resume, epochs, best weights, test score, summary."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltool import __version__
from dltool._io import atomic_write_json, atomic_write_text, dump_yaml
from dltool.config.schema import Config, MonitorConfig
from dltool.config.validate import validate_config
from dltool.engine.checkpoint import load_checkpoint, load_weights, save_weights
from dltool.engine.device import resolve_device, resolve_precision
from dltool.engine.distributed import any_across, process_group, sum_across, total_across, world_from_env
from dltool.engine.loop import CLASSIFICATION, EpochStats, evaluate, mean_metrics, train_one_epoch
from dltool.engine.observer import Observer
from dltool.engine.sanity import preflight
from dltool.engine.setup import Components, build_components, check_runnable
from dltool.engine.state import Progress, data_changes, restore_state, save_state, versions
from dltool.engine.tensorboard import Board, open_board
from dltool.engine.threads import cpu_threads, resolve_threads, training_step_flops
from dltool.engine.tta import with_tta
from dltool.errors import UsageError
from dltool.rundir import RunDir, create_run_dir


@dataclass(frozen=True)
class RunResult:
    """What ``train`` returns: ``status`` as in summary.json (completed, early_stopped, interrupted)."""

    run_dir: Path | None
    status: str
    summary: dict[str, Any]

    @property
    def best(self) -> dict[str, Any] | None:
        """The kept epoch: ``{epoch, metric, value}`` (None when no epoch had a finite metric)."""
        return self.summary.get("best")

    @property
    def test(self) -> dict[str, Any] | None:
        """The best weights' test score: ``{n, loss, accuracy}`` (None when interrupted)."""
        return self.summary.get("test")


def start_run(
    config: Config,
    source: str,
    *,
    runs_dir: Path = Path("runs"),
    name: str | None = None,
    observer: Observer | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """What ``dltool train`` does: check that the device and the dataset are here, then
    ``train`` into a new run dir, ``runs_dir/name`` or else ``runs_dir/<source>-<n>``.

    Under torchrun only rank 0 makes the run dir; the other ranks' ``run_dir`` is None.
    """
    check_runnable(config)
    run = create_run_dir(runs_dir, source, name) if world_from_env().is_main else None
    return train(config, run, observer=observer, stop=stop)


def train(
    config: Config,
    run: RunDir | None,
    *,
    observer: Observer | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Train ``config`` into the (new, empty) run directory ``run``.

    Setting ``stop`` ends training at the next step boundary with a resumable checkpoint.
    Under torchrun every rank calls this; only rank 0 passes a ``run`` and writes it.
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


RESUMABLE_OVERRIDES = {"train.epochs", "train.device", "train.tensorboard"}


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


def _execute(
    config: Config, run: RunDir | None, observer: Observer, stop: threading.Event, checkpoint: dict | None
) -> RunResult:
    world = world_from_env()
    device = resolve_device(config.train.device, rank_device=world.local_rank if world.distributed else None)
    precision = resolve_precision(config.train.amp, device)
    writer = run if world.is_main else None
    observer = observer if world.is_main else Observer()
    claim = writer.training() if writer else nullcontext()
    with claim, process_group(world, device), ExitStack() as scope:
        _seed_everything(config.train.seed + 1000 * world.rank)
        parts = build_components(config, device, precision, world)
        scope.enter_context(cpu_threads(_threads(parts)))
        notes = data_changes(parts, checkpoint) if checkpoint else []
        progress = restore_state(parts, checkpoint) if checkpoint else Progress()
        clock = _Clock(progress.wall_time_s)
        if writer:
            _write_run_files(writer, parts, progress)
        base = {
            "device": str(device),
            "amp": precision.name,
            "world_size": world.size,
            "threads": torch.get_num_threads(),
        }
        observer.on_start(
            {
                "run_dir": str(run.path) if run else None,
                "epochs": config.train.epochs,
                "batches": len(parts.train_batches),
                "resumed_at": progress.epoch,
                **base,
            }
        )
        for line in parts.data.messages() + notes:  # unreadable files, drawn splits, resizes, changes
            observer.on_message(line)
        for message in [] if checkpoint else [preflight(parts)]:
            observer.on_message(message)
        with open_board(writer, parts, progress.history) as board:
            try:
                status, reason = _fit(parts, writer, board, progress, clock, observer, stop)
                extra, confusion = {}, None
                if status != "interrupted":
                    test, confusion = _test_score(parts, writer, progress)
                    extra["test"] = test
            except KeyboardInterrupt:  # a second Ctrl-C: stop at once, last.pt is the previous one
                _finish(writer, board, _summary("interrupted", "signal", progress, clock, base))
                raise
            except BaseException as error:
                failure = f"{type(error).__name__}: {error}"
                _finish(writer, board, _summary("failed", "error", progress, clock, base, error=failure))
                raise
            summary = _summary(status, reason, progress, clock, base, **extra)
            _finish(writer, board, summary, confusion)
    return RunResult(run.path if run else None, status, summary)


class _Clock:
    """Wall time of a run over all its sessions."""

    def __init__(self, before: float):
        self.before, self.started = before, time.perf_counter()

    def total(self) -> float:
        return self.before + time.perf_counter() - self.started


def _fit(
    parts: Components,
    run: RunDir | None,
    board: Board | None,
    progress: Progress,
    clock: _Clock,
    observer: Observer,
    stop: threading.Event,
) -> tuple[str, str]:
    """The epoch loop; returns the run's status and why it ended."""
    train_cfg, step, world = parts.config.train, parts.step, parts.world
    batches = len(parts.train_batches)
    out_of_time = lambda: train_cfg.max_time is not None and clock.total() > train_cfg.max_time  # noqa: E731

    def should_stop() -> bool:
        return any_across(world, stop.is_set() or out_of_time())

    def after_step(stats: EpochStats) -> None:
        progress.batch += step.accumulate
        progress.step += 1
        observer.on_step(progress.epoch, min(progress.batch, batches), batches, stats.mean_loss)

    while progress.epoch < train_cfg.epochs:
        stats = EpochStats.from_state(progress.partial) if progress.partial else EpochStats()
        epoch_batches = parts.train_batches.batches(progress.epoch, start=progress.batch)
        finished = train_one_epoch(step, epoch_batches, stats, should_stop=should_stop, on_step=after_step)
        if not finished and stop.is_set():
            progress.partial = stats.state_dict()
            _save(run, parts, progress, clock)
            return "interrupted", "signal"
        record = _epoch_record(parts, progress, stats)
        step.scheduler.epoch_end(record[train_cfg.monitor.metric])
        progress.epoch, progress.batch, progress.partial = progress.epoch + 1, 0, None
        progress.history.append(record)
        if _improved(progress, record, train_cfg.monitor, train_cfg.early_stopping.min_delta) and run:
            save_weights(run.weights, parts.eval_model, _weights_metadata(parts))
        _save(run, parts, progress, clock)
        if run:
            run.append_metrics(record)
        if board:
            board.log_epoch(record)
        reason = observer.on_epoch(record)  # e.g. a tuner's pruner: stop after this epoch
        if any_across(world, reason is not None) and progress.epoch < train_cfg.epochs:
            return "interrupted", reason or "observer"
        if not finished:
            observer.on_message(f"time budget of {train_cfg.max_time:g}s used: stopping after epoch {progress.epoch}")
            return "completed", "max_time"
        patience = train_cfg.early_stopping.patience
        if patience is not None and progress.bad_epochs >= patience:
            observer.on_message(f"early stopping: {train_cfg.monitor.metric} has not improved in {patience} epochs")
            return "early_stopped", "early_stopping"
    return "completed", "epochs"


def _epoch_record(parts: Components, progress: Progress, stats: EpochStats) -> dict[str, Any]:
    """The metrics.jsonl line of the epoch that just ended (validation included)."""
    step = parts.step
    val_started = time.perf_counter()
    val, _ = _evaluate(parts, parts.val_batches)
    train_sums = sum_across(parts.world, {"loss_sum": stats.loss_sum, "correct": stats.correct, "n": stats.samples})
    train = mean_metrics(train_sums, step.task)
    record: dict[str, Any] = {
        "epoch": progress.epoch + 1,
        "step": progress.step,
        "lr": step.scheduler.get_last_lr()[0],
        "train_loss": train["loss"],
    }
    if step.task == CLASSIFICATION:
        record["train_acc"] = train["accuracy"]
    record["val_loss"] = val["loss"]
    if step.task == CLASSIFICATION:
        record["val_acc"] = val["accuracy"]
    record["epoch_time_s"] = stats.seconds + time.perf_counter() - val_started
    record["samples_per_s"] = train_sums["n"] / max(stats.seconds, 1e-9)
    return record


def _evaluate(parts: Components, batches: Any, confusion: bool = False) -> tuple[dict[str, float], torch.Tensor | None]:
    """Mean loss (and accuracy) of the kept weights, with the run's test-time augmentation,
    over every rank's shard of ``batches``; with ``confusion``, a classifier's confusion
    matrix too (rows true), else None."""
    step = parts.step
    model = with_tta(parts.eval_model, parts.config.train.tta)
    classes = len(parts.data.classes) if confusion and step.task == CLASSIFICATION else 0
    sums = evaluate(
        model, batches.batches(), step.precision, step.device, step.task, step.channels_last, confusion_classes=classes
    )
    matrix = sums.pop("confusion", None)
    metrics = mean_metrics(sum_across(parts.world, sums), step.task)
    return metrics, None if matrix is None else total_across(parts.world, matrix)


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


def _test_score(
    parts: Components, run: RunDir | None, progress: Progress
) -> tuple[dict[str, Any] | None, torch.Tensor | None]:
    """The best weights' loss (and accuracy) on the test split, with their confusion matrix
    when the run logs to TensorBoard (a classifier); every rank takes part."""
    if progress.best is None:  # no epoch with a finite metric: no best weights were kept
        return None, None
    if run is not None:
        parts.eval_model.load_state_dict(load_weights(run.weights))
    if parts.world.distributed:  # the other ranks get rank 0's best weights
        for tensor in parts.eval_model.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
    return _evaluate(parts, parts.test_batches, confusion=parts.config.train.tensorboard)


def _save(run: RunDir | None, parts: Components, progress: Progress, clock: _Clock) -> None:
    progress.wall_time_s = clock.total()
    if run:
        save_state(run.last_checkpoint, parts, progress)


def _write_run_files(run: RunDir, parts: Components, progress: Progress) -> None:
    v = versions()
    header = (
        f"# Resolved config of run {run.path.name} (dltool {v['dltool']}, torch {v['torch']}).\n"
        f"# `dltool train {run.config}` reproduces it.\n"
    )
    atomic_write_text(run.config, header + dump_yaml(parts.config.to_dict()))
    atomic_write_json(run.classes, parts.data.classes)
    # metrics.jsonl may hold an epoch the checkpoint does not (killed in between): realign.
    run.write_metrics(progress.history)


def _finish(
    run: RunDir | None, board: Board | None, summary: dict[str, Any], confusion: torch.Tensor | None = None
) -> None:
    """summary.json, and the scores and confusion matrix that end the TensorBoard events."""
    if run:
        run.write_summary(summary)
    if board:
        board.log_end(summary, confusion)


def _weights_metadata(parts: Components) -> dict[str, str]:
    """Enough to rebuild and feed the model from this one file (see evaluation.trained)."""
    return {
        "format": "pt",
        "in_shape": ",".join(map(str, parts.data.in_shape)),
        "num_classes": str(len(parts.data.classes)),
        "dltool_version": __version__,
        "config": json.dumps(parts.config.to_dict()),
        "classes": json.dumps(parts.data.classes),
    }


def _summary(status: str, reason: str, progress: Progress, clock: _Clock, base: dict[str, Any], **extra: Any) -> dict:
    return {
        "status": status,
        "stop_reason": reason,
        "epochs_run": progress.epoch,
        "best": progress.best,
        "final": progress.history[-1] if progress.history else None,
        **extra,
        "wall_time_s": round(clock.total(), 3),
        **base,
        "dltool_version": __version__,
        "torch_version": str(torch.__version__),
    }


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _threads(parts: Components) -> int:
    train_cfg = parts.config.train
    flops = lambda: training_step_flops(parts.model, parts.data.in_shape, train_cfg.batch_size)  # noqa: E731
    return resolve_threads(train_cfg.threads, parts.step.device, flops)
