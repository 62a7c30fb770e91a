"""A segmentation folder kept as file lists for the stream loader (``data.loader: stream``,
or ``auto`` over ``data.memory_budget``): the pairs indexed, not decoded.

The decoded size counts the masks too (one byte per pixel beside the image's channels). The
images decode to 3 channels unless ``data.channels`` says otherwise, as the memory loader's
arrays. Without ``classes.txt`` the classes are numbered 0..the largest label, found by a
pass over the mask files (one mask in memory per thread) and remembered beside the folder's
caches until a file changes; the memory loader finds it on the masks it decodes. Pairs that
cannot be used (unreadable, sizes that differ, a label outside the classes) are named when a
worker meets them and left out. The share of ignored pixels (``ignore_note``) is measured on
up to 64 training masks spread over the split, as the memory loader measures it on them all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dltool.config.schema import DataConfig
from dltool.data.arrays import ImageArrays, SourceReport
from dltool.data.budget import HEADER_SAMPLE, choose_loader, decoded_shape, header_or_none, spread, stream_shape
from dltool.data.decoding import parallel
from dltool.data.files import mask_file_arrays
from dltool.data.images import ImageDecodeError, ImageHeader
from dltool.data.mask_decode import mask_fits, mask_lut, numbered, read_mask, remembered_labels
from dltool.data.mask_notes import IgnoreCounts, ignore_counts, ignore_note, unused_labels_note
from dltool.data.masks import MaskIndex, index_masks
from dltool.tasks.pixels import IGNORE


def streamed_masks(config: DataConfig, folder: Path) -> tuple[ImageArrays | None, list[str]]:
    """A segmentation folder as file lists when ``data.loader`` streams it (None: held in
    memory), and the choice's lines. Its images have 3 channels unless data.channels says,
    as in memory; without classes.txt the classes are numbered by a pass over the masks."""
    index = index_masks(folder)
    config = config.model_copy(update={"channels": config.channels or 3})
    images = [image for pairs in index.pairs.values() for image, _ in pairs]
    usable, headers = usable_pairs(index)
    choice = choose_loader(config, usable, decoded_shape(config, headers), masks=True)
    lines = [choice.line] if choice.line else []
    if choice.kind == "memory":
        return None, lines
    shape = stream_shape(config, headers, len(images))
    classes = index.classes
    if classes is None:
        labels, remembered = remembered_labels(index, config.root)
        classes = numbered(max(labels, default=0))
        source = "counted before, files unchanged" if remembered else "no classes.txt"
        lines.append(f"classes 0..{len(classes) - 1}: the largest label of the {len(images):,} masks ({source})")
        lines += unused_labels_note(labels)
    arrays = mask_file_arrays(index, (shape.channels, shape.height, shape.width), classes)
    files = {split: [image for image, _ in pairs] for split, pairs in index.pairs.items()}
    report = SourceReport(files, index.skipped, {}, {}, _sampled_ignore(index))  # no sizes nor modes: none decoded
    return ImageArrays(arrays.classes, arrays.splits, report), [*lines, *index.notes, *shape.notes]


def usable_pairs(index: MaskIndex, count: int = HEADER_SAMPLE) -> tuple[int, list[ImageHeader]]:
    """How many of ``index``'s pairs will be trained on, and the image headers of those among
    ``count`` pairs spread over them: pairs whose mask is of another size or holds no class
    indices (an RGB mask) are dropped when decoded, so the share of the sample whose headers
    fit stands for all of them (exact when every pair is sampled). No pixel is decoded."""
    pairs = [pair for split in index.pairs.values() for pair in split]
    sampled = spread(pairs, count)
    headers = [header for pair in sampled if (header := _fitting_header(index.root, pair)) is not None]
    return round(len(pairs) * len(headers) / max(1, len(sampled))), headers


def _fitting_header(root: Path, pair: tuple[str, str]) -> ImageHeader | None:
    """The image's header when its mask's header fits it (one channel of indices, its size)."""
    image = header_or_none(root / pair[0])
    return image if image is not None and mask_fits(root / pair[1], (image.width, image.height)) else None


def _sampled_ignore(index: MaskIndex, count: int = HEADER_SAMPLE) -> list[str]:
    """``ignore_note`` of ``count`` training masks spread evenly over the split."""
    pairs = index.pairs.get("train", [])
    picked = pairs[:: max(1, len(pairs) // count)][:count]
    lut = mask_lut(index)
    counts = parallel(lambda pair: _ignore_counts(index.root, pair, lut), picked, None)
    return ignore_note(sum(counts, IgnoreCounts()), "sampled training masks")


def _ignore_counts(root: Path, pair: tuple[str, str], lut: np.ndarray) -> IgnoreCounts:
    """``ignore_counts`` of ``pair``'s mask through ``lut``; none for a pair left out of
    training (unreadable, or a mask that does not fit its image: a worker names it)."""
    try:
        raw = read_mask(root / pair[1]) if _fitting_header(root, pair) else None
    except ImageDecodeError:
        raw = None
    if raw is None:
        return IgnoreCounts()
    return ignore_counts(np.maximum(lut[np.clip(raw, 0, IGNORE)], 0))  # -1, no label: a worker names it
