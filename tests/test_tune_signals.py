"""dltool tune when things go wrong: a SIGKILLed worker, Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import dltool_command, run_dltool
from dltool.tuning import open_study
from studies import RANDOM_SPACE, study_json, trials_csv, wait_for_epochs, write


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_it_failed_and_the_same_command_completes(tmp_path: Path) -> None:
    space = write(tmp_path / "space.yaml", RANDOM_SPACE)
    args = [
        "tune",
        "digits-mlp",
        "--space",
        space,
        "--trials",
        "3",
        "--epochs",
        "8",
        "--limit-batches",
        "2",
        "--pruner",
        "none",
        "--name",
        "s",
        "-q",
    ]
    process = subprocess.Popen(dltool_command(*args), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    study = tmp_path / "runs" / "s"
    wait_for_epochs(study / "trial-0001" / "metrics.jsonl", process)
    process.kill()
    process.wait()
    assert open_study(study).trials[1].state.name == "RUNNING"  # as the kill left it

    result = run_dltool(*args, cwd=tmp_path)
    assert result.stdout.strip() == str(Path("runs") / "s")
    rows = trials_csv(study)
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert rows[1]["error"].startswith(f"lost: worker process {process.pid} ")
    assert study_json(study)["states"] == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 1, "RUNNING": 0, "WAITING": 0}


@pytest.mark.slow
def test_workers_killed_mid_trial_leave_their_trials_failed_when_the_pool_ends(tmp_path: Path) -> None:
    # Only a worker's next claim swept lost trials: with every worker killed, none came, and the
    # study ended with its trials RUNNING while stderr said "its trial was marked FAIL".
    space = write(tmp_path / "space.yaml", RANDOM_SPACE)
    args = ["tune", "digits-mlp", "--space", space, "--trials", "4", "--epochs", "500", "--limit-batches", "2"]
    process = subprocess.Popen(
        dltool_command(*args, "--pruner", "none", "--workers", "2", "--name", "s"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    study = tmp_path / "runs" / "s"
    for number in (0, 1):
        wait_for_epochs(study / f"trial-{number:04d}" / "metrics.jsonl", process)
    workers = [t.user_attrs["worker"]["pid"] for t in open_study(study).trials]
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and "Traceback" not in stderr, stderr
    rows = trials_csv(study)
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"], rows
    assert {r["error"] for r in rows} == {
        f"lost: worker process {pid} on {socket.gethostname()} is gone" for pid in workers
    }
    assert study_json(study)["states"]["RUNNING"] == 0
    assert "trial 0: its worker is gone; marked FAIL" in stderr and "was killed by signal 9\n" in stderr
    # how to go on, as after Ctrl-C: the study is 4 trials short
    assert "study s: 2 fail; continue with the same dltool tune command and --name s\n" in stderr


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_fails_the_running_trial_and_exits_130_or_143(tmp_path: Path, sig: int, code: int) -> None:
    space = write(tmp_path / "space.yaml", RANDOM_SPACE)
    process = subprocess.Popen(
        dltool_command(
            "tune",
            "digits-mlp",
            "--space",
            space,
            "--trials",
            "3",
            "--epochs",
            "500",
            "--limit-batches",
            "2",
            "--pruner",
            "none",
            "--name",
            "s",
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    study = tmp_path / "runs" / "s"
    wait_for_epochs(study / "trial-0000" / "metrics.jsonl", process, epochs=2)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert stdout.strip() == str(Path("runs") / "s") and "Traceback" not in stderr
    # how to go on: rerunning without --name started another study (digits-mlp-tune-1)
    assert stderr.rstrip().endswith("; continue with the same dltool tune command and --name s"), stderr
    (row,) = trials_csv(study)
    assert (row["state"], row["error"]) == ("FAIL", "interrupted")
    summary = json.loads((study / "trial-0000" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_run"] < 500
    assert study_json(study)["states"]["FAIL"] == 1
