"""`dltool stats TARGET`: what a dataset, a run directory or a checkpoint holds, as JSON-ready
dicts (``kind``: dataset, run or checkpoint). The command renders them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dltool.errors import CheckpointError, UsageError, option
from dltool.rundir import RunDir, is_run_dir, open_run_dir, read_weights_header, refuse_parent_of_runs, stand_in_named

# State-dict entries that are buffers, not parameters (batch norm's running statistics).
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def stats(
    target: str,
    split: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    root: str | None = None,
) -> dict[str, Any]:
    """Stats of ``target``: a checkpoint (``.pt``, ``.safetensors``), a run directory (it
    holds ``config.yaml``), else a dataset name or folder. ``split``, ``root`` (the data
    root, as ``data.root``) and ``progress`` (phase, done, total: see
    ``dltool.data.stats.dataset_stats``) apply to datasets."""
    path = Path(target).expanduser()
    if path.is_file() and path.suffix in {".pt", ".safetensors"}:
        _dataset_only(split, root, "a checkpoint")
        return checkpoint_stats(path)
    if is_run_dir(path):
        _dataset_only(split, root, "a run directory")
        return run_stats(path)
    refuse_parent_of_runs(path)
    if path.is_file():
        raise UsageError(
            f"{target}: expected a dataset name or folder, a run directory, or a checkpoint (.pt, .safetensors)"
        )
    from dltool.config.schema import DataConfig
    from dltool.data.fetch import fetch_missing
    from dltool.data.splits import for_new_run
    from dltool.data.stats import dataset_stats

    # The splits a new run would train, validate and test on.
    fetch_missing(target, root)  # a named dataset not downloaded yet, as a run fetches it
    return dataset_stats(for_new_run(DataConfig(name=target, root=root)), split, progress)


def _dataset_only(split: str | None, root: str | None, what: str) -> None:
    for keyword, value in (("split", split), ("root", root)):
        if value is not None:
            raise UsageError(f"{option(keyword)} applies to datasets, not to {what}")


def run_stats(path: Path) -> dict[str, Any]:
    """A run's record: status, epochs, best/final/test metrics, wall time, device, model."""
    run = open_run_dir(path)
    config = run.read_config()
    summary = run.read_summary() or {}
    epochs = len(run.read_metrics())
    with stand_in_named(run.weights):
        weights = run.weights_header().shapes if run.weights.is_file() else None
    return {
        "kind": "run",
        "path": str(path),
        "status": summary.get("status", "running or killed (no summary.json)"),
        "epochs_run": summary.get("epochs_run", epochs),
        "epochs": config.get("train", {}).get("epochs"),
        "best": summary.get("best"),
        "final": summary.get("final"),
        "test": summary.get("test"),
        "wall_time_s": summary.get("wall_time_s"),
        "setup_time_s": summary.get("setup_time_s"),
        "device": summary.get("device"),
        "amp": summary.get("amp"),
        "model": config.get("model", {}).get("name"),
        "dataset": config.get("data", {}).get("name"),
        "parameters": _parameters(weights) if weights is not None else None,
        "classes": run.read_classes(),
        "config": config,
    }


def checkpoint_stats(path: Path) -> dict[str, Any]:
    """``last.pt`` (full training state) or ``model.safetensors`` beside its ``config.yaml``."""
    if path.suffix == ".pt":
        from dltool.engine.checkpoint import load_checkpoint

        state = load_checkpoint(path)
        shapes = {k: tuple(v.shape) for k, v in state["model"].items()}
        config, classes = state.get("config", {}), state.get("classes")
        progress = state.get("progress", {})
        extra = {"epoch": progress.get("epoch"), "step": progress.get("step"), "versions": state.get("versions")}
    else:
        with stand_in_named(path):
            header = read_weights_header(path)
        shapes, metadata = header.shapes, header.metadata
        run = RunDir(path.parent)
        if not is_run_dir(run.path):
            raise CheckpointError(f"{path}: no config.yaml beside it to say which model these weights are")
        config, classes = run.read_config(), run.read_classes()
        extra = {"in_shape": metadata.get("in_shape"), "dltool_version": metadata.get("dltool_version")}
    return {
        "kind": "checkpoint",
        "path": str(path),
        "model": config.get("model", {}).get("name"),
        "parameters": _parameters(shapes),
        "classes": classes,
        **extra,
        "config": config,
    }


def _parameters(shapes: dict[str, tuple[int, ...]]) -> int:
    total = 0
    for name, shape in shapes.items():
        if not name.endswith(BUFFER_SUFFIXES):
            count = 1
            for d in shape:
                count *= d
            total += count
    return total
