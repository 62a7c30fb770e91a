"""Running as one of several processes under ``torchrun`` (DistributedDataParallel).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them dltool runs as a world of one
and nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from dltool.errors import UsageError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes the run dir and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """The process's place in a torchrun job ($RANK, $WORLD_SIZE, $LOCAL_RANK), or a world of one."""
    return World(
        rank=_env_int("RANK", 0, 0), size=_env_int("WORLD_SIZE", 1, 1), local_rank=_env_int("LOCAL_RANK", 0, 0)
    )


def _env_int(name: str, default: int, least: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < least:
        raise UsageError(
            f"${name}: {text[:40]!r} is not a whole number >= {least} (torchrun sets it; unset it to train alone)"
        )
    return int(text)


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join the process group for the run (NCCL on CUDA, gloo on CPU); leave it after."""
    if not world.distributed or dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=world.rank, world_size=world.size, timeout=timedelta(minutes=10))
    try:
        yield
    finally:
        dist.destroy_process_group()


def sum_across(world: World, values: dict[str, torch.Tensor | int]) -> dict[str, Any]:
    """Each value summed over every rank (one all-reduce), as Python numbers (a list of
    them for a vector: a task's per-target sums)."""
    names = list(values)
    tensors = [torch.as_tensor(values[n], dtype=torch.float64).detach().cpu() for n in names]
    stacked = torch.cat([t.reshape(-1) for t in tensors])
    if world.distributed:
        stacked = _on_backend_device(stacked)
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
    parts = torch.split(stacked.cpu(), [t.numel() for t in tensors])
    return {n: part.item() if t.ndim == 0 else part.tolist() for n, t, part in zip(names, tensors, parts)}


def total_across(world: World, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed element-wise over every rank, on the CPU."""
    if world.distributed:
        tensor = _on_backend_device(tensor.detach().clone())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu()


def gather_to_main(world: World, value: Any) -> list[Any] | None:
    """Every rank's ``value`` (tensors and plain values), in rank order, on rank 0; None on
    the other ranks. Every rank must call it. The values travel pickled between the
    processes of one job, never through a file."""
    if not world.distributed:
        return [value]
    gathered: list[Any] | None = [None] * world.size if world.is_main else None
    dist.gather_object(value, gathered, dst=0)  # on NCCL, through the rank's own GPU (set by resolve_device)
    return gathered


def any_across(world: World, flag: bool) -> bool:
    """True on every rank when any rank says True (so all ranks stop at the same step)."""
    return bool(max_across(world, [1.0 if flag else 0.0])[0])


def max_across(world: World, values: list[float]) -> list[float]:
    """Each value's largest over every rank (one all-reduce; a host sync on a GPU)."""
    if not world.distributed:
        return values
    tensor = _on_backend_device(torch.tensor(values, dtype=torch.float64))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [float(v) for v in tensor.cpu().tolist()]


# Seconds of training between two stop votes under torchrun. A vote is one all-reduce of two
# numbers and a host sync (well under a millisecond on one machine), so five a second cost
# under 0.1% of the time, and Ctrl-C stops within 0.2 s and a step.
STOP_VOTE_S = 0.2


class StopVote:
    """Whether the ranks stop before this step: all of them at the same step, without a
    collective at every step.

    Called once before each optimizer step with this rank's wish (a signal, the time
    budget). A world of one answers at once, with no collective. Under torchrun the ranks
    vote (``max_across``) at each epoch's first step and then every ``interval`` steps; each
    vote also shares the slowest rank's seconds per step, and sets the interval from it so
    that votes come ``STOP_VOTE_S`` apart. Every rank gets the same numbers from the vote,
    so every rank counts the same interval.

    A step's time is measured from the end of one vote to the end of the next: the vote
    waits for the rank's device, so a host that queued its steps ahead of a GPU still counts
    the GPU's time. That span is known only once the later vote is over, so it is shared at
    the vote after (until then, and for the first two votes, the interval is 1).
    """

    def __init__(self, world: World, clock: Callable[[], float] = time.perf_counter):
        self.world, self.clock = world, clock
        self.every_s = STOP_VOTE_S
        self.interval = 1  # steps between votes
        self.countdown = 0  # steps until the next vote
        self.voted_at: float | None = None  # when the last vote ended, within this epoch
        self.per_step = 0.0  # this rank's seconds per step between its last two votes (0: not yet timed)

    def new_epoch(self) -> None:
        """Vote at the next step (an epoch's first), and time no span across the epoch's end
        (evaluation and checkpoints lie between)."""
        self.countdown, self.voted_at = 0, None

    def __call__(self, wish: bool) -> bool:
        if not self.world.distributed:
            return wish
        if self.countdown > 0:
            self.countdown -= 1
            return False
        stop, slowest = max_across(self.world, [1.0 if wish else 0.0, self.per_step])
        now = self.clock()
        if self.voted_at is not None:
            self.per_step = (now - self.voted_at) / self.interval  # the interval these steps had
        if slowest > 0:
            self.interval = max(1, int(self.every_s / slowest))
        self.countdown, self.voted_at = self.interval - 1, now
        return bool(stop)


def batch_stop_vote(world: World, wish: Callable[[], bool], batches: int) -> Callable[[], bool]:
    """``wish`` (a signal's stop), asked before each batch of an evaluation, agreed on by the
    ranks as ``StopVote`` agrees on training steps. Their shards may differ by a batch: votes
    fall only on the batches every rank has (the fewest, found in one all-reduce), past them a
    stop waits for the pass's end. A world of one asks ``wish`` alone."""
    if not world.distributed:
        return wish
    vote, common, asked = StopVote(world), -max_across(world, [-float(batches)])[0], [0]

    def agreed() -> bool:
        asked[0] += 1
        return asked[0] <= common and vote(wish())

    return agreed


def _on_backend_device(tensor: torch.Tensor) -> torch.Tensor:
    if dist.get_backend() == "nccl":
        return tensor.to(torch.device("cuda", torch.cuda.current_device()))
    return tensor
