"""benches/gpu_check.sh: its quick form as CI runs it, its package check, and its CUDA rows
(run only where a CUDA device is present: skipped, not removed, elsewhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from dltool.config import load_config
from dltool.engine.device import resolve_precision
from dltool.engine.distributed import World
from dltool.engine.setup import build_components

sys.path.insert(0, str(REPO / "benches"))
import _gpu_rows
import cifar10_fast
import gpu_check
from train_throughput import synthetic

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


def run_script(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": ""}  # the script sets src/ itself
    command = ["bash", str(REPO / "benches" / "gpu_check.sh"), *args, "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=out.parent, timeout=1500)


@pytest.mark.skipif(CUDA, reason="the CPU form: every row skipped")
def test_the_quick_form_without_cuda_skips_every_row_with_the_reason(tmp_path: Path) -> None:
    result = run_script(tmp_path / "out", "--quick")
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert document["cuda"] is False and document["quick"] is True
    labels = [label for label, _, _ in gpu_check.CHECKS]
    assert [row["bench"] for row in document["rows"]] == labels
    assert all(
        row["dltool"] == "not measured (no CUDA device)" and row["peak_gpu_mib"] is None for row in document["rows"]
    )
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert table.count("not measured (no CUDA device)") == len(labels) and "peak GPU memory" in table
    assert result.stdout == table + "\n"


def test_missing_and_too_old_packages_are_named(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    deps = '["torch>=2.0", "numpy>=999", "surely-not-installed-dltool-dep>=1"]'
    pyproject.write_text(f'[project]\nname = "x"\ndependencies = {deps}\n')
    missing = gpu_check.missing_packages(pyproject)
    assert missing[0].startswith("numpy (have ") and missing[0].endswith("need >=999)")
    assert missing[1:] == ["surely-not-installed-dltool-dep"]
    assert gpu_check.missing_packages() == []  # this environment has everything dltool needs


def test_checks_past_the_budget_are_rows_that_say_so() -> None:
    written = []
    rows = gpu_check.run_checks(quick=True, cuda=True, budget_s=-1, write=lambda r: written.append(len(r)))
    assert all(row["dltool"] == "not measured (the -1 s budget was spent before it)" for row in rows)
    assert written == list(range(1, len(gpu_check.CHECKS) + 1))  # the files are rewritten after each check


def test_a_row_not_measured_has_empty_figures_in_the_table() -> None:
    row = gpu_check.not_measured_row("label", "no CUDA device")
    assert "| label | not measured (no CUDA device) |  |  |  |  |" in gpu_check.markdown([row], "here")


def test_the_checks_configs_are_valid() -> None:
    fp16 = _gpu_rows.fp16_config("cpu")
    assert fp16.train.amp == "fp16" and fp16.train.compile is False
    resnet = _gpu_rows.resnet50_config(32, "cpu")
    assert resnet.model.name == "torchvision:resnet50" and resnet.train.batch_size == 32


def test_the_fp16_bare_loop_steps_through_a_gradient_scaler() -> None:
    tiny = ["model.widths=[4,8,8]", "train.batch_size=16", 'train.amp="fp16"', "train.compile=false"]
    config = load_config("cifar10-fast", [*tiny, "train.device=cpu"])
    device = torch.device("cpu")
    parts = build_components(config, device, resolve_precision("fp16", device), World(), synthetic((3, 32, 32), 10, 32))
    bare = cifar10_fast.BareLoop(config, parts)
    assert bare.scaler.is_enabled() and parts.step.scaler.is_enabled()  # dltool's step scales too
    assert bare.epoch() > 0


def test_the_amp_row_compares_the_choice_with_both_precisions() -> None:
    row = _gpu_rows.amp_row("digits-mlp", 256, 1, "cpu")  # on a CPU auto is fp32, unprobed
    assert row.bench == "amp auto, digits-mlp (eager): samples/s at auto = off"
    assert "bf16: " in row.reference and row.ratio is not None and 0 < row.ratio <= 1 and row.goal == 0.97


@needs_cuda
def test_on_a_gpu_amp_auto_is_measured_for_each_small_recipe() -> None:
    rows = _gpu_rows.amp_auto(quick=True)
    assert [row.id for row in rows] == [
        f"gpu-check.amp-auto.{r}" for r in ("mnist-lenet", "cifar10-cnn", "cifar10-resnet")
    ]
    assert all(row.ratio is not None and row.ratio > 0 for row in rows)


def test_the_torchrun_row_reports_ok_with_its_time() -> None:
    row = _gpu_rows.torchrun_row("cpu", "gloo")
    assert row.dltool.startswith("ok in ") and row.dltool.endswith(" s"), row.dltool


@needs_cuda
def test_on_a_gpu_every_row_is_measured_with_its_peak_memory(tmp_path: Path) -> None:
    result = run_script(tmp_path / "out", "--quick")
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["rows"]
    assert len(rows) == len(gpu_check.CHECKS) + 1 + 2  # cifar10-fast bf16 gives two rows, amp auto three
    assert not [row for row in rows if row["dltool"].startswith(("not measured", "failed"))]
    assert all(row["peak_gpu_mib"] > 0 for row in rows if "torchrun" not in row["bench"])
    assert [row["peak_gpu_mib"] for row in rows if "torchrun" in row["bench"]] == [None]
    assert torch.cuda.get_device_name() in (tmp_path / "out" / "gpu_check.md").read_text()


@needs_cuda
def test_a_failing_check_is_a_row_that_says_why() -> None:
    def broken(quick: bool) -> list:
        raise RuntimeError("CUDA error: out of memory\nmore detail")

    (row,) = gpu_check.measured("label", broken, quick=True)
    assert row["dltool"] == "not measured (failed: RuntimeError: CUDA error: out of memory)"
    assert row["peak_gpu_mib"] is not None


@needs_cuda
def test_the_fp16_row_measures_both_loops() -> None:
    (row,) = _gpu_rows.cifar10_fast_fp16(quick=True)
    assert row.ratio is not None and row.ratio > 0 and "GradScaler" in row.reference


@needs_cuda
def test_the_resnet50_row_has_a_rate_and_no_invented_reference() -> None:
    (row,) = _gpu_rows.resnet50_finetune(quick=True)
    assert float(row.dltool.replace(",", "")) > 0 and row.reference == _gpu_rows.NO_PUBLISHED


@needs_cuda
def test_torchrun_with_nccl_trains() -> None:
    (row,) = _gpu_rows.torchrun_nccl(quick=True)
    assert row.dltool.startswith("ok in "), row.dltool


@needs_cuda
def test_predict_on_the_gpu_is_measured_against_the_cpu() -> None:
    (row,) = _gpu_rows.predict_gpu(quick=True)
    assert row.ratio is not None and row.ratio > 0
