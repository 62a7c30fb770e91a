"""Words for the lines dltool writes to people."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun`` agreeing: '1 epoch', '3 epochs', '1,000 images'; ``plural``
    where adding an s is wrong ('2 batches', '2 worker processes')."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"
