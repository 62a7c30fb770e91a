"""When to try a download again: exponential backoff with jitter, or what the server asks.

A busy server (HTTP 429 Too Many Requests, 503 Service Unavailable) may say how long to wait
in ``Retry-After`` (seconds, or an HTTP date); the next attempt waits at least that long, up
to ``MAX_RETRY_AFTER_S``. Every wait is jittered (×0.5–1.5) so that many clients refused at
once do not all come back at the same moment.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from dltool.data.sources import TIMEOUT_S

RETRIES = 3  # failed attempts in a row (without new bytes) before a mirror is given up
BACKOFF_S = 1.0  # first wait between attempts; doubles after each failure
MAX_RETRY_AFTER_S = 300.0  # a longer Retry-After gives this mirror up for now (the next is tried)
JITTER = (0.5, 1.5)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for a server, and how often to try it again."""

    timeout_s: float = TIMEOUT_S
    retries: int = RETRIES
    backoff_s: float = BACKOFF_S
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def wait_s(self, failures: int, retry_after_s: float | None = None) -> float:
        """The pause before the next attempt after ``failures`` in a row (none after progress),
        at least the server's ``Retry-After``."""
        backoff = self.backoff_s * 2 ** (failures - 1) * self.rng.uniform(*JITTER) if failures else 0.0
        return max(backoff, retry_after_s or 0.0)


def retry_after_s(header: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (None when absent or unreadable)."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
