"""From a ``data`` config to ready splits: load, draw val, resize, measure mean/std."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltool.config.schema import DataConfig
from dltool.data import DatasetParams, datasets
from dltool.data.arrays import ImageArrays, LoadReport, Split, target_kind
from dltool.data.budget import choose_loader, decoded_shape, sample_headers, stream_shape
from dltool.data.channel_stats import Counting, channel_stats, train_stats
from dltool.data.files import FileSplit, file_arrays
from dltool.data.folders import index_folder, load_folder
from dltool.data.images import to_channels
from dltool.data.mask_decode import load_masks
from dltool.data.mask_stream import streamed_masks
from dltool.data.masks import index_masks, is_mask_folder
from dltool.data.resize import fit_images
from dltool.data.splits import Draw, draw_missing_splits, lacking_classes
from dltool.data.subsets import per_class, select_classes
from dltool.data.table_decode import load_table
from dltool.data.table_stream import streamed_table
from dltool.data.tables import index_table, table_file
from dltool.errors import ConfigError, DatasetError, UnknownNameError, similar_paths

# Unreadable files named one per line at the start of a run; the rest are counted.
SKIPPED_SHOWN = 20
# The evaluation crop of photo folders: timm's and torchvision's 224-of-256 default.
FOLDER_CROP_PCT = 0.875


@dataclass(frozen=True)
class PreparedData:
    """Train/val/test splits of uint8 images (arrays, or files the stream loader reads) with
    what a model needs to read them.

    ``skipped``: (path, reason) of the dataset's files that could not be decoded;
    ``notes``: what was decided for the user (a drawn split, a resize), one line each.
    ``test_is_val``: no test split was given, so the val split is scored as the test split.
    ``ready_s``: seconds spent loading (decoding, caching) and measuring the data;
    ``load``: how it was loaded (decoded or read from a cache), when the loader said.
    """

    classes: list[str]
    splits: dict[str, Split | FileSplit]
    mean: list[float]
    std: list[float]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    test_is_val: bool = False
    ready_s: float = 0.0
    load: LoadReport | None = None

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.splits["train"].image_shape

    def ready_line(self) -> str:
        """'data ready in 12.3 s: decoded 1,234 images, cache written'."""
        how = f": {self.load.describe()}" if self.load is not None else ""
        return f"data ready in {self.ready_s:.1f} s{how}"

    def messages(self) -> list[str]:
        """Lines for the user at the start of a run: each skipped file once, then the notes."""
        lines = [f"skipped {path}: {reason}" for path, reason in self.skipped[:SKIPPED_SHOWN]]
        if len(self.skipped) > SKIPPED_SHOWN:
            lines.append(
                f"... and {len(self.skipped) - SKIPPED_SHOWN} more unreadable files "
                f"(dltool stats DATASET --json lists them all)"
            )
        return lines + self.notes


def prepare_data(
    config: DataConfig,
    arrays: ImageArrays | None = None,
    progress: Counting | None = None,
    decoding: Counting | None = None,
) -> PreparedData:
    """Load ``config.name`` (or take ``arrays``), draw the test and val splits it lacks
    (``draw_missing_splits``), resize, convert channels, measure mean/std on train. Without a test
    split and with no ``test_fraction``, the val split doubles as the test split. Splits drawn from others index their arrays (no copy). An
    image folder is held in memory or kept as file lists for the stream loader, as
    ``data.loader`` decides (``dltool.data.budget``). ``progress(done, total)`` follows the
    mean/std pass over the training images, ``decoding`` a folder's first decode into its cache."""
    started = time.perf_counter()
    chosen: list[str] = []
    if arrays is None:
        arrays, chosen = _load(config, decoding)
    _refuse_class_picks(config, arrays)
    if config.classes is not None:
        arrays = select_classes(arrays, config.classes)
    splits: dict[str, Split | FileSplit] = dict(arrays.splits)
    notes = (list(arrays.source.notes) if arrays.source else []) + chosen
    if "train" not in splits:
        raise DatasetError(f"{config.name}: has no train split to train on (found: {', '.join(splits)})")
    _refuse_empty(config.name, splits)
    draw_missing_splits(splits, config, notes, arrays.source)
    notes += lacking_classes(splits, arrays.classes)
    if config.train_per_class is not None:  # after the val draw: val and test stay whole
        splits["train"] = per_class(splits["train"], config.train_per_class, config.split_seed)
        notes.append(f"data.train_per_class {config.train_per_class}: {len(splits['train'])} training images kept")
    splits = {name: _shaped(split, config) for name, split in splits.items()}
    test_is_val = "test" not in splits
    if test_is_val:
        splits["test"] = splits["val"]
        notes.append(
            f"{config.name} has no test split and data.test_fraction is 0: the val split doubles as the test "
            "split (test_is_val), so the test figure is optimistic — val chose the kept epoch"
        )
    mean, std = _normalisation(config, splits["train"], notes, progress)
    skipped = (
        [(str(Path(config.name) / path), reason) for path, reason in arrays.source.skipped] if arrays.source else []
    )
    ready_s = time.perf_counter() - started
    return PreparedData(arrays.classes, splits, mean, std, skipped, notes, test_is_val, ready_s, arrays.load)


def _normalisation(
    config: DataConfig, train: Split | FileSplit, notes: list[str], progress: Counting | None
) -> tuple[list[float], list[float]]:
    """``data.mean``/``std`` where given, else measured on ``train``; as many as its channels."""
    if config.mean is not None and config.std is not None:
        mean, std = config.mean, config.std
    else:
        mean, std = train_stats(train, notes, progress)
    if len(mean) != train.image_shape[0]:
        raise DatasetError(f"data.mean has {len(mean)} values; the images have {train.image_shape[0]} channels")
    return mean, std


def _load(config: DataConfig, decoding: Counting | None = None) -> tuple[ImageArrays, list[str]]:
    """The dataset's splits as arrays, or for an image folder the stream loader reads, as
    file lists; with the loader choice's lines for the log."""
    folder = _folder(config)
    if folder is None:
        if config.loader == "stream":
            raise ConfigError(
                f"data.loader=stream reads image folders; {config.name} is an array dataset, held in memory: "
                "use data.loader=auto or memory"
            )
        return load_arrays(config, decoding), []
    if table_file(folder):
        streamed, lines = streamed_table(config, folder)
        return streamed or load_arrays(config, decoding), lines
    if is_mask_folder(folder):
        streamed, lines = streamed_masks(config, folder)
        return streamed or load_arrays(config, decoding), lines
    index = index_folder(folder)
    files = [path for rows in index.files.values() for path, _ in rows]
    headers = sample_headers(index.root, files)
    choice = choose_loader(config, len(files), decoded_shape(config, headers))
    lines = [choice.line] if choice.line else []
    if choice.kind == "memory":
        return load_arrays(config, decoding), lines
    shape = stream_shape(config, headers, len(files))
    arrays = file_arrays(index, (shape.channels, shape.height, shape.width), config.crop_pct)
    return arrays, [*lines, *index.notes, *shape.notes]


def files_fitted_to(config: DataConfig, shape: tuple[int, int, int]) -> ImageArrays | None:
    """A folder's files, fitted to ``shape`` as read; None: a registered dataset, table, masks."""
    folder = _folder(config)
    if folder is None or table_file(folder) or is_mask_folder(folder):
        return None
    return file_arrays(index_folder(folder), shape, config.crop_pct)


def _shaped(split: Split | FileSplit, config: DataConfig) -> Split | FileSplit:
    """A registered dataset's split resized (``data.image_size``) and converted
    (``data.channels``); a folder's files were fitted as decoded (cache) or are when read."""
    if isinstance(split, FileSplit):
        return split
    if config.image_size is not None and config.name in datasets and not _fits_itself(config.name):
        split = resize(split, config.image_size, config.crop_pct)
    if config.channels is not None:
        split = convert_channels(split, config.channels)
    return split


def _fits_itself(name: str) -> bool:
    """Whether registered dataset ``name``'s loader gives images at data.image_size already."""
    params = datasets.get(name).params
    return params.sized or params.configured


def _refuse_class_picks(config: DataConfig, arrays: ImageArrays) -> None:
    kinds = {target_kind(split.labels) for split in arrays.splits.values()} - {"labels"}
    if kinds and (config.classes is not None or config.train_per_class is not None):
        raise ConfigError(
            f"data.classes and data.train_per_class pick images by their class; {config.name} has "
            f"{' and '.join(sorted(kinds))}, not one class per image: leave them unset"
        )


def _refuse_empty(name: str, splits: dict[str, Split | FileSplit]) -> None:
    for split, data in splits.items():
        if not len(data):
            raise DatasetError(f"{name}: the {split} split is empty (0 images); check or download the dataset again")


def load_arrays(config: DataConfig, progress: Counting | None = None) -> ImageArrays:
    """A registered dataset by name, else an image folder (see ``dltool.data.folders``);
    ``progress(done, total)`` follows the decoding of a folder's files."""
    folder = _folder(config)
    if folder is None:
        entry = datasets.get(config.name)
        if entry.params.configured:
            return entry.load()(config)
        fit = {"image_size": config.image_size, "channels": config.channels} if entry.params.sized else {}
        return entry.load()(root=config.root, **fit)
    if table_file(folder):
        return load_table(index_table(folder, Draw.of(config)), config)
    if is_mask_folder(folder):
        index = index_masks(folder)
        size, channels = config.image_size, config.channels
        return load_masks(index, cache_root=config.root, image_size=size, channels=channels, progress=progress)
    return load_folder(
        folder,
        cache_root=config.root,
        image_size=config.image_size,
        channels=config.channels,
        crop_pct=config.crop_pct,
        progress=progress,
    )


def given_splits(config: DataConfig) -> tuple[str, ...]:
    """The splits ``config.name`` comes with, before any is drawn from its train split. It is
    loaded as a run loads it (a folder's cache is filled the same way)."""
    arrays, _ = _load(with_crop_pct(config))
    return tuple(arrays.splits)


def has_masks(config: DataConfig) -> bool:
    """Whether ``data.name`` is a segmentation dataset (a folder of images/ and masks/, or a
    registered dataset that sizes its own masks)."""
    folder = _folder(config)
    return datasets.get(config.name).params.sized if folder is None else is_mask_folder(folder)


def require_run_folder(name: str, remedy: str) -> None:
    """A run's ``data.name`` that was an image folder and is no longer there: named, with
    ``remedy`` (the option that points the command at where it is now)."""
    if name not in datasets and not Path(name).expanduser().exists():
        raise DatasetError(f"{name}: the run's image folder is gone (moved or deleted); {remedy}")


def require_data(config: DataConfig) -> None:
    """The error ``prepare_data`` would raise for ``data.name`` (an unknown name, a file, a
    missing folder), before anything slower is checked or read."""
    _folder(config)


def _folder(config: DataConfig) -> Path | None:
    """The image folder ``data.name`` names; None for a registered dataset; errors for the rest."""
    if config.name in datasets:
        return None
    folder = Path(config.name).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists():
        raise ConfigError(f"data.name: {config.name} is a file; name a dataset or a folder of class sub-folders")
    if "/" in config.name or os.sep in config.name or config.name.startswith((".", "~")):
        raise ConfigError(f"data.name: no such folder: {config.name}{similar_paths(folder)}")
    raise UnknownNameError(
        "dataset",
        config.name,
        datasets.names(),
        hint="dltool list datasets; a folder of your own is named by its path",  # no option: commands differ
    )


def resize(split: Split, size: int, crop_pct: float | None = None) -> Split:
    """uint8 images through the evaluation transform at ``size`` (``fit_images``), a chunk
    at a time; images already square at ``size`` and not cropped are returned as they are."""
    if split.image_shape[1:] == (size, size) and crop_pct in (None, 1.0):
        return split
    return _rebuilt(split, (split.image_shape[0], size, size), lambda chunk: fit_images(chunk, size, crop_pct))


def convert_channels(split: Split, channels: int) -> Split:
    """The images as ``channels`` channels (``to_channels``), a chunk at a time."""
    if split.image_shape[0] == channels:
        return split
    return _rebuilt(split, (channels, *split.image_shape[1:]), lambda chunk: to_channels(chunk, channels))


def _rebuilt(split: Split, shape: tuple[int, int, int], convert: Callable[[np.ndarray], np.ndarray]) -> Split:
    """A new array of the converted images: only the result and one chunk are in memory."""
    out = np.empty((len(split), *shape), dtype=np.uint8)
    start = 0
    for chunk in split.chunks():
        out[start : start + len(chunk)] = convert(chunk)
        start += len(chunk)
    return Split(out, split.labels)


def with_crop_pct(config: DataConfig) -> DataConfig:
    """``config`` with ``crop_pct`` resolved, as a new run records it: its own value, else
    0.875 for an image folder resized to ``image_size`` (photos: the centre, as pretrained
    models are evaluated), else 1.0 (fixed-size datasets, and folders kept at their size).

    Resolved when a run starts, not when a config loads: a config.yaml written before
    ``crop_pct`` existed keeps its stretch-to-size transform (None) for eval and predict, and
    so do images with masks, resized whole (a crop would cut pixels off their masks)."""
    if has_masks(config):
        if config.crop_pct is not None:
            raise ConfigError(
                f"data.crop_pct: {config.name} has masks, resized whole with their images: leave it unset"
            )
        return config
    if config.crop_pct is not None:
        return config
    folder = config.name not in datasets and config.image_size is not None
    return config.model_copy(update={"crop_pct": FOLDER_CROP_PCT if folder else 1.0})


__all__ = [
    "DatasetParams",
    "PreparedData",
    "channel_stats",
    "files_fitted_to",
    "given_splits",
    "load_arrays",
    "prepare_data",
    "require_run_folder",
    "with_crop_pct",
]
