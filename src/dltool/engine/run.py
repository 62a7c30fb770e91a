"""One training run end to end: set up, resume, epochs, best weights, test score, summary."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import dltool.tasks as tasks
from dltool._signals import stop_reason
from dltool.config.schema import Config
from dltool.engine.autoset import pick_precision, pick_threads
from dltool.engine.checkpoint import save_weights, seeded
from dltool.engine.device import resolve_device, resolve_precision
from dltool.engine.distributed import StopVote, any_across, process_group, world_from_env
from dltool.engine.divergence import check_finite_loss
from dltool.engine.heap import reused_heap
from dltool.engine.loop import EpochStats, EvaluationStopped, train_one_epoch
from dltool.engine.observer import Observer
from dltool.engine.record import (
    Clock,
    finish,
    finish_failed,
    keep_checkpoints,
    save_progress,
    summary_record,
    weights_metadata,
    write_run_files,
)
from dltool.engine.result import RunResult, ended_run, nothing_to_resume
from dltool.engine.sanity import preflight
from dltool.engine.scores import epoch_record, improved, test_score
from dltool.engine.setup import Components, build_components, check_runnable, unfreeze_if_due
from dltool.engine.state import (
    Progress,
    check_epochs_left,
    data_changes,
    load_resume_state,
    restore_state,
    resumed_config,
    split_sizes,
)
from dltool.engine.threads import cpu_threads
from dltool.engine.trackers import Trackers, open_trackers
from dltool.models.custom import source_record
from dltool.rundir import RunDir, Summary, create_run_dir, refuse_read_only


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
    with run.discarded_if_unused() if run else nullcontext():  # stopped before its first file: no empty dir
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
    or change ``train.device``, nothing else (a different config is a different run). A run
    that ended (completed or early stopped) at the epochs asked for is returned as it is."""
    refuse_read_only(run.path, "copy the run dir to a folder you can write and resume the copy")
    checkpoint = load_resume_state(run, RESUME_ENTRIES)
    config = resumed_config(checkpoint["config"], overrides or {})
    check_epochs_left(config, checkpoint)
    observer = observer or Observer()
    if ended := _already_ended(run, config, checkpoint, observer):  # it would only score its test split again
        return ended
    return _execute(config, run, observer, stop or threading.Event(), checkpoint)


def _already_ended(run: RunDir, config: Config, checkpoint: dict[str, Any], observer: Observer) -> RunResult | None:
    """``run`` as it ended, if it did (``ended_run``), its dead writers' temporaries swept;
    refused while another process trains it."""
    main = world_from_env().is_main
    with run.training() if main else nullcontext():
        ended = ended_run(run, config, checkpoint)
    if ended and main:
        observer.on_message(nothing_to_resume(ended))
    return ended


RESUME_ENTRIES = ("config", "classes", "in_shape", "optimizer", "scheduler", "scaler", "progress")  # and ranks (or rng)


def _execute(
    config: Config, run: RunDir | None, observer: Observer, stop: threading.Event, checkpoint: dict[str, Any] | None
) -> RunResult:
    started = time.perf_counter()  # setup: everything before the first step
    world = world_from_env()
    device = resolve_device(config.train.device, rank_device=world.local_rank if world.distributed else None)
    precision = resolve_precision(config.train.amp, device)
    writer = run if world.is_main else None
    # Rank 0 reports the run; every rank reports the files of its own shard it cannot read.
    report = observer.on_message if world.is_main else _prefixed(observer.on_message, f"rank {world.rank}: ")
    observer = observer if world.is_main else Observer()
    claim = writer.training() if writer else nullcontext()
    with claim, process_group(world, device), seeded(config.train.seed + 1000 * world.rank), ExitStack() as scope:
        parts = build_components(config, device, precision, world, fresh=checkpoint is None, report=report)
        scope.callback(parts.close)
        parts, amp = pick_precision(parts, checkpoint)
        notes = data_changes(parts, checkpoint) if checkpoint else []
        source = run.last_checkpoint if run else "the checkpoint"
        progress = restore_state(parts, checkpoint, source) if checkpoint else Progress()
        # Before the run's first file: a tracker that cannot start (an MLflow store that refuses
        # the run) leaves no run dir without a summary behind.
        board = scope.enter_context(open_trackers(writer, parts, progress.history, report))
        threads = pick_threads(parts, kept=progress.threads)
        scope.enter_context(cpu_threads(threads.value))
        scope.enter_context(reused_heap(device.type == "cpu"))
        progress.threads, progress.amp = threads.value, amp.value.name
        notes += [f"threads: {threads.value} (auto: {threads.reason})"] if threads.reason else []
        notes += [f"amp: {amp.value.name} (auto: {amp.reason})"] if amp.reason else []
        if writer:
            write_run_files(writer, parts, progress)
        base = {
            "device": str(device),
            "amp": amp.value.name,
            "world_size": world.size,
            "threads": torch.get_num_threads(),
            "test_is_val": parts.data.test_is_val,
            "split_sizes": split_sizes(parts),
            "model_source": record.to_dict() if (record := source_record(parts.config.model)) else None,
        }
        _announce(observer, run, parts, progress, base, notes, fresh=checkpoint is None)
        progress.setup_time_s += time.perf_counter() - started
        clock = Clock(progress.wall_time_s)
        session = _Session(parts, writer, board, progress, clock, observer, stop)
        status, summary = _fit_and_score(session, base)
    return RunResult(run.path if run else None, status, summary.to_dict(), tasks.task_name(config.model))


def _prefixed(say: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: say(prefix + line)


def _announce(
    observer: Observer,
    run: RunDir | None,
    parts: Components,
    progress: Progress,
    base: dict[str, Any],
    notes: list[str],
    fresh: bool,
) -> None:
    """A session's start for the observer: what runs where, how long the data took to load,
    the data's and the checkpoint's notes (unreadable files, drawn splits, resizes, changes),
    then a new run's preflight check."""
    observer.on_start(
        {
            "run_dir": str(run.path) if run else None,
            "epochs": parts.config.train.epochs,
            "batches": len(parts.train_batches),
            "resumed_at": progress.epoch,
            **base,
        }
    )
    lines = [parts.data.ready_line(), *parts.data.messages(), *parts.notes, *notes]  # notes: init-from, parameters
    for line in lines:
        observer.on_message(line)
    if fresh:
        observer.on_message(preflight(parts))


@dataclass(frozen=True)
class _Session:
    """What the epochs of one session (a run, or its resumption) work with; ``run`` and
    ``board`` are None on ranks other than 0."""

    parts: Components
    run: RunDir | None
    board: Trackers | None
    progress: Progress
    clock: Clock
    observer: Observer
    stop: threading.Event

    def out_of_time(self) -> bool:
        max_time = self.parts.config.train.max_time
        return max_time is not None and self.clock.total() > max_time


def _fit_and_score(session: _Session, base: dict[str, Any]) -> tuple[str, Summary]:
    """The epochs, then the best weights' test score; summary.json however the run ends."""
    parts, run, board, progress, clock = session.parts, session.run, session.board, session.progress, session.clock
    try:
        status, reason = _fit(session)
        extra, confusion = {}, None
        if status != "interrupted":
            try:
                test, confusion = test_score(parts, run, progress, session.stop.is_set)
                extra["test"] = test
            except EvaluationStopped:  # last.pt and the best weights are whole: a resume scores it
                status, reason = "interrupted", stop_reason(session.stop)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, last.pt is the previous one
        finish(run, board, summary_record("interrupted", "signal", progress, clock, base))
        raise
    except BaseException as error:
        failure = f"{type(error).__name__}: {error}"
        finish_failed(run, board, error, summary_record("failed", "error", progress, clock, base, error=failure))
        raise
    summary = summary_record(status, reason, progress, clock, base, **extra)
    finish(run, board, summary, confusion)
    return status, summary


def _fit(session: _Session) -> tuple[str, str]:
    """The epoch loop; returns the run's status and why it ended."""
    parts, progress, observer, stop = session.parts, session.progress, session.observer, session.stop
    train_cfg, step, world = parts.config.train, parts.step, parts.world
    batches = len(parts.train_batches)

    vote = StopVote(world)  # under torchrun, ranks agree every ~0.2 s, not at every step

    def should_stop() -> bool:
        return vote(stop.is_set() or session.out_of_time())

    def after_step(stats: EpochStats) -> None:
        progress.batch += step.accumulate
        progress.step += 1
        observer.on_step(progress.epoch, min(progress.batch, batches), batches, stats.mean_loss)

    while progress.epoch < train_cfg.epochs:
        if line := unfreeze_if_due(parts, progress.epoch):
            observer.on_message(line)
        stats = EpochStats.from_state(progress.partial) if progress.partial else EpochStats()
        vote.new_epoch()
        epoch_batches = parts.train_batches.batches(progress.epoch, start=progress.batch)
        finished = train_one_epoch(step, epoch_batches, stats, should_stop=should_stop, on_step=after_step)
        if not finished and stop.is_set():
            return _stopped(session, stats)
        try:
            record = _end_epoch(session, stats)
        except EvaluationStopped:  # trained, its validation cut short: a resume validates it
            return _stopped(session, stats)
        reason = observer.on_epoch(record)  # e.g. a tuner's pruner: stop after this epoch
        if any_across(world, reason is not None) and progress.epoch < train_cfg.epochs:
            return "interrupted", reason or "observer"
        if ended := _ended(parts, progress, finished, observer):
            return ended
    return "completed", "epochs"


def _stopped(session: _Session, stats: EpochStats) -> tuple[str, str]:
    """A stop within an epoch: last.pt holds the epoch so far, for --resume."""
    session.progress.partial = stats.state_dict()
    save_progress(session.run, session.parts, session.progress, session.clock)
    return "interrupted", stop_reason(session.stop)


def _end_epoch(session: _Session, stats: EpochStats) -> dict[str, Any]:
    """Score the epoch that just ended, step the scheduler on it, keep the weights when they
    are the best so far, save last.pt and log the record; returns the record."""
    parts, run, progress = session.parts, session.run, session.progress
    check_finite_loss(parts, progress, stats)
    monitor, min_delta = parts.config.train.monitor, parts.config.train.early_stopping.min_delta
    row = epoch_record(parts, progress, stats, session.stop.is_set)
    record = row.to_dict()  # the dict the checkpoint's history, observers and TensorBoard take
    parts.step.scheduler.epoch_end(record[monitor.metric])
    progress.epoch, progress.batch, progress.partial = progress.epoch + 1, 0, None
    progress.history.append(record)
    if improved(progress, record, monitor, min_delta) and run:
        save_weights(run.weights, parts.eval_model, weights_metadata(parts))
    save_progress(run, parts, progress, session.clock)
    if run:
        keep_checkpoints(run, progress, parts.config.train.keep_checkpoints)
        run.append_metrics(row)
    if session.board:
        session.board.log_epoch(record)
    return record


def _ended(parts: Components, progress: Progress, finished: bool, observer: Observer) -> tuple[str, str] | None:
    """The status and reason when the time budget or early stopping ends the run after this epoch."""
    train_cfg = parts.config.train
    if not finished:
        observer.on_message(f"time budget of {train_cfg.max_time:g}s used: stopping after epoch {progress.epoch}")
        return "completed", "max_time"
    patience = train_cfg.early_stopping.patience
    if patience is not None and progress.bad_epochs >= patience:
        observer.on_message(f"early stopping: {train_cfg.monitor.metric} has not improved in {patience} epochs")
        return "early_stopped", "early_stopping"
    return None
