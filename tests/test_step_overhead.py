"""The training step's own work (issue 21): no scalar read or device sync per step, epoch sums
folded on the device with the batch-by-batch result, small splits normalised once."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from dltool.config import load_config
from dltool.data import loader as loader_module
from dltool.data.arrays import Split
from dltool.data.loader import BatchLoader
from dltool.engine import loop, train
from dltool.rundir import create_run_dir

SCALAR_READS = ("aten::item", "aten::_local_scalar_dense")  # .item(), int(t), float(t), bool(t): a sync on a GPU


def counted(function: Callable, calls: list[str], name: str) -> Callable:
    def wrapper(*args, **kwargs):
        calls.append(name)
        return function(*args, **kwargs)

    return wrapper


def reads_and_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batches: int) -> tuple[int, list[str]]:
    """Scalar reads (profiler events) and synchronize calls of a two-epoch digits-mlp run
    whose epochs are ``batches`` steps long. SGD: Adam's CPU step counters read scalars by design."""
    calls: list[str] = []
    monkeypatch.setattr(loop, "synchronize", counted(loop.synchronize, calls, "dltool"))
    monkeypatch.setattr(torch.cuda, "synchronize", counted(torch.cuda.synchronize, calls, "cuda"))
    sets = ["train.epochs=2", f"train.limit_batches={batches}", "optimizer.name=sgd", "train.batch_size=16"]
    config = load_config("digits-mlp", sets)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(config, create_run_dir(tmp_path, f"steps-{batches}"))
    return sum(event.name in SCALAR_READS for event in prof.events()), list(calls)  # as it stood then


def test_a_training_epoch_reads_no_scalar_and_syncs_no_device_per_step(tmp_path, monkeypatch) -> None:
    few_reads, few_syncs = reads_and_syncs(tmp_path, monkeypatch, batches=3)
    many_reads, many_syncs = reads_and_syncs(tmp_path, monkeypatch, batches=12)
    assert few_reads == many_reads > 0  # per epoch (the metrics record), never per step
    assert few_syncs == many_syncs == ["dltool", "dltool"]  # once an epoch, to time it


def sequential(losses: list[float], size: int) -> tuple[torch.Tensor, int, int]:
    """What adding batch by batch gives: the float64 loss sum and the longest streak's (length, end)."""
    total = torch.zeros((), dtype=torch.float64)
    streak = longest = end = 0
    for batch, value in enumerate(losses, 1):
        total += torch.tensor(value, dtype=torch.float32) * size
        streak = streak + 1 if not math.isfinite(value) else 0
        if streak > longest:
            longest, end = streak, batch
    return total, longest, end


@pytest.mark.parametrize("fold_every", [1, 3, 1024])
def test_folded_streaks_are_the_batch_by_batch_streaks(monkeypatch, fold_every: int) -> None:
    monkeypatch.setattr(loop, "FOLD_EVERY", fold_every)
    losses = np.random.default_rng(fold_every).random(40).astype(np.float32).tolist()
    for at, length in ((5, 2), (11, 4), (30, 4)):  # two longest streaks: the first one counts
        losses[at : at + length] = [math.nan] * length
    stats = loop.EpochStats()
    for value in losses:
        stats.update(torch.tensor(value), torch.eye(3)[[0, 2]], torch.tensor([0, 2]), "classification")
        if stats.batches == 20:
            stats = loop.EpochStats.from_state(stats.state_dict())  # a checkpoint mid-epoch, resumed
    _, longest, end = sequential(losses, 2)
    assert stats.nonfinite_streak(patience=3) == (end - longest + 1, longest) == (12, 4)
    assert stats.accuracy() == 1.0 and stats.samples == 80 and not stats.pending


@pytest.mark.parametrize("fold_every", [1, 7, 1024])
def test_folded_loss_sums_are_the_batch_by_batch_sums_bit_for_bit(monkeypatch, fold_every: int) -> None:
    monkeypatch.setattr(loop, "FOLD_EVERY", fold_every)
    values = np.random.default_rng(0).random(50).astype(np.float32).tolist()
    stats = loop.EpochStats()
    for value in values:
        stats.update(torch.tensor(value), torch.eye(3)[:3], torch.tensor([0, 1, 1]), "classification")
    assert stats.state_dict()["loss_sum"].item() == sequential(values, 3)[0].item()
    assert stats.accuracy() == pytest.approx(2 / 3) and stats.nonfinite_streak(patience=1) is None


@pytest.mark.parametrize("pending_outputs", [1, 10, loop.PENDING_OUTPUTS])
def test_kept_outputs_stay_bounded_and_count_as_batch_by_batch(monkeypatch, pending_outputs: int) -> None:
    """A classifier's outputs wait for one arg-max at the fold, never more than
    ``PENDING_OUTPUTS`` elements of them (plus one batch); the count is the batch-by-batch one.
    Another task keeps no outputs."""
    monkeypatch.setattr(loop, "PENDING_OUTPUTS", pending_outputs)
    rng = np.random.default_rng(pending_outputs)
    stats, expected, most = loop.EpochStats(), 0, 0
    for size in [4] * 9 + [3]:  # a ragged last batch
        output, labels = torch.from_numpy(rng.random((size, 3))), torch.from_numpy(rng.integers(0, 3, size))
        expected += int((output.argmax(1) == labels).sum())
        stats.update(torch.tensor(1.0), output, labels, "classification")
        most = max(most, stats.output_elements)
    assert most < pending_outputs + 12 and stats.accuracy() == expected / 39 and not stats.outputs
    other = loop.EpochStats()
    other.update(torch.tensor(1.0), torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), "reconstruction")
    assert not other.outputs and other.accuracy() == 0.0


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_small_split_normalised_once_gives_the_same_batches(monkeypatch, shuffle: bool) -> None:
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (37, 3, 5, 4), dtype=np.uint8), rng.integers(0, 4, 37))
    kwargs = {"batch_size": 8, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3], "device": torch.device("cpu")}
    once = BatchLoader(split, shuffle=shuffle, seed=3, **kwargs)
    read_once = BatchLoader(split, shuffle=shuffle, seed=3, read_once=True, **kwargs)  # eval's: batch by batch
    monkeypatch.setattr(loader_module, "NORMALISED_BYTES", 0)
    each = BatchLoader(split, shuffle=shuffle, seed=3, **kwargs)
    assert once.normalised and not each.normalised and once.images.dtype == torch.float32
    assert not read_once.normalised and read_once.images.dtype == torch.uint8
    for (a, la), (b, lb), (c, lc) in zip(once.batches(2), each.batches(2), read_once.batches(2), strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb) and torch.equal(a, c) and torch.equal(la, lc)
