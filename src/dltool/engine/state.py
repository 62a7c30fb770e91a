"""What a checkpoint carries, and how a run is restored from one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from dltool._text import composed, counted
from dltool._version import __version__
from dltool.config.schema import Config
from dltool.config.validate import validate_config
from dltool.data import datasets
from dltool.data.prepare import require_run_folder
from dltool.engine.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from dltool.engine.distributed import gather_to_main
from dltool.engine.setup import Components
from dltool.errors import CheckpointError, ConfigError, UsageError, option
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
    wall_time_s: float = 0.0  # training, over every session of the run
    setup_time_s: float = 0.0  # before each session's first step (data, model, checks), summed
    partial: dict[str, Any] | None = None  # EpochStats of an unfinished epoch
    threads: int | None = None  # what train.threads: auto chose at the start (kept on resume)
    amp: str | None = None  # the precision train.amp came to at the start (kept on resume)


def save_state(path: Path | None, parts: Components, progress: Progress) -> None:
    """Write the run's state to ``path`` (rank 0's; None on the other ranks). Every rank
    calls it: each one's random state and partial-epoch sums are its own, and go into
    ``ranks`` (one map per rank, in rank order), so each rank resumes its own streams."""
    ranks = gather_to_main(parts.world, {"rng": capture_rng(), "partial": progress.partial})
    if path is None:
        return
    step = parts.step
    save_checkpoint(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "model": parts.model.state_dict(),
            "optimizer": step.optimizer.state_dict(),
            "scheduler": step.scheduler.state_dict(),
            "scaler": step.scaler.state_dict(),
            "ema": step.ema.state_dict() if step.ema is not None else None,
            "progress": {k: v for k, v in asdict(progress).items() if k != "partial"},  # per rank, in ranks
            "ranks": ranks,
            "config": parts.config.to_dict(),
            "classes": parts.data.classes,
            "in_shape": list(parts.data.in_shape),
            "split_sizes": split_sizes(parts),
            "versions": versions(),
        },
    )


def intact_checkpoint(path: Path) -> str:
    """What is left of a run's checkpoint after a failed write, in words for the user."""
    try:
        return f"the last good checkpoint (epoch {load_checkpoint(path)['progress']['epoch']}) is intact"
    except (CheckpointError, KeyError, TypeError):
        return "no earlier checkpoint is intact"


def restore_state(parts: Components, checkpoint: dict[str, Any], source: object = "the checkpoint") -> Progress:
    """Load every state into ``parts``, and this rank's own random state and partial-epoch
    sums. A state that does not fit (another optimizer's, a damaged one) is a
    ``CheckpointError`` naming ``source``: ``check_checkpoint`` vouched for the entries'
    types, not their contents. A checkpoint taken mid-epoch by another number of processes
    is a ``UsageError``."""
    try:
        return _restore(parts, checkpoint, source)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{source}: its training state does not fit this run ({type(error).__name__}: {first})"
        ) from None


def _restore(parts: Components, checkpoint: dict[str, Any], source: object) -> Progress:
    step = parts.step
    parts.model.load_state_dict(checkpoint["model"])
    step.optimizer.load_state_dict(checkpoint["optimizer"])
    step.scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoint["scaler"]:  # empty from a run without fp16: a precision change starts a fresh scale
        step.scaler.load_state_dict(checkpoint["scaler"])
    if step.ema is not None and checkpoint.get("ema") is not None:
        step.ema.load_state_dict(checkpoint["ema"])
    progress = Progress(**checkpoint["progress"])
    ranks, world = rank_states(checkpoint), parts.world
    if progress.batch and len(ranks) != world.size:
        raise UsageError(_other_world(source, progress, len(ranks), world.size))
    if world.rank < len(ranks):
        restore_rng(ranks[world.rank]["rng"])
        progress.partial = ranks[world.rank]["partial"]
    else:  # more processes than saved ones, at an epoch's end: a fresh, distinct stream each
        torch.manual_seed(parts.config.train.seed + 1000 * world.rank + progress.step)
    return progress


def rank_states(checkpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """Each saved rank's ``{"rng", "partial"}``; a checkpoint from before they were saved per
    rank holds only rank 0's (``rng``, and ``partial`` in its progress)."""
    if "ranks" in checkpoint:
        return list(checkpoint["ranks"])
    return [{"rng": checkpoint["rng"], "partial": checkpoint["progress"].get("partial")}]


def _other_world(source: object, progress: Progress, saved: int, size: int) -> str:
    def processes(n: int) -> str:
        return "1 process" if n == 1 else f"{n} processes"

    again = "without torchrun" if saved == 1 else f"under torchrun with --nproc-per-node={saved} in all"
    return (
        f"{source} was taken in the middle of epoch {progress.epoch + 1} (after batch {progress.batch}) by "
        f"{processes(saved)}, and this resume runs {processes(size)}: each process's random state and "
        f"partial sums are its own, so resume it {again} (a checkpoint from an epoch's end resumes with any number)"
    )


def split_sizes(parts: Components) -> dict[str, int]:
    return {name: len(split.labels) for name, split in parts.data.splits.items()}


def data_changes(parts: Components, checkpoint: dict[str, Any]) -> list[str]:
    """Refuse to resume on data the model cannot read (other classes or image shape); a note
    for each split whose size changed (files added to or removed from an image folder)."""
    saved_classes, saved_shape = checkpoint["classes"], checkpoint["in_shape"]
    same_classes = list(map(composed, saved_classes)) == list(map(composed, parts.data.classes))  # a Mac's copy
    if not same_classes or saved_shape != list(parts.data.in_shape):
        raise CheckpointError(
            f"the data no longer matches this run: it was checkpointed with {len(saved_classes)} classes of "
            f"{'x'.join(map(str, saved_shape))} images, the data now has {len(parts.data.classes)} classes of "
            f"{'x'.join(map(str, parts.data.in_shape))} images; start a new run"
        )
    saved_sizes, sizes = checkpoint.get("split_sizes") or {}, split_sizes(parts)
    changed = [
        f"{name} {saved_sizes[name]} → {sizes[name]}"
        for name in sizes
        if name in saved_sizes and saved_sizes[name] != sizes[name]
    ]
    return (
        [f"the data changed since the checkpoint ({', '.join(changed)} images): resuming on the data as it is now"]
        if changed
        else []
    )


def versions() -> dict[str, str]:
    return {"dltool": __version__, "torch": str(torch.__version__)}


RESUMABLE_OVERRIDES = {"train.epochs", "train.device", "train.tensorboard", "data.name"}


def check_epochs_left(config: Config, checkpoint: dict[str, Any]) -> None:
    """A usage error for ``train.epochs`` below the epochs the checkpoint has trained: such a
    resume would train nothing and record a config (``config.yaml``) the weights do not match.
    A malformed progress entry is left to ``restore_state`` to name."""
    progress = checkpoint["progress"]
    done = progress.get("epoch") if isinstance(progress, dict) else None
    if isinstance(done, int) and config.train.epochs < done:
        raise UsageError(
            f"train.epochs {config.train.epochs}: the run has trained {counted(done, 'epoch')} already; "
            f"resume with {option('epochs', done)} or more (more to train further)"
        )


def _check_data_moves(saved: str, given: str | None) -> None:
    """A run's image folder may have moved: ``--dataset NEW_PATH`` says where (the resumed run
    then checks its classes and files as for any folder); a registered dataset is itself."""
    if given is None:
        require_run_folder(saved, "resume with --dataset NEW_PATH")
    if given is not None and given != saved and (saved in datasets or given in datasets):
        what = (
            "a registered dataset, found by its name"
            if saved in datasets
            else "a folder: --dataset names where it is now"
        )
        raise UsageError(
            f"data.name {given}: the run trains on {saved}, {what}; start a new run to train on other data"
        )


def resumed_config(saved: dict[str, Any], overrides: dict[str, Any]) -> Config:
    """The saved config with ``overrides`` (only ``RESUMABLE_OVERRIDES``) on top, validated."""
    changed = set(overrides) - RESUMABLE_OVERRIDES
    if changed:
        raise UsageError(
            f"cannot change {', '.join(sorted(changed))} when resuming; "
            f"only {', '.join(sorted(RESUMABLE_OVERRIDES))} (start a new run for the rest)"
        )
    try:  # what no longer validates (a model class that cannot be imported) is the run's failure
        own = validate_config(saved).data.name
    except ConfigError as error:
        raise CheckpointError(f"the run's config no longer validates: {error}") from None
    _check_data_moves(own, overrides.get("data.name"))
    raw = {section: dict(values) for section, values in saved.items()}
    for key, value in overrides.items():
        section, leaf = key.split(".")
        raw[section][leaf] = value
    return validate_config(raw)


def load_resume_state(run: RunDir, require: tuple[str, ...]) -> dict[str, Any]:
    """``run``'s last.pt with entries ``require``; unreadable, an error saying what is left."""
    try:
        return load_checkpoint(run.last_checkpoint, require=require)
    except CheckpointError as error:
        raise CheckpointError(f"{error}; {_unresumable_hint(run, require)}") from None


def _unresumable_hint(run: RunDir, require: tuple[str, ...]) -> str:
    """The next steps for a run whose last.pt is lost: its best weights, where there are
    some, and a new run from its config, begun from its latest readable kept epoch."""
    best = (
        f"its best weights ({run.weights.name}) still serve eval, predict and export; " if run.weights.is_file() else ""
    )
    again = f"dltool train {run.config}"
    kept = _latest_readable(run, require)
    if kept is None:
        return f"{best}to train again, start a new run from its config: {again}"
    epoch, path = kept
    return f"{best}to train on, start a new run from epoch {epoch}'s weights: {again} --init-from {path}"


def _latest_readable(run: RunDir, require: tuple[str, ...]) -> tuple[int, Path] | None:
    """The latest kept ``checkpoints/epoch-N.pt`` that loads (a damaged last.pt damages the
    latest one with it when it is a hard link of it), with its epoch."""
    kept = sorted(run.epoch_checkpoints().items(), reverse=True)
    return next(((epoch, path) for epoch, path in kept if _loads(path, require)), None)


def _loads(path: Path, require: tuple[str, ...]) -> bool:
    try:
        load_checkpoint(path, require=require)
    except CheckpointError:
        return False
    return True
