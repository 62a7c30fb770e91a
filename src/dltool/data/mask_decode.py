"""A segmentation index decoded into arrays: images uint8 (N, C, H, W), masks uint8 (N, H, W).

Every image is stretched to one size (``image_size`` square, else the size most of the images
share, or their median size, said in a note), antialiased bilinear as the evaluation transform does (a JPEG
decoded by libjpeg at the smallest scale that still covers that size, as predict does); its mask
is resized to the same size by nearest neighbour, so labels are never blended. A mask holds
class indices (see ``dltool.data.masks``); a pair is skipped, with the reason, when its mask
and image differ in size, when the mask is not one channel of indices, or when it holds a
label outside the classes named. Decoding runs on threads (Pillow releases the GIL); the
arrays are cached under the data root like an image folder's (``dltool.data.cache``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dltool._io import atomic_write_json, open_regular, read_json
from dltool.data.arrays import ImageArrays, SourceReport, Split
from dltool.data.cache import cached, decoded_fingerprint, folder_cache_dir
from dltool.data.decoding import Progress, common_size, parallel, split_members
from dltool.data.images import ImageDecodeError, fit_image, open_image, read_image, to_channels
from dltool.data.mask_notes import IgnoreCounts, ignore_counts, ignore_note, unused_labels_note
from dltool.data.masks import MAX_CLASSES, MaskIndex
from dltool.errors import CheckpointError, DatasetError
from dltool.tasks.pixels import IGNORE

MASK_MODES = frozenset({"L", "P", "1", "I;16", "I;16B", "I;16L", "I"})
# 2: JPEGs drafted at reduced scale (and the fingerprint shared with tables); 3: notes on the masks' labels
CACHE_FORMAT = "dltool-masks/3"


@dataclass(frozen=True)
class _Pair:
    """One decoded pair: its class labels found (a 256-long presence row), or why it was skipped."""

    present: np.ndarray | None = None
    mode: str = ""
    size: tuple[int, int] = (0, 0)  # (width, height) as stored
    reason: str = ""


def load_masks(
    index: MaskIndex,
    *,
    cache_root: str | Path | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    progress: Progress | None = None,
) -> ImageArrays:
    """The index's splits decoded (once; then read from the cache while the files are unchanged)."""
    key = fingerprint(index, image_size, channels)
    path = folder_cache_dir(index.root, cache_root) / f"masks-{image_size or 'auto'}-{channels}.safetensors"
    return cached(path, key, lambda: decode_masks(index, image_size, channels, progress=progress))


def fingerprint(index: MaskIndex, image_size: int | None, channels: int | None) -> str:
    return decoded_fingerprint(CACHE_FORMAT, {"size": image_size, "channels": channels}, index)


def decode_masks(
    index: MaskIndex,
    image_size: int | None,
    channels: int | None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> ImageArrays:
    """Decode every pair of ``index`` into arrays (see the module docstring)."""
    rows = [(split, pair) for split, pairs in index.pairs.items() for pair in pairs]
    notes = list(index.notes)
    size = (image_size, image_size) if image_size else common_size(index.root, [r[1][0] for r in rows], notes, workers)
    width = channels or 3
    images = np.zeros((len(rows), width, *size), np.uint8)
    masks = np.zeros((len(rows), *size), np.uint8)
    lut = mask_lut(index)

    def one(i: int) -> _Pair:
        _, (image_path, mask_path) = rows[i]
        return _decode_pair(index.root, (image_path, mask_path), lut, (images[i], masks[i]), width)

    decoded = parallel(one, range(len(rows)), workers, progress)
    classes = _classes(index, decoded)
    notes += [] if index.classes is not None else unused_labels_note(_labels_found(decoded))
    for i, pair in enumerate(decoded):
        if pair.present is not None and (bad := _outside(pair.present, len(classes))) is not None:
            decoded[i] = _Pair(reason=f"mask label {bad} is not a class (0..{len(classes) - 1}, {IGNORE} ignored)")
    return _arrays(index, rows, decoded, (images, masks), classes, notes)


def _decode_pair(
    root: Path, pair: tuple[str, str], lut: np.ndarray, out: tuple[np.ndarray, np.ndarray], channels: int
) -> _Pair:
    try:
        image, mask, mode, stored = read_pair(root, pair, lut, out[1].shape)
    except ImageDecodeError as error:
        return _Pair(reason=error.reason)
    out[0][...], out[1][...] = fit_pair(image, mask, out[1].shape, channels)
    present = np.bincount(out[1].ravel(), minlength=256) > 0
    return _Pair(present, mode, stored)


def read_pair(
    root: Path, pair: tuple[str, str], lut: np.ndarray, size: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, str, tuple[int, int]]:
    """Image and mask files ``pair`` (relative to ``root``) for ``fit_pair`` to ``size``
    (height, width): the image in its natural form (``read_image``: a JPEG drafted at the
    smallest scale that still covers ``size``; its mode and stored size too) and the mask's
    class indices at the stored size, uint8 (H, W), through ``lut`` (raw value → class index).
    ``ImageDecodeError`` when either cannot be read, their sizes differ or the mask holds a
    value that is no label."""
    image, mode, stored = read_image(root / pair[0], (int(size[0]), int(size[1])), None)
    return image, read_labels(root, pair, lut, stored[::-1]), mode, stored


def read_labels(root: Path, pair: tuple[str, str], lut: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The class indices of ``pair``'s mask (see ``read_pair``), whose image is ``size``
    (height, width) as stored; the error names the image, as a skipped pair is listed."""
    raw = read_mask(root / pair[1])
    if raw.shape != tuple(size):
        h, w = raw.shape
        raise ImageDecodeError(root / pair[0], f"mask {pair[1]} is {w}x{h}, the image {size[1]}x{size[0]}")
    if raw.max(initial=0) > IGNORE:
        raise ImageDecodeError(
            root / pair[0], f"mask label {int(raw.max())} is not a class ({IGNORE} marks ignored pixels)"
        )
    mask = lut[raw]
    if (mask < 0).any():
        raise ImageDecodeError(root / pair[0], f"mask value {int(raw[mask < 0][0])} is none of the dataset's labels")
    return mask.astype(np.uint8)


def fit_pair(image: np.ndarray, mask: np.ndarray, size: Sequence[int], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation transform of a pair: the image stretched to ``size`` (height, width),
    antialiased bilinear, with ``channels``; its mask by nearest neighbour."""
    height, width = int(size[0]), int(size[1])
    return to_channels(fit_image(image, (height, width), None), channels), resize_mask(mask, size)


def mask_fits(path: Path, size: tuple[int, int]) -> bool:
    """Whether the header of mask file ``path`` says class indices of ``size`` (width, height)
    as stored, which ``read_labels`` asks of it (no pixel is decoded)."""
    try:
        with open_regular(path) as file, open_image(file, path) as image:
            return image.mode in MASK_MODES and image.size == size
    except (OSError, SyntaxError, ValueError, EOFError, ImageDecodeError):  # unreadable: decoding names it
        return False


def read_mask(path: str | Path) -> np.ndarray:
    """The class indices of mask file ``path`` (H, W), int32; ``ImageDecodeError`` when it
    cannot be read or is not one channel of indices (an RGB mask, say)."""
    try:
        file = open_regular(path)
    except OSError as error:
        raise ImageDecodeError(path, f"cannot read ({error.strerror or error})") from None
    try:
        with file, open_image(file, path) as image:
            if image.mode not in MASK_MODES:
                raise ImageDecodeError(
                    path, f"a mask holds one class index per pixel (PNG mode L, P or I;16), not mode {image.mode}"
                )
            return np.asarray(image).astype(np.int32)
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, Image.DecompressionBombError):
        raise ImageDecodeError(path, "not a readable image (Pillow cannot decode it)") from None


def resize_mask(mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A uint8 mask (H, W) resized to (height, width) by nearest neighbour (labels never blend)."""
    height, width = int(size[0]), int(size[1])
    if mask.shape == (height, width):
        return mask
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))


def mask_lut(index: MaskIndex) -> np.ndarray:
    """Raw mask value (0..255) → class index, -1 for none."""
    if index.lut is not None:
        return np.array(index.lut, np.int32)
    return np.arange(256, dtype=np.int32)


def _classes(index: MaskIndex, decoded: list[_Pair]) -> list[str]:
    if index.classes is not None:
        return list(index.classes)
    found = [np.flatnonzero(p.present[:IGNORE]) for p in decoded if p.present is not None]
    return numbered(max((int(f.max()) for f in found if len(f)), default=0))


def _labels_found(decoded: list[_Pair]) -> list[int]:
    rows = [p.present[:IGNORE] for p in decoded if p.present is not None]
    return np.flatnonzero(np.any(rows, axis=0)).tolist() if rows else []


def numbered(largest: int) -> list[str]:
    """Class names of a folder without classes.txt: 0..the largest label found."""
    return [str(k) for k in range(min(largest + 1, MAX_CLASSES))]


def remembered_labels(index: MaskIndex, cache_root: str | Path | None) -> tuple[list[int], bool]:
    """(``labels_found`` in the masks of ``index``, whether an earlier pass over the same index
    (files' names, sizes, mtimes) gave them). The pass reads every mask: a folder of 20,000 would
    pay it at each start. Kept in a small JSON beside the folder's caches; one that cannot be
    read or written only means counting again."""
    path = folder_cache_dir(index.root, cache_root) / "labels-found.json"
    key = decoded_fingerprint(CACHE_FORMAT, {"labels_found": True}, index)
    try:
        document = read_json(path)
        if isinstance(document, dict) and document.get("fingerprint") == key:
            return [int(label) for label in document["labels"]], True
    except (CheckpointError, KeyError, TypeError, ValueError):
        pass  # none yet, or damaged: count
    masks = [mask for pairs in index.pairs.values() for _, mask in pairs]
    labels = labels_found(index.root, masks)
    with suppress(OSError):  # a read-only data root: count again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"fingerprint": key, "labels": labels})
    return labels, False


def labels_found(root: Path, masks: Sequence[str], workers: int | None = None) -> list[int]:
    """The class indices below ``IGNORE`` that the mask files ``masks`` (relative to ``root``)
    hold, sorted: one pass, on threads, holding one mask per thread. Unreadable masks are left
    out here (decoding names them)."""

    def found(mask: str) -> set[int]:
        try:
            values = np.unique(read_mask(root / mask))
        except ImageDecodeError:
            return set()
        return {int(value) for value in values[values < IGNORE]}

    return sorted(set().union(*parallel(found, masks, workers)))


def _outside(present: np.ndarray, classes: int) -> int | None:
    bad = np.flatnonzero(present[classes:IGNORE])
    return int(bad[0]) + classes if len(bad) else None


def _arrays(
    index: MaskIndex,
    rows: list[tuple[str, tuple[str, str]]],
    decoded: list[_Pair],
    arrays: tuple[np.ndarray, np.ndarray],
    classes: list[str],
    notes: list[str],
) -> ImageArrays:
    good = [i for i, p in enumerate(decoded) if p.present is not None]
    skipped = index.skipped + [(rows[i][1][0], p.reason) for i, p in enumerate(decoded) if p.present is None]
    if not good:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DatasetError(f"{index.root}: none of its {len(rows)} image/mask pairs is usable{first}")
    splits, files = {}, {}
    for split, chosen in split_members(
        rows, good, index.pairs, index.root, ("image/mask pair", "pairs"), notes
    ).items():
        members = np.array(chosen, np.int64)
        splits[split] = Split(arrays[0][members], arrays[1][members])
        files[split] = [rows[i][1][0] for i in members]
    notes += ignore_note(sum(map(ignore_counts, splits["train"].labels), IgnoreCounts())) if "train" in splits else []
    sizes = Counter(f"{decoded[i].size[0]}x{decoded[i].size[1]}" for i in good)
    modes = Counter(decoded[i].mode for i in good)
    report = SourceReport(files, sorted(skipped), dict(sizes.most_common()), dict(modes.most_common()), notes)
    return ImageArrays(classes, splits, report)
