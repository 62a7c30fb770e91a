"""Mixed precision for ``train.amp: auto``: half precision on a GPU, kept only where a timed
probe finds a training step faster in it than in full precision.

Autocast casts weights and activations around every matmul and convolution. For a large
model tensor cores repay that many times over; for a small one (mnist-lenet, a CIFAR CNN at
batch 128) the step is a few dozen short kernels, and the casts (about 30 ``aten::to`` a step,
profiled on an H200) can cost more than they save. So ``auto`` times a step of a copy of the
model in both precisions (probe.py), as ``train.threads: auto`` does on a CPU. On a CPU
``auto`` stays in full precision, as before: bf16 there changes the numbers far more than it
gains on most machines.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dltool.engine.device import Precision, resolve_precision
from dltool.engine.probe import Choice, median_seconds

FULL = Precision(None)
# Half precision is kept only when a step measures at least this much faster in it: near a
# tie full precision's numbers are the better default.
AMP_MARGIN = 1.05
# Models with more parameters than this are not probed (half precision): copying them would
# take GPU memory the run may need, and their matmuls are the tensor cores' work. Nor are
# compiled models (the compiler fuses the casts into its kernels, where their cost goes; the
# probe would time the eager step) or torchrun's processes (each would measure alone).
PROBE_MAX_PARAMETERS = 20_000_000


def resolve_amp(
    setting: str,
    device: torch.device,
    time_step: Callable[[Precision], float] | str,
    kept: str | None = None,
) -> Choice[Precision]:
    """``setting`` unless ``auto`` on a GPU. There: the precision a resumed run ``kept`` from
    its start (fp16 for bf16 on a GPU without it); else half precision (bf16 where the GPU
    has it, else fp16) when ``time_step`` says why no step is timed (``unmeasured``); else
    the faster as ``time_step`` measures it."""
    half = resolve_precision(setting, device)
    if setting != "auto" or half.dtype is None:
        return Choice(half)
    if kept == "bf16" and half.dtype == torch.float16:  # begun on a GPU with bf16, resumed on one without
        return Choice(half, "the run began in bf16, which this GPU lacks")
    if kept:
        return Choice(resolve_precision(kept, device), "as when the run began")
    if isinstance(time_step, str):
        return Choice(half, time_step)
    return faster_precision(half, time_step)


def unmeasured(parameters: int, distributed: bool, compiled: bool) -> str:
    """Why ``auto`` takes half precision without timing a step ("": it times one)."""
    if distributed:
        return "several processes: every rank must choose alike"
    if compiled:
        return "compiled: the compiler fuses autocast's casts"
    return f"{parameters / 1e6:.3g}M parameters" if parameters > PROBE_MAX_PARAMETERS else ""


def faster_precision(half: Precision, time_step: Callable[[Precision], float]) -> Choice[Precision]:
    """``half`` or full precision, whichever ``time_step`` measures faster (``median_seconds``),
    full unless half wins by ``AMP_MARGIN``."""
    seconds = median_seconds((half, FULL), time_step)
    chosen = half if seconds[half] * AMP_MARGIN < seconds[FULL] else FULL
    timings = ", ".join(f"{_label(precision)}: {seconds[precision] * 1e3:.2f} ms" for precision in (half, FULL))
    return Choice(chosen, f"a step measured in {timings}")


def _label(precision: Precision) -> str:
    return "fp32" if precision.dtype is None else precision.name
