"""benches/cifar10_fast.py: its rows without a GPU, and the pieces a GPU runs, here on the CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from dltool.config import load_config
from fakedata import fake

sys.path.insert(0, str(REPO / "benches"))
import cifar10_fast
from train_throughput import synthetic

TINY = ["model.widths=[4,8,8]", "train.batch_size=16", "train.epochs=2", "train.device=cpu"]


def test_without_cuda_every_figure_says_not_measured() -> None:
    rows = cifar10_fast.run(quick=True, device="cpu")
    assert [r.bench.split(":")[0] for r in rows] == ["cifar10-fast"] * 3
    assert all(r.dltool == "not measured (no CUDA device)" and r.ratio is None for r in rows)
    assert "bare PyTorch loop" in rows[0].reference and "not measured" in rows[0].reference
    assert "matmul peak" in rows[1].reference and "3.29 airbench94" in rows[2].reference


def test_rows_report_time_to_94_only_when_reached() -> None:
    throughput = cifar10_fast.Throughput(images=49_152, dltool_s=2.0, bare_s=1.8, flops_per_image=7e8)
    reached = cifar10_fast.rows(throughput, 5e14, (6.58, 0.9412), None, "/data")
    assert reached[0].ratio == pytest.approx(0.9) and "24,576 images/s" in reached[0].dltool
    assert reached[1].dltool == "17.2" and reached[1].ratio == pytest.approx(7e8 * 24_576 / 5e14)
    assert reached[2].dltool.startswith("6.58 (test accuracy 94.12%") and reached[2].ratio == pytest.approx(0.5)
    missed = cifar10_fast.rows(throughput, 5e14, (6.0, 0.93), None, "/data")[2]
    assert missed.dltool.startswith("not reached") and missed.ratio is None
    assert "no --data DIR" in cifar10_fast.rows(throughput, 5e14, None, None, None)[2].dltool


@pytest.mark.parametrize(("padding", "flip"), [(2, True), (2, False), (0, True)])
def test_the_bare_loops_crop_and_flip_is_a_crop_then_maybe_a_mirror(padding: int, flip: bool) -> None:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = cifar10_fast.crop_flip(images, padding, flip)
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    windows = [padded[:, :, y : y + 8, x : x + 8] for y in range(2 * padding + 1) for x in range(2 * padding + 1)]
    candidates = windows + ([w.flip(-1) for w in windows] if flip else [])
    matches = torch.stack([(c == out).flatten(1).all(1) for c in candidates])  # (candidate, sample)
    assert matches.any(0).all()  # every sample is one of the allowed views
    if flip:
        mirrored = matches[len(windows) :].any(0) & ~matches[: len(windows)].any(0)
        assert 0 < int(mirrored.sum()) < 64  # some mirrored, some not


def test_throughput_pieces_run_on_cpu() -> None:
    config = load_config("cifar10-fast", TINY)
    data = synthetic((3, 32, 32), 10, 64)
    result = cifar10_fast.measure_throughput(config, data, torch.device("cpu"), repeats=1)
    assert result.images == 64 and result.dltool_s > 0 and result.bare_s > 0
    # A training step is about three forward passes: forward, then gradients of inputs and weights.
    assert 2 < result.flops_per_image / _forward_flops(config) < 3


def _forward_flops(config) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from dltool.models.build import build_model

    model = build_model(config.model, in_shape=(3, 32, 32), num_classes=10)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 32, 32))
    return counter.get_total_flops()


def test_time_to_accuracy_trains_the_recipe_end_to_end(tmp_path: Path) -> None:
    fake("cifar10").write_outputs(tmp_path / "cifar10")
    config = load_config("cifar10-fast", [*TINY, f"data.root={tmp_path}"])
    seconds, accuracy = cifar10_fast.train_to_accuracy(config)
    assert seconds > 0 and 0 <= accuracy <= 1
