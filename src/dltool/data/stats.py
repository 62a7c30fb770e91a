"""What a dataset holds, as `dltool stats` shows it: the splits exactly as `train` prepares
them (default data settings), per-class counts, imbalance, the mean/std that `train`
normalises with, image sizes and modes (folders), unreadable files, exact duplicates."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dltool.config.schema import DataConfig
from dltool.data.arrays import ImageArrays, Split, label_counts, point_counts, target_kind
from dltool.data.files import FileSplit
from dltool.data.prepare import Counting, PreparedData, channel_stats, load_arrays, prepare_data
from dltool.errors import UsageError, option

SPLIT_ORDER = ("train", "val", "test")
Phases = Callable[[str, int, int], None]  # (phase, done, total), for a progress display
CLASSES = ("labels", "masks")  # targets of classes (points and values have none)
# Duplicate groups listed by name in the report; all are counted.
EXAMPLES_SHOWN = 20


def dataset_stats(config: DataConfig, split: str | None = None, progress: Phases | None = None) -> dict[str, Any]:
    """A JSON-ready report on ``config``'s dataset; ``split`` keeps only that split's row.

    ``mean``/``std`` are the train split's, the values `train` normalises with (each split
    also has its own). Duplicates are exact (equal decoded uint8 images) and looked for
    across and within the splits train uses, those drawn from train included.

    Memory stays bounded whatever the dataset's size: a folder is decoded file by file into
    its cache (the one `train` reads), and every pass over the images reads a chunk at a
    time. ``progress(phase, done, total)`` follows the passes: ``decoding`` (a folder not
    cached yet), ``measuring`` (the training images' mean/std), ``hashing`` (duplicates).
    """
    report = progress or _silent
    arrays = load_arrays(config, lambda done, total: report("decoding", done, total))
    data = prepare_data(config, arrays, lambda done, total: report("measuring", done, total))
    names = [s for s in SPLIT_ORDER if s in data.splits]
    if split is not None and split not in names:
        raise UsageError(f"{option('split', split)}: {config.name} has splits {', '.join(names)}")
    measured = {"train": (data.mean, data.std)} if config.mean is None or config.std is None else {}
    splits = {
        name: _split_stats(data.splits[name], data.classes, measured.get(name))
        for name in names
        if split in (None, name)
    }
    if data.test_is_val and "test" in splits:
        splits["test"]["same_as"] = "val"
    source = arrays.source
    return {
        "kind": "dataset",
        "name": config.name,
        "classes": data.classes,
        "targets": target_kind(data.splits["train"].labels),
        "image_shape": list(data.in_shape),
        "mean": data.mean,
        "std": data.std,
        "imbalance": _class_imbalance(data.splits["train"].labels, data.classes),
        "splits": splits,
        "sizes": source.sizes if source else None,
        "modes": source.modes if source else None,
        "unreadable": [{"path": path, "reason": reason} for path, reason in data.skipped],
        "duplicates": find_duplicates(
            _as_drawn(arrays, data),
            Path(config.name) if source else None,
            lambda done, total: report("hashing", done, total),
        ),
        "notes": data.notes,
    }


def _as_drawn(arrays: ImageArrays, data: PreparedData) -> ImageArrays:
    """``arrays`` split as train splits them, each file still named: a photo saved twice
    may be drawn into train and test. A test split that is val is searched once."""
    splits = {name: split for name, split in data.splits.items() if not (name == "test" and data.test_is_val)}
    if arrays.source is None:
        return replace(arrays, splits=splits)
    files = {name: _files(arrays.source.files, name, split) for name, split in splits.items()}
    return replace(arrays, splits=splits, source=replace(arrays.source, files=files))


def _files(stored: dict[str, list[str]], name: str, split: Split | FileSplit) -> list[str]:
    """Each sample's file; a split drawn from train indexes train's files."""
    if isinstance(split, FileSplit):
        return list(split.files)
    return [stored[name if name in stored else "train"][row] for row in split.row_index]


def _silent(phase: str, done: int, total: int) -> None:
    pass


def _split_stats(
    split: Split | FileSplit, classes: list[str], measured: tuple[list[float], list[float]] | None = None
) -> dict[str, Any]:
    """``measured``: the split's mean/std when already known (train's, measured by prepare)."""
    counts = _class_counts(split.labels, classes)
    mean, std = measured or (channel_stats(split) if len(split) else ([], []))
    return {
        "n": len(split),
        "per_class": None if counts is None else {name: int(c) for name, c in zip(classes, counts, strict=True)},
        "imbalance": _imbalance(counts) if target_kind(split.labels) in CLASSES else None,
        "mean": mean,
        "std": std,
    }


def _class_counts(labels: np.ndarray, classes: list[str]) -> np.ndarray | None:
    """Images per class (of masks: pixels), of keypoints the images where each point is
    present; None for regression values."""
    kind = target_kind(labels)
    if kind == "points":
        return point_counts(labels, len(classes))
    return label_counts(labels, len(classes)) if kind in CLASSES else None


def _class_imbalance(labels: np.ndarray, classes: list[str]) -> float | None:
    return _imbalance(label_counts(labels, len(classes))) if target_kind(labels) in CLASSES else None


def _imbalance(counts: np.ndarray | None) -> float | None:
    """Largest over smallest class; None when some class has no sample (or there are no classes)."""
    if counts is None:
        return None
    present = counts[counts > 0]
    return float(present.max() / present.min()) if len(present) == len(counts) else None


def find_duplicates(
    arrays: ImageArrays, folder: Path | None = None, progress: Counting | None = None
) -> dict[str, Any]:
    """Exact duplicates by a hash of each decoded image: ``across`` counts, per pair of
    splits ("train/test"), the distinct images found in both (train/test leakage);
    ``within`` counts, per split, images that repeat an earlier one of
    the same split; ``groups`` names up to 20 sets of equal images (file paths for folders,
    else split[index])."""
    where: dict[bytes, list[tuple[str, int]]] = defaultdict(list)
    names = [s for s in SPLIT_ORDER if s in arrays.splits]
    total, done = sum(len(arrays.splits[name]) for name in names), 0
    for name in names:
        i = 0
        for chunk in arrays.splits[name].chunks():
            for image in chunk:
                where[hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()].append((name, i))
                i += 1
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    across = {f"{a}/{b}": 0 for i, a in enumerate(names) for b in names[i + 1 :]}
    within = dict.fromkeys(names, 0)
    groups = [places for places in where.values() if len(places) > 1]
    # Those of one image under several classes first: a labelling mistake training learns from.
    groups.sort(key=lambda places: len(_classes_of(arrays, places)) < 2)
    for places in groups:
        found = [s for s in names if any(p[0] == s for p in places)]
        for s in found:
            within[s] += sum(p[0] == s for p in places) - 1
        for i, a in enumerate(found):
            for b in found[i + 1 :]:
                across[f"{a}/{b}"] += 1
    return {
        "across": across,
        "within": within,
        "groups": len(groups),
        "conflicting": sum(len(_classes_of(arrays, places)) > 1 for places in groups),
        "examples": [[_label(arrays, folder, p) for p in places] for places in groups[:EXAMPLES_SHOWN]],
        "example_classes": [_classes_of(arrays, places) for places in groups[:EXAMPLES_SHOWN]],
    }


def _classes_of(arrays: ImageArrays, places: list[tuple[str, int]]) -> list[str]:
    """The names of the classes a group of equal images is filed under (none for targets
    that are no class: masks, points, values)."""
    labels = [arrays.splits[split].labels for split, _ in places]
    if any(lab.ndim != 1 or lab.dtype.kind not in "iu" for lab in labels):
        return []
    return [arrays.classes[k] for k in sorted({int(lab[i]) for lab, (_, i) in zip(labels, places, strict=True)})]


def _label(arrays: ImageArrays, folder: Path | None, place: tuple[str, int]) -> str:
    split, index = place
    if arrays.source is not None and folder is not None:
        return str(folder / arrays.source.files[split][index])
    return f"{split}[{index}]"
