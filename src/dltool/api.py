"""dltool from Python: ``train``, ``evaluate``, ``predict``, ``export_model`` and ``tune``, returning results.
Where they take a run, ``train``'s result will do: ``evaluate(train("digits-mlp"))``.

Each function does what its command does — the same config layers, run dir names and files
written — through the same library calls, raises a ``dltool.errors.DltoolError`` subclass on
bad input (``UsageError`` where the command would exit 2) and prints nothing: pass an
observer to see progress. Importing this module is cheap; torch is imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dltool.errors import UsageError, quote
from dltool.export.int8 import CALIBRATION_IMAGES, MAX_DROP

if TYPE_CHECKING:
    import threading

    import pandas as pd

    from dltool.config import Config
    from dltool.engine.observer import Observer
    from dltool.engine.result import RunResult
    from dltool.evaluation.evaluate import EvalResult
    from dltool.evaluation.pictures import ImageLike
    from dltool.evaluation.predict import Prediction, Unreadable
    from dltool.evaluation.segment import MaskWritten
    from dltool.export.export import ExportResult
    from dltool.tuning import TuneObserver, TuneResult

__all__ = ["Masks", "Predictions", "evaluate", "export_model", "predict", "resume", "segment", "train", "tune"]

StrPath = str | os.PathLike[str]


def train(
    recipe: StrPath | Config,
    *,
    overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
    runs_dir: StrPath = "runs",
    observer: Observer | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Train a new run, as ``dltool train`` does; the result's ``run_dir`` holds its files.

    ``recipe``: a recipe name (``dltool list recipes``), a YAML file or a run dir to start
    from, or a ``dltool.config.Config`` (``load_config``'s; its runs are ``config-<n>``, as a
    config.yaml's are). ``overrides`` maps dotted config keys to values, above the recipe — what the
    command's flags and ``--set`` do: ``{"train.epochs": 5, "optimizer.lr": 3e-3}``. The run
    dir is ``runs_dir/name``, by default ``runs_dir/<recipe>-<n>``. ``observer`` (a
    ``dltool.engine.observer.Observer``) sees each step and epoch; setting ``stop`` ends
    training after the current step with a resumable checkpoint (status ``interrupted``).
    The result's ``metrics`` is ``metrics.jsonl`` as a pandas DataFrame, one row per epoch.
    """
    from dltool.config import Config, load_config, resolve_source
    from dltool.engine import start_run

    ref = recipe if isinstance(recipe, Config) else os.fspath(recipe)
    config = load_config(ref, flags=_overrides(overrides))
    source = "config" if isinstance(ref, Config) else resolve_source(ref).name
    return start_run(config, source, runs_dir=Path(runs_dir), name=name, observer=observer, stop=stop)


def resume(
    run: StrPath | RunResult,
    *,
    epochs: int | None = None,
    device: str | None = None,
    dataset: StrPath | None = None,
    tensorboard: bool | None = None,
    observer: Observer | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Continue ``run`` from its ``checkpoints/last.pt``, as ``dltool train --resume`` does:
    bit for bit the run it would have been. ``epochs`` raises the total (to train a finished
    run further); ``device`` moves it; ``dataset`` is where its image folder is now, if it
    moved; ``tensorboard`` turns its events on. A run that another process is training is refused.
    """
    from dltool.engine import resume as resume_run
    from dltool.rundir import open_run_dir

    given = {
        "train.epochs": epochs,
        "train.device": device,
        "data.name": _text(dataset),
        "train.tensorboard": tensorboard,
    }
    overrides = {key: value for key, value in given.items() if value is not None}
    return resume_run(open_run_dir(_run_path(run)), overrides=overrides, observer=observer, stop=stop)


# The keywords mirror evaluation.evaluate.evaluate_run's, which export.evaluate.evaluate_model
# passes on (typed for callers: StrPath, Literal): a parallel on purpose, the API being a typed
# face of the same call.
def evaluate(
    run: StrPath | RunResult,
    *,
    split: str = "test",
    data: StrPath | None = None,
    root: StrPath | None = None,
    checkpoint: Literal["best", "last"] = "best",
    batch_size: int | None = None,
    device: str = "auto",
    tta: Literal["none", "flip"] | None = None,
) -> EvalResult:
    """Score a trained model, as ``dltool eval`` does, and write ``eval-<split>.json``.

    ``run``: a run dir, its ``model.safetensors``, a ``.pt`` checkpoint or an exported file
    (scored on its run's data by its own runtime; the document is written beside it);
    ``checkpoint`` picks a run dir's best weights or ``checkpoints/last.pt``. ``data`` scores another
    dataset name or image folder with the same classes (``root``: its ``data.root``), and the
    file is then ``eval-<dataset>-<split>.json``. ``tta`` (``none``, ``flip``) overrides the
    run's test-time augmentation. The result has the ``document`` (accuracy, per-class scores,
    confusion matrix, ...), the ``path`` written and ``per_class``, the per-class scores as a
    pandas DataFrame.
    """
    from dltool.export.evaluate import evaluate_model

    at_least(1, batch_size=batch_size)
    return evaluate_model(
        _run_path(run),
        split=split,
        data=_text(data),
        root=_text(root),
        checkpoint=checkpoint,
        batch_size=batch_size,
        device=device,
        tta=tta,
    )


@dataclass(frozen=True)
class Predictions:
    """What ``predict`` returns: ``rows`` for the images read, in input order, and the
    inputs that could not be read, each with its reason (``dltool predict`` names them on stderr)."""

    rows: list[Prediction]
    unreadable: list[Unreadable]
    columns: list[str] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """The rows as a DataFrame in ``columns``, those of ``dltool predict``'s csv and Parquet
        output: a classifier's ``path, label, score, top1_label, top1_score, ...``, a keypoint
        model's ``path, x1, y1, ...``."""
        from dltool.evaluation.tables import predictions_frame

        return predictions_frame(self.rows, self.columns)


def predict(
    run: StrPath | RunResult,
    inputs: ImageLike | Iterable[ImageLike],
    *,
    top_k: int = 3,
    batch_size: int | None = None,
    device: str = "auto",
    workers: int | None = None,
    amp: str = "off",
) -> Predictions:
    """Label images with a trained model, as ``dltool predict`` does.

    ``run``: a run dir, its weights, a ``.pt`` checkpoint or a ``dltool export`` file (ONNX,
    TorchScript). ``inputs``: image files, folders (walked recursively, sorted) and glob patterns,
    and images in memory: PIL images, NumPy arrays (H, W) or (H, W, C), torch tensors (C, H, W),
    or batches of them (N first), pixels as loaded (0..255, or floats in 0..1), not normalised;
    their rows' ``path`` is ``<image K>``, the K-th image in memory (from 0). A
    classifier's row has ``path``, ``label``, ``score`` and ``top``, the ``top_k`` (label,
    probability) pairs; a keypoint model's ``path`` and ``points`` in the image's pixels.
    ``amp``: off (float32), bf16 or fp16, the autocast of a run's model (not an export's).
    ``batch_size``: images per forward pass (None: ``dltool.evaluation.model.default_batch_size``, 32 on a GPU and
    fewer on a CPU for large images). For more images than fit in a list, ``dltool.evaluation.predict.predict`` streams the rows.
    """
    from dltool.evaluation.pictures import given_inputs
    from dltool.evaluation.predict import Unreadable, prediction_columns
    from dltool.evaluation.predict import predict as predict_images
    from dltool.export.inference import load_inference_model

    names = given_inputs(inputs)
    at_least(1, top_k=top_k, batch_size=batch_size)
    at_least(0, workers=workers)
    model = load_inference_model(_run_path(run), device=device, amp=amp)
    rows: list[Prediction] = []
    unreadable: list[Unreadable] = []
    for row in predict_images(model, names, top_k=top_k, batch_size=batch_size, workers=workers):
        if isinstance(row, Unreadable):
            unreadable.append(row)
        else:
            rows.append(row)
    return Predictions(rows, unreadable, prediction_columns(model, top_k))


def export_model(
    run: StrPath | RunResult,
    *,
    to: str = "onnx",
    output: StrPath | None = None,
    opset: int | None = None,
    force: bool = False,
    int8: bool = False,
    calibration: int = CALIBRATION_IMAGES,
    max_drop: float = MAX_DROP,
) -> ExportResult:
    """Write a trained model as ONNX or TorchScript with its sidecar, as ``dltool export``
    does: checked against the model first, and with ``int8`` (ONNX) quantized on
    ``calibration`` training images and kept only if its test score is at most ``max_drop``
    of the model's worse (``dltool.export.quantize``). The result names the file written."""
    from dltool.evaluation.trained import load_trained
    from dltool.export.export import export_trained
    from dltool.export.int8 import Int8

    quantized = Int8(calibration, max_drop) if int8 else None
    target = None if output is None else Path(output)
    return export_trained(load_trained(_run_path(run)), to, target, opset=opset, force=force, int8=quantized)


@dataclass(frozen=True)
class Masks:
    """What ``segment`` returns: a row per mask written (``path``, ``mask``, ``overlay``,
    ``classes`` shown), in input order, and the inputs that could not be read."""

    rows: list[MaskWritten]
    unreadable: list[Unreadable]


def segment(
    run: StrPath | RunResult,
    inputs: StrPath | Iterable[StrPath],
    out: StrPath,
    *,
    overlay: bool = False,
    batch_size: int | None = None,
    device: str = "auto",
    workers: int | None = None,
) -> Masks:
    """Segment images with a trained segmentation model, as ``dltool predict --out DIR``
    does: a mask PNG per image in ``out``, at the image's size (class indices in a palette
    PNG); with ``overlay``, colour overlays in ``out/overlays``."""
    from dltool.evaluation.pictures import given_inputs, only_paths
    from dltool.evaluation.predict import Unreadable
    from dltool.evaluation.segment import segment as segment_images
    from dltool.export.inference import load_inference_model

    names = only_paths(given_inputs(inputs))
    at_least(1, batch_size=batch_size)
    at_least(0, workers=workers)
    model = load_inference_model(_run_path(run), device=device)
    rows = list(segment_images(model, names, Path(out), overlay=overlay, batch_size=batch_size, workers=workers))
    return Masks([r for r in rows if not isinstance(r, Unreadable)], [r for r in rows if isinstance(r, Unreadable)])


def tune(
    recipe: StrPath,
    *,
    space: StrPath | Mapping[str, Any],
    trials: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    metric: str | None = None,
    direction: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    timeout: float | None = None,
    name: str | None = None,
    runs_dir: StrPath = "runs",
    restart_study: bool = False,
    folds: int | None = None,
    observer: TuneObserver | None = None,
    stop: threading.Event | None = None,
) -> TuneResult:
    """Search hyperparameters, as ``dltool tune`` does: each trial is a run dir in the study dir.

    ``space``: a search space YAML file or the same mapping of dotted keys to ranges or lists, e.g.
    ``{"optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}``. ``overrides`` fix config keys
    for every trial (``"train.seed"`` also seeds the sampler); the other arguments are the command's options
    (``dltool tune --help``). The result has the ``study_dir``, ``study.json`` as ``study`` (typed: ``record``), the
    ``best`` trial and ``trials.csv`` as a DataFrame, ``trials``.
    """
    from dltool.tuning import StudyOptions, prepare_study
    from dltool.tuning import tune as run_study

    # An intentional parallel of commands/tune.py: the API's keywords are the command's options.
    options = StudyOptions(
        trials=trials,
        timeout=timeout,
        sampler=sampler,
        pruner=pruner,
        metric=metric,
        direction=direction,
        storage=storage,
        study_name=study,
        workers=workers,
        name=name,
        runs_dir=Path(runs_dir),
        restart=restart_study,
        folds=folds,
    )
    settings = prepare_study(os.fspath(recipe), _space(space), options, flags=_overrides(overrides))
    return run_study(settings, workers=workers, observer=observer, stop=stop)


def _overrides(overrides: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``overrides`` if a mapping of dotted keys (a list of ``key=value`` strings, the command's
    ``--set``, met ``.items()`` as an AttributeError)."""
    if overrides is not None and (not isinstance(overrides, Mapping) or not all(isinstance(k, str) for k in overrides)):
        example = "{'train.epochs': 5, 'optimizer.lr': 0.003}"
        raise UsageError(f"overrides {quote(overrides)}: expected a mapping of dotted config keys to values, {example}")
    return overrides


def _run_path(run: StrPath | RunResult) -> Path:
    """A run's path, or the run dir of what ``train`` or ``resume`` returned."""
    if not isinstance(run, (str, os.PathLike)):
        return run.run_dir or _no_run_dir()
    return Path(run)


def _no_run_dir() -> Path:
    raise UsageError("run: this process wrote no run dir (a torchrun rank other than 0): rank 0's result has it")


def _space(space: StrPath | Mapping[str, Any]) -> Path | Mapping[str, Any]:
    return space if isinstance(space, Mapping) else Path(space)


def at_least(low: int, **counts: int | None) -> None:
    """Each of ``counts`` (None: the default) a whole number of at least ``low``, as the command's options are."""
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise UsageError(f"{name} {value!r}: expected a whole number of at least {low}")


def _text(path: StrPath | None) -> str | None:
    return None if path is None else os.fspath(path)
