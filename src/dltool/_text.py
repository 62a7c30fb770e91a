"""Words for the lines dltool writes to people."""

from __future__ import annotations

import unicodedata


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun`` agreeing: '1 epoch', '3 epochs', '1,000 images'; ``plural``
    where adding an s is wrong ('2 batches', '2 worker processes')."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def first_few(items: list[str], shown: int = 3) -> str:
    """'a, b, c and 4 more': the first ``shown`` of ``items``, and how many are left out."""
    more = f" and {len(items) - shown:,} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def right_aligned(text: str, width: int) -> str:
    """``text`` padded on the left to fill ``width`` terminal cells: a wide character (CJK,
    most emoji) takes two, which ``str.rjust`` counts as one."""
    return " " * max(0, width - cells(text)) + text


def cells(text: str) -> int:
    """The terminal cells ``text`` takes (East Asian Wide and Fullwidth characters: two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def composed(name: str) -> str:
    """``name`` in Unicode's composed form (NFC), by which two spellings of one name compare
    equal: macOS's file systems and zips store "Bären" decomposed (a, U+0308), Linux what was typed."""
    return unicodedata.normalize("NFC", name)
