"""What a run measures: each epoch's metrics.jsonl record, the kept weights' scores on a
split (with the run's test-time augmentation, summed over every rank), and which epoch is best."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

import dltool.tasks as tasks
from dltool.config.schema import MonitorConfig
from dltool.engine.checkpoint import load_weights
from dltool.engine.distributed import batch_stop_vote, sum_across, total_across
from dltool.engine.loop import EpochStats, evaluate, mean_metrics
from dltool.engine.setup import Components
from dltool.engine.state import Progress
from dltool.engine.trackers import tracker_names
from dltool.engine.tta import with_tta
from dltool.models.target_scale import target_units
from dltool.rundir import EpochRecord, RunDir


def epoch_record(
    parts: Components, progress: Progress, stats: EpochStats, should_stop: Callable[[], bool] = lambda: False
) -> EpochRecord:
    """The metrics.jsonl line of the epoch that just ended (validation included; ``should_stop``
    as for ``loop.evaluate``)."""
    step = parts.step
    val_started = time.perf_counter()
    val, _ = evaluate_kept(parts, parts.val_batches, should_stop=should_stop)
    task = tasks.get(step.task)
    # Training measures the loss and what ``Task.correct`` counts; the task's other sums are 0.
    measured: dict[str, torch.Tensor | int] = {"loss_sum": stats.loss_sum, "correct": stats.correct, "n": stats.samples}
    train_sums = sum_across(parts.world, {**task.zero_sums(0, stats.loss_sum.device), **measured})
    train = mean_metrics(train_sums, step.task)
    metrics = task.record(train, val)
    return EpochRecord(
        epoch=progress.epoch + 1,
        step=progress.step,
        lr=step.scheduler.get_last_lr()[0],
        train_loss=train["loss"],
        train_acc=metrics.pop("train_acc", None),
        val_loss=val["loss"],
        val_acc=metrics.pop("val_acc", None),
        metrics=metrics,
        epoch_time_s=stats.seconds + time.perf_counter() - val_started,
        samples_per_s=train_sums["n"] / max(stats.seconds, 1e-9),
    )


def evaluate_kept(
    parts: Components, batches: Any, confusion: bool = False, should_stop: Callable[[], bool] = lambda: False
) -> tuple[dict[str, float], torch.Tensor | None]:
    """Mean loss (and accuracy) of the kept weights, with the run's test-time augmentation,
    over every rank's shard of ``batches``; with ``confusion``, a classifier's confusion
    matrix too (rows true), else None. ``should_stop``: as for ``loop.evaluate``, agreed on by
    every rank (``batch_stop_vote``)."""
    step = parts.step
    model = with_tta(parts.eval_model, parts.config.train.tta)
    classes = len(parts.data.classes) if confusion or tasks.info(step.task).class_sums else 0
    should_stop = batch_stop_vote(parts.world, should_stop, len(batches))  # every rank stops at one batch
    sums = evaluate(
        model, batches.batches(), step.precision, step.device, step.task, step.channels_last, classes, should_stop
    )
    matrix = sums.pop("confusion", None)
    total = None if matrix is None else total_across(parts.world, matrix)
    summed = sum_across(parts.world, sums) | target_units(parts.model)  # a regression's loss in sd
    metrics = mean_metrics(summed if total is None else summed | {"confusion": total}, step.task)
    return metrics, total if confusion else None


def improved(progress: Progress, record: dict[str, Any], monitor: MonitorConfig, min_delta: float) -> bool:
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


def test_score(
    parts: Components, run: RunDir | None, progress: Progress, should_stop: Callable[[], bool] = lambda: False
) -> tuple[dict[str, Any] | None, torch.Tensor | None]:
    """The best weights' loss (and accuracy) on the test split, with their confusion matrix
    when the run logs to TensorBoard (a classifier); every rank takes part. ``should_stop``
    (agreed on by the ranks, see ``evaluate_kept``) ends it early with ``EvaluationStopped``."""
    if progress.best is None:  # no epoch with a finite metric: no best weights were kept
        return None, None
    if run is not None:
        parts.eval_model.load_state_dict(load_weights(run.weights))
    if parts.world.distributed:  # the other ranks get rank 0's best weights
        for tensor in parts.eval_model.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
    confusion = "tensorboard" in tracker_names(parts.config)
    return evaluate_kept(parts, parts.test_batches, confusion, should_stop)
