"""reused_heap: inside, the blocks a step frees are reused by the next step's allocations (far
fewer page faults to touch them again); outside, glibc maps each large block afresh; on the way
out the free memory goes back to the kernel. Each case runs in a fresh interpreter: the heap's
state outlives the context."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

STEPS = """
import json, resource, sys
from pathlib import Path
import torch
from dltool.engine.heap import reused_heap

MB, PAGE = 2**20, resource.getpagesize()
STEP = [40 * MB, 96 * MB, 64 * MB, 48 * MB]  # a step's large activations: over glibc's mmap threshold

def faults_per_step(steps=5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        blocks = [torch.ones(size, dtype=torch.uint8) for size in STEP]
        del blocks
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (sum(STEP) // PAGE) / steps

def resident():
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE

with reused_heap(enabled=sys.argv[1] == "on"):
    faults_per_step()  # the first steps: a heap grows to hold one
    faults, held = faults_per_step(), resident()
print(json.dumps({"faults": faults, "returned_mb": (held - resident()) / MB}))
"""


def _steps(setting: str, **env: str) -> dict[str, float]:
    """Page faults per step (in touched blocks' pages) after two steps, and MB returned on exit."""
    result = subprocess.run(
        [sys.executable, "-c", STEPS, setting], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_freed_blocks_are_reused_inside_and_handed_back_after() -> None:
    steps = _steps("on")
    assert steps["faults"] < 0.5
    assert steps["returned_mb"] > 100


@pytest.mark.parametrize(
    ("setting", "env"), [("off", {}), ("on", {"DLTOOL_REUSE_HEAP": "0"}), ("on", {"DLTOOL_REUSE_HEAP": "Off"})]
)
def test_disabled_or_switched_off_by_the_environment_every_block_is_mapped_afresh(setting: str, env: dict) -> None:
    assert _steps(setting, **env)["faults"] > 0.9  # every page of every block, every step


def test_a_mistyped_switch_is_a_usage_error_before_any_run_dir(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dltool", "train", "digits-mlp", "--runs-dir", str(tmp_path / "runs")],
        env={**os.environ, "DLTOOL_REUSE_HEAP": "of"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "$DLTOOL_REUSE_HEAP: 'of' is not one of" in result.stderr
    assert not (tmp_path / "runs").exists()
