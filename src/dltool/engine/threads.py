"""How many CPU threads a run uses: ``train.threads``, or for ``auto`` a short timed probe of
both settings, unless the step is so large that all cores win either way.

Each intra-op parallel region wakes and joins torch's thread pool; a step of a small model is
many small ops, so when a core is busy with something else every one of them waits for a
thread without a core. benches/cpu_threads.py measures every recipe at one thread against one
thread per core, idle and beside a busy process, and shows what ``auto`` picks (its results
are in the README; the trade-off is spelled out at ``PROBE_MAX_FLOPS``).

The thread count changes a run's numbers in the last bits (a reduction split over two threads
adds in another order), so a choice that depends on the machine's load would make a rerun
differ from the first run: the probe leaves nothing behind but its choice (it trains a copy,
on zeros, with the random state put back), the choice is kept in the run's checkpoint so a
resumed run keeps it, and a fixed ``train.threads`` is the setting for bit-identical reruns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from dltool.engine.probe import Choice, median_seconds

# Steps up to this size are timed at both settings before training (probe.py: alternating
# rounds of about PROBE_SECONDS at each). Measured on 2 cores (benches/cpu_threads.py): on
# an idle machine two threads beat one for every recipe, by 1.1-1.2x for digits-mlp (0.03
# GFLOP a step) and 1.4-1.8x from mnist-lenet (0.3 GFLOP) up; beside one other busy process,
# two threads run digits-mlp and mnist-lenet 2-10x slower than one, since each step waits
# for a thread that has no core. No step size decides it: only the machine's load does,
# which the probe measures. Larger steps would make the probe cost seconds, and split into
# ops large enough to gain from every core either way.
PROBE_MAX_FLOPS = 5e9
# The probe leaves all cores only for one thread measured this much faster: near a tie its
# noise would otherwise decide, and a rerun on the same machine should choose the same.
PROBE_MARGIN = 1.10
# Three rounds of 10 ms at each count: digits-mlp's probe takes 0.08 s idle (0.12 s at five
# rounds, 0.23 s at five of 20 ms, close to half its 30-epoch training), and chose right in
# 8 of 8 tries idle and 8 of 8 beside a busy process (where it takes 0.1-0.7 s).
PROBE_ROUNDS, PROBE_SECONDS = 3, 0.01
# The probe's choices in this process, by step FLOPs, cores and what else the caller says sets
# a step's speed (its precision, its memory format): a study's trials in one process (`dltool
# tune` with one worker) train the same step over and over, and a probe costs a sizeable part
# of a digits-mlp trial.
_probed: dict[tuple[Hashable, ...], Choice[int]] = {}


def resolve_threads(
    setting: int | str,
    device: torch.device,
    step_flops: Callable[[], float],
    time_step: Callable[[int], float] | None = None,
    kept: int | None = None,
    step_kind: Hashable = (),
) -> Choice[int]:
    """``setting`` if a number; for ``auto``: torch's default off the CPU or where
    ``OMP_NUM_THREADS`` says (the user's, torchrun's or tune's per-worker share), else one
    per usable core for steps over ``PROBE_MAX_FLOPS``, and up to it the faster as
    ``time_step`` (seconds of one step at a thread count) measures it, all cores unless one
    thread wins by ``PROBE_MARGIN``, probed once in a process per step size and ``step_kind``
    (what else sets the step's speed). A resumed run passes the count it ``kept`` from its
    start, so that it goes on as it began."""
    if setting != "auto":
        return Choice(int(setting))
    if device.type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        return Choice(torch.get_num_threads())
    if kept:
        return Choice(min(kept, usable_cores()), "as when the run began")
    flops, cores = step_flops(), usable_cores()
    if flops > PROBE_MAX_FLOPS or cores == 1 or time_step is None:
        return Choice(cores, f"{flops / 1e9:.2g} GFLOP a step")
    key = (flops, cores, step_kind)
    if (earlier := _probed.get(key)) is not None:
        return Choice(earlier.value, f"{earlier.reason}, for an earlier run of this step in this process")
    seconds = probe_seconds(time_step, (cores, 1))
    threads = 1 if seconds[1] * PROBE_MARGIN < seconds[cores] else cores
    timings = ", ".join(f"{count}: {seconds[count] * 1e3:.1f} ms" for count in sorted(seconds))
    _probed[key] = Choice(threads, f"a step measured at {timings}")
    return _probed[key]


def forget_probes() -> None:
    """Probe again next time (a process whose load changed: benches/cpu_threads.py)."""
    _probed.clear()


def probe_seconds(time_step: Callable[[int], float], counts: tuple[int, ...]) -> dict[int, float]:
    """Median seconds of a step at each thread count (``probe.median_seconds``), the caller's
    count back afterwards."""
    with cpu_threads(torch.get_num_threads()):
        return median_seconds(counts, time_step, torch.set_num_threads, PROBE_ROUNDS, PROBE_SECONDS)


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
