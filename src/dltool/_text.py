"""Words for the lines dltool writes to people."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun`` agreeing: '1 epoch', '3 epochs', '1,000 images'; ``plural``
    where adding an s is wrong ('2 batches', '2 worker processes')."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def first_few(items: list[str], shown: int = 3) -> str:
    """'a, b, c and 4 more': the first ``shown`` of ``items``, and how many are left out."""
    more = f" and {len(items) - shown:,} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
