"""`dltool stats TARGET`: what a dataset, a run directory or a checkpoint holds, as JSON-ready
dicts (``kind``: dataset, run or checkpoint). The command renders them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dltool._io import read_json
from dltool.errors import CheckpointError, UsageError

# State-dict entries that are buffers, not parameters (batch norm's running statistics).
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def stats(target: str, split: str | None = None) -> dict[str, Any]:
    """Stats of ``target``: a checkpoint (``.pt``, ``.safetensors``), a run directory (it
    holds ``config.yaml``), else a dataset name or folder. ``split`` applies to datasets."""
    path = Path(target).expanduser()
    if path.is_file() and path.suffix in {".pt", ".safetensors"}:
        _no_split(split, "a checkpoint")
        return checkpoint_stats(path)
    if path.is_dir() and (path / "config.yaml").is_file():
        _no_split(split, "a run directory")
        return run_stats(path)
    if path.is_file():
        raise UsageError(
            f"{target}: expected a dataset name or folder, a run directory, or a checkpoint (.pt, .safetensors)"
        )
    from dltool.config.schema import DataConfig
    from dltool.data.stats import dataset_stats

    return dataset_stats(DataConfig(name=target), split)


def _no_split(split: str | None, what: str) -> None:
    if split is not None:
        raise UsageError(f"--split applies to datasets, not to {what}")


def run_stats(path: Path) -> dict[str, Any]:
    """A run's record: status, epochs, best/final/test metrics, wall time, device, model."""
    from dltool.rundir import open_run_dir

    run = open_run_dir(path)
    config = _read_yaml(run.config)
    summary = read_json(run.summary) if run.summary.is_file() else {}
    epochs = len(run.metrics.read_text(encoding="utf-8").splitlines()) if run.metrics.is_file() else 0
    weights = _safetensors_header(run.weights)[0] if run.weights.is_file() else None
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
        "device": summary.get("device"),
        "amp": summary.get("amp"),
        "model": config.get("model", {}).get("name"),
        "dataset": config.get("data", {}).get("name"),
        "parameters": _parameters(weights) if weights is not None else None,
        "classes": read_json(run.classes) if run.classes.is_file() else None,
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
        shapes, metadata = _safetensors_header(path)
        config_path = path.parent / "config.yaml"
        if not config_path.is_file():
            raise CheckpointError(f"{path}: no config.yaml beside it to say which model these weights are")
        config = _read_yaml(config_path)
        classes_path = path.parent / "classes.json"
        classes = read_json(classes_path) if classes_path.is_file() else None
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


def _safetensors_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata, from the header alone (no tensor is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as file:
            shapes = {k: tuple(file.get_slice(k).get_shape()) for k in file.keys()}  # noqa: SIM118 (no __iter__)
            return shapes, file.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not readable safetensors weights ({error})") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise CheckpointError(f"{path}: not a readable config ({error})".replace("\n", " ")) from None
    if not isinstance(document, dict):
        raise CheckpointError(f"{path}: not a dltool config")
    return document
