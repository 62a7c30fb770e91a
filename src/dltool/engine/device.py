"""Where and in what precision training runs: devices and mixed precision (CPU threads: threads.py)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from dltool.config.devices import device_name
from dltool.errors import DeviceError, option

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def available_devices() -> list[str]:
    devices = ["cpu"]
    devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(spec: str, rank_device: int | None = None) -> torch.device:
    """``auto`` → cuda, then mps, then cpu; an absent device is a usage error naming what exists.

    Under torchrun (``rank_device``: the local rank) a CUDA process takes its own GPU.
    """
    try:
        device_name(spec)  # torch's own message for a typo ('gpu') lists twenty device types
    except ValueError as error:
        raise DeviceError(f"device {spec!r}: {error}") from None
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if rank_device is not None and spec == "cuda":
        spec = f"cuda:{rank_device}"
    device = torch.device(spec)
    available = available_devices()
    usable = (
        device.type == "cpu"
        or (device.type == "cuda" and torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count())
        or (device.type == "mps" and "mps" in available)
    )
    if not usable:
        raise DeviceError(f"device {spec!r} is not available here; available: {', '.join(available)}")
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def on_cuda_when_auto(setting: bool | str, device: torch.device) -> bool:
    """A ``true|false|auto`` switch (``train.compile``): auto is on CUDA only."""
    return setting is True or (setting == "auto" and device.type == "cuda")


def channels_last_wanted(setting: bool | str, device: torch.device, model: torch.nn.Module) -> bool:
    """``train.channels_last``: ``auto`` is on for a network with 2-D convolutions on CUDA or a
    CPU, whose convolutions (cuDNN's, oneDNN's) run channels-last tensors faster: on 2 CPU cores
    the recipes' CNNs train 1.12-1.34x and infer 1.15-1.48x as fast, ResNet-18 infers 1.4x
    (float32) and 2x (bf16). A network without convolutions would only pay a copy per batch."""
    if setting != "auto":
        return bool(setting)
    return device.type in ("cuda", "cpu") and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def synchronize(device: torch.device) -> None:
    """Wait for the kernels queued on ``device``, so a clock read after it counts them (CPU: no-op)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Precision:
    """Autocast dtype (None: full fp32) and whether fp16 needs a gradient scaler."""

    dtype: torch.dtype | None

    @property
    def name(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "off"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self, device: torch.device) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()  # entering a disabled autocast still costs microseconds a step
        return torch.autocast(device.type, dtype=self.dtype)


def resolve_precision(amp: str, device: torch.device) -> Precision:
    """``auto``: bf16 on CUDA where supported, else fp16; off elsewhere."""
    if amp == "off":
        return Precision(None)
    if amp == "auto":
        if device.type != "cuda":
            return Precision(None)
        return Precision(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"this GPU does not support bf16; use {option('amp', 'fp16', python='train.amp: fp16')}")
    return Precision(_AMP_DTYPES[amp])
