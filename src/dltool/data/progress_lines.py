"""A long data pass told as occasional lines: for the run log, where a bar has no place.

Decoding a photo folder into the cache on its first use takes minutes; without a word the run
looks hung. ``every`` turns a pass's ``(done, total)`` calls into a line once it has run
``AFTER_S`` and then every ``EVERY_S``; a pass shorter than that (digits, a cached folder)
says nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dltool.data.channel_stats import Counting

AFTER_S, EVERY_S = 3.0, 10.0


def every(say: Callable[[str], None], what: str) -> Counting:
    """``progress(done, total)`` saying ``what`` ("decoding photos") with ``done`` of ``total``
    once the pass has run ``AFTER_S`` seconds, then at most every ``EVERY_S``, until it ends."""
    due: list[float] = []  # when the next line is due, from the pass's first call

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if not due:
            due.append(now + AFTER_S)
        elif now >= due[0] and done < total:
            due[0] = now + EVERY_S
            say(f"{what}: {done:,} of {total:,} images")

    return progress


def data_progress(name: str, say: Callable[[str], None] | None) -> tuple[Counting | None, Counting | None]:
    """``prepare_data``'s ``progress`` (the mean/std pass) and ``decoding`` of dataset ``name``,
    told to ``say``; None without it."""
    if say is None:
        return None, None
    return every(say, "measuring mean/std"), every(say, f"decoding {name}")
