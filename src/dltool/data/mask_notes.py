"""Notes on segmentation masks that train, but likely not as their maker meant: both loaders
add them to the run's log (``SourceReport.notes``).

- 255 marks pixels to ignore: binary masks saved as 0/255 among masks of class indices leave
  their foreground out of the loss and the scores (``ignore_note``);
- without classes.txt the classes are numbered 0..the largest label: one stray value (200
  among masks of 0..2) makes 201 classes, most of which no mask holds (``unused_labels_note``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass

import numpy as np

from dltool._text import counted, first_few
from dltool.tasks import SegmentationTask
from dltool.tasks.pixels import IGNORE

# Dense labelling leaves far less to ignore: VOC's object outlines and Cityscapes' void
# pixels are about 5-10% of their pixels. Over 30% the foreground itself is likely ignored
# (0/255 masks) or the masks are sparse on purpose (scribbles), which the note allows. A small
# foreground saved as 255 stays under any such share: masks holding only 0 and 255 beside
# masks of class indices are noted whatever the share.
IGNORED_SHARE_NOTED = 0.3


@dataclass(frozen=True)
class IgnoreCounts:
    """Of some masks: pixels marked 255, all pixels, masks holding only 0 and 255, masks."""

    ignored: int = 0
    pixels: int = 0
    binary: int = 0
    masks: int = 0

    def __add__(self, other: IgnoreCounts) -> IgnoreCounts:
        return IgnoreCounts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


def ignore_counts(labels: np.ndarray) -> IgnoreCounts:
    """The ``IgnoreCounts`` of one mask of class indices (H, W), IGNORE marking pixels to ignore."""
    count = np.bincount(labels.ravel(), minlength=IGNORE + 1)
    binary = bool(count[0] and count[IGNORE] and not count[1:IGNORE].any())
    return IgnoreCounts(int(count[IGNORE]), labels.size, int(binary), 1)


def ignore_note(counts: IgnoreCounts, where: str = "training masks") -> list[str]:
    """A note when 255 covers more than ``IGNORED_SHARE_NOTED`` of the pixels, or when some
    masks hold only 0 and 255 and others more."""
    share = counts.ignored / max(counts.pixels, 1)
    if share <= IGNORED_SHARE_NOTED and counts.binary in (0, counts.masks):
        return []
    found = f"255 (ignored) covers {share:.0%} of the pixels of {counted(counts.masks, where[:-1], where)}"
    binary = f"{counts.binary} of them hold only 0 and 255" if counts.binary else "left out of the loss and scores"
    return [f"{found}, {binary}: {SegmentationTask.few_classes_hint} (unless they are sparse on purpose)"]


def unused_labels_note(labels: Iterable[int]) -> list[str]:
    """A note when most classes numbered 0..the largest of ``labels`` (the labels the masks
    hold, no classes.txt) appear in no mask."""
    found = set(labels)
    largest = max(found, default=0)
    unused = [label for label in range(largest) if label not in found]
    if 2 * len(unused) <= largest + 1:
        return []
    named = f"labels {first_few(_runs(unused))} appear in no mask"
    return [
        f"{named}: {largest + 1} classes from the largest label {largest}; a classes.txt names the classes"
        f" (is {largest} a typo?)"
    ]


def _runs(labels: list[int]) -> list[str]:
    """Sorted ``labels`` as runs: [3, 4, 5, 9] → ['3-5', '9']."""
    starts = [label for label in labels if label - 1 not in labels]
    ends = [label for label in labels if label + 1 not in labels]
    return [f"{start}-{end}" if end > start else str(start) for start, end in zip(starts, ends, strict=True)]
