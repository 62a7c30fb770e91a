"""torchrun with two CPU processes (gloo): one run dir, written once, same accuracy; the ranks
agree on stopping without a collective per step, and a stopped run resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import StopAfter, metrics_without_times
from dltool.config import load_config
from dltool.engine import train
from dltool.engine.checkpoint import load_checkpoint
from dltool.rundir import create_run_dir
from events import events, logs_every_epoch
from fakedata import split_photos


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


# --- the stop vote: ranks agree on stopping without a collective per step (issue 21) ------------

VOTE_SCRIPT = """
import json, sys
from pathlib import Path
import torch.distributed as dist
from dltool.config import load_config
from dltool.engine import distributed, train
from dltool.engine.distributed import StopVote, world_from_env
from dltool.engine.observer import Observer
from dltool.rundir import create_run_dir

dist.init_process_group("gloo")
world, out = world_from_env(), sys.argv[1]
reductions = []
all_reduce = dist.all_reduce
def counted(*args, **kwargs):
    reductions.append(1)
    return all_reduce(*args, **kwargs)
dist.all_reduce = counted

# A scripted clock: rank 1's steps take 1/64 s (exact in binary), rank 0's half that.
now = [0.0]
vote, stops = StopVote(world, clock=lambda: now[0]), []
for epoch in range(2):
    vote.new_epoch()
    for step in range(100):
        if vote(world.rank == 1 and epoch == 1 and step >= 57):  # a signal that reached rank 1 alone
            stops.append([epoch, step])
            break
        now[0] += (1 + world.rank) / 128
scripted = {"stops": stops, "votes": len(reductions)}

class Counts(Observer):  # rank 0's: the other ranks' observers see no epochs
    def __init__(self):
        self.steps, self.per_epoch = [], []
    def on_epoch(self, record):
        self.steps.append(record["step"] - sum(self.steps))
        self.per_epoch.append(len(reductions) - sum(self.per_epoch))

trained = {}
for every_s in (0.0, 1e9):  # 0: a vote at every step, as before; 1e9: as few as there can be
    distributed.STOP_VOTE_S = every_s
    counts = Counts()
    config = load_config("digits-mlp", ["train.epochs=3", "train.limit_batches=24", "train.device=cpu"])
    run = create_run_dir(Path(sys.argv[2]), f"votes-{every_s:g}") if world.is_main else None
    reductions.clear()
    train(config, run, observer=counts)
    trained[str(every_s)] = {"steps": counts.steps, "reductions": counts.per_epoch}
dist.barrier()
open(f"{out}.{world.rank}", "w").write(json.dumps({"scripted": scripted, "trained": trained}))
dist.destroy_process_group()
"""


def test_ranks_vote_on_stopping_every_fifth_of_a_second_and_stop_at_the_same_step(tmp_path: Path) -> None:
    script = tmp_path / "votes.py"
    script.write_text(VOTE_SCRIPT)
    out = tmp_path / "votes.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", script]
    result = subprocess.run([*map(str, command), out, tmp_path / "runs"], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    ranks = [json.loads(Path(f"{out}.{rank}").read_text()) for rank in range(2)]
    # The slowest rank's 1/64 s steps: a vote every int(0.2 × 64) = 12 steps. Epoch 0 votes at
    # steps 0 and 1 (the span between them timed), 2 (where it is shared), then 14, 26, ...,
    # 98; epoch 1 at 0, 12, ..., 60, where rank 1's wish from step 57 stops both ranks, 3
    # steps (0.05 s) late.
    assert [rank["scripted"] for rank in ranks] == [{"stops": [[1, 60]], "votes": 11 + 6}] * 2
    every_step, fewest = ranks[0]["trained"]["0.0"], ranks[0]["trained"]["1000000000.0"]
    steps = every_step["steps"]
    assert steps == fewest["steps"] and min(steps) > 10
    # A vote at every step, or one an epoch (three in the first, which times a step), beside
    # the epoch's own reductions: its train and val scores, the divergence check, the
    # observer's stop (counted with the next epoch, as it comes after ``on_epoch``) and
    # validation's stop votes (the fewest batches a rank has, then a vote on each of its 3
    # batches: the first three of a pass time a batch, whatever the interval).
    votes = [a - b for a, b in zip(every_step["reductions"], fewest["reductions"], strict=True)]
    assert votes == [steps[0] - 3, steps[1] - 1, steps[2] - 1]
    assert fewest["reductions"] == [3 + 3 + 4, 1 + 3 + 1 + 4, 1 + 3 + 1 + 4]


def torchrun(*args: object) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "dltool"] + [
        str(a) for a in args
    ]


@pytest.mark.slow
def test_a_torchrun_run_stopped_by_sigint_resumes_to_the_same_weights_and_metrics(tmp_path: Path) -> None:
    """Stopped where the stop vote falls (most often mid-epoch), with the recipe's dropout:
    each rank's random state and partial sums are in last.pt, so every metric, the stopped
    epoch's train_loss and train_acc included, and every weight come out the same."""
    args = ["train", "digits-mlp", "--device", "cpu", "--epochs", 8, "--batch-size", 16, "-q", "--runs-dir", tmp_path]
    reference = subprocess.run(torchrun(*args, "--name", "reference"), capture_output=True, text=True, timeout=240)
    assert reference.returncode == 0, reference.stderr
    process = subprocess.Popen(
        torchrun(*args, "--name", "run"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics, deadline = tmp_path / "run" / "metrics.jsonl", time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)  # torchrun passes it on to both ranks (each in a session of its own)
    stdout, stderr = process.communicate(timeout=120)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_run"] < 8, stderr
    assert stdout.strip() == str(tmp_path / "run"), stderr
    ranks = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])

    resumed = subprocess.run(torchrun("train", "--resume", tmp_path / "run", "-q"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert metrics_without_times(tmp_path / "run") == metrics_without_times(tmp_path / "reference")
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (
        tmp_path / "reference" / "model.safetensors"
    ).read_bytes()


@pytest.mark.slow
def test_a_mid_epoch_checkpoint_resumes_only_with_its_own_number_of_processes(tmp_path: Path) -> None:
    """A single process's mid-epoch state cannot be split over two; an epoch's end can."""
    config = load_config("digits-mlp", ["train.epochs=2", "train.device=cpu"])  # 21 batches an epoch
    stopped = train(config, create_run_dir(tmp_path, "alone"), stop=StopAfter(21 + 5))
    batch = load_checkpoint(stopped.run_dir / "checkpoints" / "last.pt")["progress"]["batch"]
    assert stopped.status == "interrupted" and stopped.summary["epochs_run"] == 1 and batch > 0
    refused = subprocess.run(torchrun("train", "--resume", stopped.run_dir, "-q"), capture_output=True, text=True)
    # A usage error: exit 2 from each rank that got to say it (torchrun stops the other one
    # once a rank has failed, and adds its own report).
    assert "exitcode  : 2" in refused.stderr
    said = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    expected = f"(after batch {batch}) by 1 process, and this resume runs 2 processes"
    assert said and all(expected in line and "so resume it without torchrun" in line for line in said)

    finished = train(config, create_run_dir(tmp_path, "epoch-end"))
    extended = subprocess.run(
        torchrun("train", "--resume", finished.run_dir, "--epochs", 3, "-q"), capture_output=True, text=True
    )
    assert extended.returncode == 0, extended.stderr
    assert json.loads((finished.run_dir / "summary.json").read_text())["epochs_run"] == 3


@pytest.mark.slow
def test_a_ctrl_c_in_the_test_pass_under_torchrun_stops_every_rank_at_one_batch(tmp_path: Path) -> None:
    """Under torchrun validation and the closing test pass ran to their end whatever the
    signal (a ResNet-56 on 400 photos: seconds), and the run then called itself completed."""
    photos = split_photos(tmp_path / "photos")
    args = ["train", "cifar10-resnet", "--dataset", photos, "--epochs", 1, "--batch-size", 4, "--set", "model.depth=56"]
    process = subprocess.Popen(
        torchrun(*args, "--device", "cpu", "-q", "--runs-dir", tmp_path, "--name", "run"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = tmp_path / "run"
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():  # its only epoch
        assert process.poll() is None, process.communicate()
        time.sleep(0.005)
    last = (run / "checkpoints" / "last.pt").read_bytes()
    process.send_signal(signal.SIGINT)  # the test pass began as the epoch's line was written
    stdout, stderr = process.communicate(timeout=120)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary.get("test") is None, stderr
    assert (run / "checkpoints" / "last.pt").read_bytes() == last and stdout.strip() == str(run)
    resumed = subprocess.run(torchrun("train", "--resume", run, "-q"), capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test"]["n"] == 400 and summary["world_size"] == 2
