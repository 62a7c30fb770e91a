"""The device names dltool takes (``train.device``, every command's ``--device``), checked
without torch: whether the device is here is ``dltool.engine.device.resolve_device``'s to say."""

from __future__ import annotations

import re

DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device_name(value: str) -> str:
    """``value`` when it names a kind of device dltool runs on, else ValueError listing them."""
    if not _DEVICE.fullmatch(value):
        raise ValueError(f"expected {DEVICE_NAMES}")
    return value
