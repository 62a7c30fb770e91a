"""Estimated-memory checks before a large allocation: a size typo such as ``model.width=1e9``
is one line naming the setting to lower, not an allocator crash deep inside torch."""

from __future__ import annotations

import os
import re

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


def check_fits(nbytes: int, what: str, lower: str) -> None:
    """Refuse an allocation of ``nbytes`` that the machine's available memory cannot hold:
    it cannot succeed, and trying can take the machine down. ``lower`` names the settings."""
    limit = available_memory()
    if limit is not None and nbytes > limit:
        raise ConfigError(
            f"{what} would need {nbytes / 1e9:.3g} GB, more than the {limit / 1e9:.3g} GB of memory "
            f"available; lower {lower}"
        )
