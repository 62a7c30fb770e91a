"""Estimated-memory checks before a large allocation: a size typo such as ``model.width=1e9``
is one line naming the setting to lower, not an allocator crash deep inside torch."""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Callable

from dltool.errors import ConfigError


def available_memory() -> int | None:
    """Bytes of memory this process could still get: Linux's MemAvailable (free plus
    reclaimable cache), else all physical memory; None where the OS says neither."""
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            if match := re.search(r"^MemAvailable:\s+(\d+) kB", file.read(), re.MULTILINE):
                return int(match.group(1)) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(nbytes: int, what: str, lower: str | Callable[[], str]) -> None:
    """Refuse an allocation of ``nbytes`` that the machine's available memory cannot hold:
    it cannot succeed, and trying can take the machine down. ``lower`` names the settings
    (a function: worked out only for the refusal)."""
    limit = available_memory()
    if limit is not None and nbytes > limit:
        raise ConfigError(
            f"{what} would need {nbytes / 1e9:.3g} GB, more than the {limit / 1e9:.3g} GB of memory "
            f"available; lower {lower() if callable(lower) else lower}"
        )


# glibc's mallopt parameter number and the threshold it is set to.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 1024


def return_large_blocks() -> None:
    """Have large blocks (a decoded batch, a photo) mapped afresh and returned to the OS when
    freed, in a process that allocates them over and over (a decoding worker).

    glibc raises its mmap threshold each time such a block is freed (up to 32 MB), after which
    batches of a few MB come from the heap, which fragments: a stream worker's resident memory
    grew from 380 to 880 MB over an epoch of 20,000 photos, and stays near 400 MB with the
    threshold fixed at glibc's initial 128 KiB (benches/stream_pipeline.py). Elsewhere (another
    C library, another OS) this does nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        pass
