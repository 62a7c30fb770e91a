"""Switches read from the environment, all spelled alike."""

from __future__ import annotations

import os

from dltool.errors import UsageError

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_flag(name: str, default: bool = False) -> bool:
    """``$name`` as a switch: 1/true/yes/on or 0/false/no/off, in any case; unset or empty is
    ``default``. Anything else is a usage error: a mistyped "off" must not pass for on, nor a
    mistyped "on" for off."""
    text = os.environ.get(name, "").strip().lower()
    if text and text not in TRUE + FALSE:
        raise UsageError(f"${name}: {text[:40]!r} is not one of 1, true, yes, on or 0, false, no, off (empty: unset)")
    return text in TRUE if text else default


# Every switch dltool reads. Each command checks them all as it starts: a mistyped value is
# refused by every command at once, not only by the one that reads it (a zoo download), maybe
# after a long setup, while the other commands went on as if it were unset.
SWITCHES = ("DLTOOL_DEBUG", "DLTOOL_OFFLINE", "HF_HUB_OFFLINE", "DLTOOL_REUSE_HEAP")


def check_switches() -> None:
    """A usage error for the first of ``SWITCHES`` whose value is neither on nor off."""
    for name in SWITCHES:
        env_flag(name)
