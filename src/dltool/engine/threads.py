"""How many CPU threads a run uses: ``train.threads``, or for ``auto`` a choice from the size of
a training step.

Each intra-op parallel region wakes and joins torch's thread pool; a step of a small model is
many small ops, so when a core is busy with something else every one of them waits for a
thread without a core. benches/cpu_threads.py measures every recipe at one thread against one
thread per core, idle and beside a busy process, and shows what ``auto`` picks (its results
are in the README; the trade-off is spelled out at ``SMALL_STEP_FLOPS``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

# Training steps below this many FLOPs run on one thread. Measured on 2 cores
# (benches/cpu_threads.py): on an idle machine two threads beat one for every recipe, by
# 1.1-1.2× for digits-mlp (0.03 GFLOP a step) and 1.4-1.8× from mnist-lenet (0.3 GFLOP) up;
# beside one other busy process, two threads run digits-mlp and mnist-lenet 2× slower than
# one, since each step waits for a thread that has no core. One thread for the smallest
# steps gives up a little when the machine is idle to avoid the large loss when it is not.
SMALL_STEP_FLOPS = 1e8


def resolve_threads(setting: int | str, device: torch.device, step_flops: Callable[[], float]) -> int:
    """``setting`` if a number; for ``auto``: torch's default off the CPU or where
    ``OMP_NUM_THREADS`` says (the user's, torchrun's or tune's per-worker share), else one
    thread for steps under ``SMALL_STEP_FLOPS`` and one per usable core above."""
    if setting != "auto":
        return int(setting)
    if device.type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    return 1 if step_flops() < SMALL_STEP_FLOPS else usable_cores()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def training_step_flops(model: nn.Module, in_shape: tuple[int, ...], batch_size: int) -> float:
    """FLOPs of one training step, estimated as three forward passes (forward, and a backward
    twice as costly) of one sample, times the batch."""
    return 3 * batch_size * forward_flops(model, in_shape)


def forward_flops(model: nn.Module, in_shape: tuple[int, ...]) -> int:
    """FLOPs of one sample's forward pass (``torch.utils.flop_counter``); leaves ``model`` in
    the mode it was in and draws no random numbers (eval mode: no dropout)."""
    # Imported here: flop_counter imports triton (about 75 MB and 0.1 s), which only
    # `threads: auto` on a CPU needs.
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *in_shape, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


@contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """Run the block on ``threads`` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
