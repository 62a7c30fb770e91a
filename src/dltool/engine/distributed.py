"""Running as one of several processes under ``torchrun`` (DistributedDataParallel).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them dltool runs as a world of one
and nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


def any_across(world: World, flag: bool) -> bool:
    """True on every rank when any rank says True (so all ranks stop at the same step)."""
    if not world.distributed:
        return flag
    tensor = _on_backend_device(torch.tensor([1.0 if flag else 0.0]))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def _on_backend_device(tensor: torch.Tensor) -> torch.Tensor:
    if dist.get_backend() == "nccl":
        return tensor.to(torch.device("cuda", torch.cuda.current_device()))
    return tensor
