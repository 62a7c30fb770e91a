"""Class names on a figure's axis: clipped to a width, every k-th beyond ``LABELS_UP_TO``."""

from __future__ import annotations

# Class names shown on an axis: every k-th beyond this many classes.
LABELS_UP_TO = 40


def clip_name(name: str, length: int = 14) -> str:
    """``name`` cut to ``length`` characters, an ellipsis marking the cut."""
    name = str(name)
    return name if len(name) <= length else name[: length - 1] + "…"


def class_ticks(classes: list[str]) -> tuple[list[int], list[str]]:
    """The tick positions and their clipped names: every class up to ``LABELS_UP_TO``, else
    every k-th so that about that many are shown."""
    step = max(1, -(-len(classes) // LABELS_UP_TO))
    ticks = list(range(0, len(classes), step))
    return ticks, [clip_name(classes[t]) for t in ticks]
