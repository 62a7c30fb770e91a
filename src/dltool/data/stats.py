"""What a dataset holds, as `dltool stats` shows it: the splits exactly as `train` prepares
them (default data settings), per-class counts, imbalance, the mean/std that `train`
normalises with, image sizes and modes (folders), unreadable files, exact duplicates."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dltool.config.schema import DataConfig
from dltool.data.arrays import ImageArrays, Split
from dltool.data.prepare import channel_stats, load_arrays, prepare_data
from dltool.errors import UsageError

SPLIT_ORDER = ("train", "val", "test")
# Duplicate groups listed by name in the report; all are counted.
EXAMPLES_SHOWN = 20


def dataset_stats(config: DataConfig, split: str | None = None) -> dict[str, Any]:
    """A JSON-ready report on ``config``'s dataset; ``split`` keeps only that split's row.

    ``mean``/``std`` are the train split's, the values `train` normalises with (each split
    also has its own). Duplicates are exact (equal decoded uint8 images) and looked for
    across and within the splits as stored, before a val split is drawn from train.
    """
    arrays = load_arrays(config)
    data = prepare_data(config, arrays)
    names = [s for s in SPLIT_ORDER if s in data.splits]
    if split is not None and split not in names:
        raise UsageError(f"--split {split}: {config.name} has splits {', '.join(names)}")
    splits = {name: _split_stats(data.splits[name], data.classes) for name in names if split in (None, name)}
    if data.test_is_val and "test" in splits:
        splits["test"]["same_as"] = "val"
    source = arrays.source
    return {
        "kind": "dataset",
        "name": config.name,
        "classes": data.classes,
        "image_shape": list(data.in_shape),
        "mean": data.mean,
        "std": data.std,
        "imbalance": _split_stats(data.splits["train"], data.classes)["imbalance"],
        "splits": splits,
        "sizes": source.sizes if source else None,
        "modes": source.modes if source else None,
        "unreadable": [{"path": path, "reason": reason} for path, reason in data.skipped],
        "duplicates": find_duplicates(arrays, Path(config.name) if source else None),
        "notes": data.notes,
    }


def _split_stats(split: Split, classes: list[str]) -> dict[str, Any]:
    counts = np.bincount(split.labels, minlength=len(classes))
    present = counts[counts > 0]
    mean, std = channel_stats(split) if len(split) else ([], [])
    return {
        "n": len(split),
        "per_class": {name: int(c) for name, c in zip(classes, counts, strict=True)},
        # Largest over smallest class; null when some class has no sample in this split.
        "imbalance": float(present.max() / present.min()) if len(present) == len(classes) else None,
        "mean": mean,
        "std": std,
    }


def find_duplicates(arrays: ImageArrays, folder: Path | None = None) -> dict[str, Any]:
    """Exact duplicates by a hash of each decoded image: ``across`` counts, per pair of
    splits ("train/test"), the distinct images found in both (train/test leakage);
    ``within`` counts, per split, images that repeat an earlier one of
    the same split; ``groups`` names up to 20 sets of equal images (file paths for folders,
    else split[index])."""
    where: dict[bytes, list[tuple[str, int]]] = defaultdict(list)
    names = [s for s in SPLIT_ORDER if s in arrays.splits]
    for name in names:
        i = 0
        for chunk in arrays.splits[name].chunks():
            for image in chunk:
                where[hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()].append((name, i))
                i += 1
    across = {f"{a}/{b}": 0 for i, a in enumerate(names) for b in names[i + 1 :]}
    within = dict.fromkeys(names, 0)
    groups = [places for places in where.values() if len(places) > 1]
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
        "examples": [[_label(arrays, folder, p) for p in places] for places in groups[:EXAMPLES_SHOWN]],
    }


def _label(arrays: ImageArrays, folder: Path | None, place: tuple[str, int]) -> str:
    split, index = place
    if arrays.source is not None and folder is not None:
        return str(folder / arrays.source.files[split][index])
    return f"{split}[{index}]"
