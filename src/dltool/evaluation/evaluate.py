"""``dltool eval``: score a trained model on a split of its dataset, or of another one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

import dltool.tasks as tasks
from dltool._text import composed
from dltool.config.schema import DataConfig
from dltool.data import datasets
from dltool.data.arrays import Split
from dltool.data.files import FileSplit, joined
from dltool.data.folders import SPLITS
from dltool.data.loader import BatchLoader
from dltool.data.prepare import PreparedData, files_fitted_to, prepare_data, require_run_folder
from dltool.data.stream import DecodePool, StreamLoader, resolve_workers
from dltool.errors import CheckpointError, DatasetError, UnknownNameError, UsageError
from dltool.evaluation.model import default_batch_size
from dltool.evaluation.reports import run_report_path, save_report
from dltool.evaluation.skipped import scored_samples, unreadable
from dltool.evaluation.trained import Trained, load_trained
from dltool.models.target_scale import target_units
from dltool.rundir import RunDir
from dltool.tasks.pixels import IGNORE
from dltool.tasks.task import Batches, Forward

if TYPE_CHECKING:
    import pandas as pd

EVAL_BATCH = 256  # images per forward pass, where their size and the device allow (default_batch_size)


@dataclass(frozen=True)
class Evaluation:
    """An eval document with what it was computed from (for plots of single predictions).

    ``samples``: the scored images (arrays, or files decoded when read), labels in the
    model's class order; ``probs``: the task's per-sample outputs where it keeps them
    (``Scored.outputs``: a classifier's (N, C) softmax probabilities), else None;
    ``mean``/``std``: the normalisation the model was fed with.
    """

    document: dict[str, Any]
    samples: Split | FileSplit
    probs: np.ndarray | None
    mean: list[float]
    std: list[float]


@dataclass(frozen=True)
class EvalResult:
    """An eval document (DESIGN.md: ``eval-<split>.json``) and the file it was written to;
    ``unsaved``: why it could not be written there (a read-only run dir), else None."""

    document: dict[str, Any]
    path: Path
    unsaved: str | None = None

    @property
    def per_class(self) -> pd.DataFrame:
        """The per-class scores as a DataFrame, one row per class in ``classes.json`` order (a
        keypoint model's per point, a regression's per target; an autoencoder: a ``UsageError``)."""
        from dltool.evaluation.tables import per_class_frame

        return per_class_frame(self.document)


def evaluate_run(
    target: Path | str,
    *,
    split: str = "test",
    data: str | None = None,
    root: str | None = None,
    checkpoint: Literal["best", "last"] = "best",
    batch_size: int | None = None,
    device: str = "auto",
    tta: str | None = None,
    per_class: bool = False,
) -> EvalResult:
    """What ``dltool eval`` does: load the model at ``target`` (a run dir, its
    ``model.safetensors`` or a ``.pt`` checkpoint), score it (``evaluate_trained``; ``tta``:
    none or flip, by default the run's ``train.tta``) and write the document into the run dir
    (``run_report_path``; one that cannot be written is ``unsaved``). ``per_class``: the caller
    wants ``EvalResult.per_class``; a model without such scores is refused before scoring."""
    if checkpoint not in ("best", "last"):
        raise UsageError(f"checkpoint {checkpoint!r}: expected best or last")
    trained = load_trained(target, checkpoint=checkpoint, device=device, tta=tta)
    if per_class:
        tasks.require_breakdown(trained.task, trained.name)
    document = evaluate_trained(trained, split=split, data=data, root=root, batch_size=batch_size)
    path = run_report_path(trained, document, own_data=data is None)
    return EvalResult(document, path, save_report(path, document))


# evaluate_trained and evaluate_split take the same keywords: the first is the second's
# document only, for callers that need no samples or probabilities.
def evaluate_trained(
    trained: Trained,
    *,
    split: str = "test",
    data: str | None = None,
    root: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """The eval document of ``trained`` on ``split`` of its own dataset (the same splits,
    size and normalisation as training), or of dataset/folder ``data`` with the same classes."""
    return evaluate_split(trained, split=split, data=data, root=root, batch_size=batch_size).document


def evaluate_split(
    trained: Trained,
    *,
    split: str = "test",
    data: str | None = None,
    root: str | None = None,
    batch_size: int | None = None,
    forward: Forward | None = None,
) -> Evaluation:
    """``evaluate_trained``, keeping the samples and the predicted probabilities.
    ``forward``: what scores the batches, by default ``trained.score`` (``dltool export
    --int8`` scores its quantized file on the same batches)."""
    if split not in SPLITS:  # before any data is read
        raise UnknownNameError("split", split, SPLITS)
    data_config = _data_config(trained, data, root)
    prepared = prepare_model_input(trained, data_config, other=data is not None)
    chosen = _split(prepared, split, data_config.name)
    if data is not None and prepared.test_is_val and split != "train":
        # A folder of class folders with no test/ of its own: score every image in it.
        split, chosen = "all", _concatenate(prepared.splits["train"], prepared.splits["val"])
    chosen, left_out = _known_only(prepared, chosen, trained) if data is not None else (chosen, {})
    samples = _aligned(prepared, chosen, trained.classes, data_config.name)
    loader = _loader(samples, prepared, trained, batch_size)
    document: dict[str, Any] = {
        "split": split,
        "dataset": str(_folder_of(data_config.name) or data_config.name),  # a folder as an absolute path
        "checkpoint": str(Path(trained.source).absolute()),  # the file outlives the working directory
        "tta": trained.tta,
    }
    if data is None and (changed := _data_changes(trained, prepared)):
        document["data_changed"] = changed
    if left_out:
        document["classes_left_out"] = left_out
    if data is not None and _overlaps_training(trained, data):
        document["includes_training_images"] = True
    document |= unreadable(prepared, split, data_config.name)
    with _closing(loader):
        task = tasks.get(trained.task)
        units = target_units(trained.model)  # a regression's loss in sd, as it trained (an export's too)
        scored = task.evaluate(forward or trained.score, loader.batches(), trained.classes, prepared.std, **units)
        samples = scored_samples(samples, loader, document)
    return Evaluation(document | scored.document, samples, scored.outputs, prepared.mean, prepared.std)


def prepare_model_input(trained: Trained, config: DataConfig, *, other: bool = False) -> PreparedData:
    """``config``'s data made into ``trained``'s input. A folder trained without
    ``data.image_size`` took the size most of its images shared, and files added since may
    change it: its files are then read fitted to the model's input, as predict reads them.
    ``other`` data than the run's, for a model whose input is not square (no image_size says
    it), is read so straight away: decoded at its own size first, it was decoded twice."""
    fitted = files_fitted_to(config, trained.in_shape) if other and config.image_size is None else None
    prepared = prepare_data(config, fitted)
    if prepared.in_shape == trained.in_shape:
        return prepared
    if (files := files_fitted_to(config, trained.in_shape)) is None:
        shapes = ("×".join(map(str, shape)) for shape in (prepared.in_shape, trained.in_shape))
        raise DatasetError(f"{config.name}: its images now make {next(shapes)} inputs; the model takes {next(shapes)}")
    return prepare_data(config, files)


DRAWN_AGAIN = (
    "a split drawn from it (val, or test by data.test_fraction) is drawn again from the files as they are now "
    "and may hold images the model trained on"
)
DRAWN_BY_NAME = "its val and test splits are drawn by file name (data.split_by), so no file moved between splits"


def _data_changes(trained: Trained, prepared: PreparedData) -> dict[str, Any]:
    """Each split whose size differs from the one the run trained with (summary.json's
    ``split_sizes``; none recorded before 2026-12-07): files were added to or removed from its
    folder. With ``split_by`` shuffle, a split drawn from it (val, or test by
    ``data.test_fraction``) is drawn again and may now hold images the model trained on."""
    trained_with = _trained_split_sizes(trained.run_dir)
    now = {name: len(split.labels) for name, split in prepared.splits.items()}
    changed: dict[str, Any] = {
        name: {"trained": trained_with[name], "now": count}
        for name, count in now.items()
        if isinstance(trained_with.get(name), int) and trained_with[name] != count
    }
    return changed and {"split_by": trained.config.data.split_by or "shuffle", **changed}


def _trained_split_sizes(run_dir: Path | None) -> dict[str, Any]:
    # A summary.json that cannot be read (damaged by hand or by a sync) records no sizes, as
    # an older run's: the weights carry everything the scores need.
    try:
        summary = RunDir(run_dir).read_summary() if run_dir else None
    except CheckpointError:
        return {}
    return (summary or {}).get("split_sizes") or {}


def data_changed_line(changed: dict[str, Any]) -> str:
    """The warning for ``_data_changes``' record, for people."""
    splits = {name: sizes for name, sizes in changed.items() if isinstance(sizes, dict)}
    sizes = ", ".join(f"{name} {sizes['trained']:,} → {sizes['now']:,}" for name, sizes in splits.items())
    why = DRAWN_BY_NAME if changed.get("split_by") == "name" else DRAWN_AGAIN
    return f"the data changed since the run trained ({sizes} images): {why}"


def _data_config(trained: Trained, data: str | None, root: str | None) -> DataConfig:
    if data is None:
        # A whole command line: visualize and export --int8 come here too, and have no --data.
        require_run_folder(
            trained.config.data.name, "dltool eval RUN --data FOLDER scores a folder with the same classes"
        )
    update: dict[str, Any] = {k: v for k, v in {"name": data, "root": root}.items() if v is not None}
    if data is not None:  # other data is shaped like the model's input, as predict does, and scored whole
        channels, height, width = trained.in_shape
        update |= {"channels": channels, "test_fraction": 0, "train_per_class": None, "cv_folds": 0, "cv_fold": 0}
        update |= {"classes": None}  # a run of data.classes: the others are left out by _known_only
        update |= {"image_size": height} if height == width else {}
    return trained.config.data.model_copy(update=update)


@contextmanager
def split_batches(trained: Trained, split: str, *, rows: int | None = None) -> Iterator[Batches]:
    """The batches of ``split`` of the run's own data as evaluation feeds them (normalised,
    on the model's device); ``rows``: at most that many of its samples, the same draw each
    time (a fixed seed), in split order."""
    prepared = prepare_model_input(trained, trained.config.data)
    samples = _split(prepared, split, trained.config.data.name)
    if rows is not None and rows < len(samples):
        samples = samples.take(np.sort(np.random.default_rng(0).choice(len(samples), rows, replace=False)))
    loader = _loader(samples, prepared, trained, None)
    with _closing(loader):
        yield loader.batches()


def _split(prepared: PreparedData, split: str, name: str) -> Split | FileSplit:
    if split not in prepared.splits:
        raise DatasetError(f"{name}: no {split!r} split; it has {', '.join(prepared.splits)}")
    return prepared.splits[split]


@contextmanager
def _closing(loader: BatchLoader | StreamLoader) -> Iterator[None]:
    """Stop a stream loader's decoding processes however the batches end."""
    try:
        yield
    finally:
        if isinstance(loader, StreamLoader):
            loader.pool.close()


def _loader(
    samples: Split | FileSplit, prepared: PreparedData, trained: Trained, batch_size: int | None
) -> BatchLoader | StreamLoader:
    """The split's batches: from memory, or decoded from its files by ``data.workers`` processes;
    ``batch_size`` None: ``EVAL_BATCH`` images, fewer of large ones on a CPU."""
    mean, std, device = prepared.mean, prepared.std, trained.device
    batch_size = batch_size or default_batch_size(trained, largest=EVAL_BATCH)
    if isinstance(samples, Split):
        return BatchLoader(samples, batch_size=batch_size, mean=mean, std=std, device=device, read_once=True)
    pool = DecodePool([samples], resolve_workers(trained.config.data.workers), device, mean, std)
    return StreamLoader(pool, 0, batch_size=batch_size)


def _known_only(
    prepared: PreparedData, split: Split | FileSplit, trained: Trained
) -> tuple[Split | FileSplit, dict[str, int]]:
    """Another dataset's ``split`` less the images of the classes that a run trained on
    ``data.classes`` did not train on, and how many of each were left out; a run of all its
    folder's classes keeps them, for ``_aligned`` to refuse."""
    if trained.config.data.classes is None or split.labels.ndim != 1:
        return split, {}
    known = np.isin(_composed(prepared.classes), _composed(trained.classes))[split.labels]
    counts = np.bincount(split.labels[~known], minlength=len(prepared.classes))
    return split.take(np.flatnonzero(known)), {c: int(n) for c, n in zip(prepared.classes, counts, strict=True) if n}


def _overlaps_training(trained: Trained, data: str) -> bool:
    """Whether folder ``data`` is, holds or lies within the folder the run trained on: its
    scores then count images the model trained on."""
    own, other = _folder_of(trained.config.data.name), _folder_of(data)
    return own is not None and other is not None and (own.is_relative_to(other) or other.is_relative_to(own))


def _folder_of(name: str) -> Path | None:
    """The image folder ``data.name`` names, resolved; None for a registered dataset or none there."""
    path = Path(name).expanduser()
    return path.resolve() if name not in datasets and path.is_dir() else None


TRAINING_IMAGES = (
    "the run trained on images of this folder, so these scores count them and read too well; "
    "`dltool eval RUN` scores the test split it held out"
)


def left_out_line(name: str, left_out: dict[str, int]) -> str:
    """The note for ``_known_only``'s record, for people."""
    counts = ", ".join(f"{cls} {n:,}" for cls, n in left_out.items())
    total = sum(left_out.values())
    return f"{name}: {total:,} images of classes the run did not train on (data.classes) left out: {counts}"


def _aligned(prepared: PreparedData, split: Split | FileSplit, classes: list[str], name: str) -> Split | FileSplit:
    """``split`` with labels renumbered into the model's class order."""
    if prepared.classes == classes:
        return split
    present = [prepared.classes[k] for k in np.unique(split.labels)] if split.labels.ndim == 1 else prepared.classes
    keys = _composed(classes)  # a folder copied through a Mac spells "Bären" otherwise
    unknown = sorted(name for name in set(present) if composed(name) not in keys)
    if unknown:
        raise DatasetError(
            f"{name}: classes the model does not know: {', '.join(unknown[:10])}"
            f"{' ...' if len(unknown) > 10 else ''} (the model knows: {', '.join(classes[:10])})"
        )
    # A class of no image here (left out by _known_only) maps nowhere: no label points at it.
    mapping = np.array([keys.index(k) if k in keys else -1 for k in _composed(prepared.classes)], dtype=np.int64)
    if split.labels.ndim > 1:  # masks: the ignored pixels (255) stay ignored
        mapping = np.concatenate([mapping, np.full(256 - len(mapping), IGNORE)]).astype(np.uint8)
    if isinstance(split, FileSplit) and split.masks is not None:  # read with their images: renumbered then
        return split.renumbered(mapping)
    return split.relabelled(mapping[split.labels])


def _composed(names: list[str]) -> list[str]:
    return [composed(name) for name in names]


def _concatenate(*splits: Split | FileSplit) -> Split | FileSplit:
    if all(isinstance(s, FileSplit) for s in splits):
        return joined(cast(list[FileSplit], list(splits)))
    labels = np.concatenate([s.labels for s in splits])
    splits = cast(tuple[Split, ...], splits)
    if all(s.pixels is splits[0].pixels for s in splits):  # a val split drawn from train: index them both
        return Split(splits[0].pixels, labels, np.concatenate([s.row_index for s in splits]))
    return Split(np.concatenate([s.images for s in splits]), labels)
