"""torchrun with two CPU processes (gloo): one run dir, written once, same accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dltool.config import load_config
from dltool.engine import train
from dltool.rundir import create_run_dir
from events import events, logs_every_epoch


def test_torchrun_two_processes_train_one_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "dltool",
        "train",
        "digits-mlp",
        "--device",
        "cpu",
        "--tensorboard",
        "--runs-dir",
        str(runs),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ, timeout=240)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in runs.iterdir()] == ["digits-mlp-1"]
    assert result.stdout.strip() == str(runs / "digits-mlp-1")  # rank 0 alone prints
    assert result.stderr.count("completed after") == 1
    summary = json.loads((runs / "digits-mlp-1" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["test"]["n"] == 359  # each test image once
    lines = (runs / "digits-mlp-1" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 30  # written once, by rank 0
    assert len(list((runs / "digits-mlp-1" / "tensorboard").iterdir())) == 1 and logs_every_epoch(runs / "digits-mlp-1")
    assert len(events(runs / "digits-mlp-1").Images("confusion_matrix")) == 1  # every rank took part

    single = train(load_config("digits-mlp"), create_run_dir(tmp_path, "single")).summary
    assert abs(summary["test"]["accuracy"] - single["test"]["accuracy"]) <= 0.01
