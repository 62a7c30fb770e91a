"""train.keep_checkpoints (epoch checkpoints kept beside last.pt) and --dry-run on train and tune."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dltool.engine.checkpoint import load_checkpoint
from dltool.rundir import open_run_dir

FAST = ["--set", "train.limit_batches=2"]


def test_keep_checkpoints_keeps_the_last_n_epochs_and_the_best(cli) -> None:
    # Monitoring the training loss for a maximum makes the first epoch the best one.
    monitor = ["--set", "train.monitor.metric=train_loss", "--set", "train.monitor.mode=max"]
    result = cli("train", "digits-mlp", "--epochs", "5", "--set", "train.keep_checkpoints=2", *monitor, *FAST)
    run = open_run_dir(Path(result.stdout.strip()))
    best = json.loads(run.summary.read_text())["best"]["epoch"]
    kept = run.epoch_checkpoints()
    assert best < 4 and sorted(kept) == sorted({best, 4, 5})
    for epoch, path in kept.items():  # each a full training state, loaded safely
        assert load_checkpoint(path)["progress"]["epoch"] == epoch
    assert kept[5].read_bytes() == run.last_checkpoint.read_bytes()
    evaluated = json.loads(cli("eval", kept[best], "--json").stdout)
    assert evaluated["n"] == 359 and evaluated["checkpoint"] == str(kept[best].resolve())


def test_by_default_only_last_pt_is_kept(cli) -> None:
    run = open_run_dir(Path(cli("train", "digits-mlp", "--epochs", "2", *FAST).stdout.strip()))
    assert run.epoch_checkpoints() == {} and sorted(p.name for p in run.last_checkpoint.parent.iterdir()) == ["last.pt"]


def test_keep_checkpoints_refuses_a_negative_count(cli) -> None:
    result = cli("train", "digits-mlp", "--set", "train.keep_checkpoints=-1", code=2)
    assert "train.keep_checkpoints" in result.stderr and "greater than or equal to 0" in result.stderr


# --- --dry-run --------------------------------------------------------------------------------


def test_train_dry_run_builds_and_reads_a_batch_and_writes_nothing(cli, tmp_path: Path) -> None:
    result = cli("train", "digits-mlp", "--dry-run", "--set", "model.width=16", "--batch-size", "32")
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert "data: digits, 10 classes; train 1,295, val 143, test 359" in lines
    assert "one batch read: 32×1×8×8 → output 32×10" in lines
    assert any(line.startswith("parameters: 1,514 trainable of 1,514") for line in lines)  # 2×16 units, batch norm
    assert lines[-1] == "dry run: no run dir written"
    assert not (tmp_path / "runs").exists()


def test_train_dry_run_fails_as_the_run_would(cli, tmp_path: Path) -> None:
    assert "--resume" in cli("train", "--dry-run", "--resume", tmp_path, code=2).stderr
    # An error only building the model meets: LeNet-5 refuses inputs under 4×4.
    result = cli("train", "digits-mlp", "--model", "lenet5", "--set", "data.image_size=3", "--dry-run", code=2)
    assert "at least 4×4" in result.stderr and not (tmp_path / "runs").exists()


def test_train_dry_run_of_folds_checks_the_first_folds_split(cli, tmp_path: Path) -> None:
    # It dry-ran a plain run (val 143): the folds' usage errors passed unseen.
    lines = cli("train", "digits-mlp", "--folds", "3", "--dry-run").stderr.splitlines()
    assert lines[0] == "--folds 3: 3 runs, each validating on one fold; the first is checked"
    assert "data: digits, 10 classes; train 958, val 480, test 359" in lines
    result = cli("train", "digits-mlp", "--folds", "3", "--set", "data.cv_folds=3", "--dry-run", code=2)
    assert "drop data.cv_folds=3" in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Each of these ran the first flag's way and ignored the second without a word.
        (["digits-mlp", "--find-lr", "--folds", "3"], "--folds and --find-lr cannot be combined"),
        (["--resume", "runs/x", "--print-config"], "--resume and --print-config cannot be combined"),
        (["digits-mlp", "--overfit-batches", "1", "--find-lr"], "--overfit-batches and --find-lr cannot be combined"),
        (
            ["digits-mlp", "--print-config", "--dry-run"],
            "--dry-run checks a new run (or the first fold of --folds); drop --print-config",
        ),
        (["digits-mlp", "--json"], "--json goes with --overfit-batches or --find-lr; a run prints its dir"),
        (["digits-mlp", "--find-lr", "--json", "--dry-run"], "drop --find-lr"),
        (["--resume", "runs/x", "--name", "copy"], "--name names a training run's dir, which --resume does not start"),
        (
            ["digits-mlp", "--find-lr", "--name", "lr"],
            "--name names a training run's dir, which --find-lr does not start",
        ),
    ],
)
def test_train_flags_that_would_be_ignored_are_usage_errors(cli, tmp_path: Path, args: list[str], message: str) -> None:
    assert message in cli("train", *args, code=2).stderr
    assert not (tmp_path / "runs").exists()


def test_tune_dry_run_checks_a_sample_trial_and_creates_no_study(cli, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}\nmodel.width: [16, 32]\n")
    result = cli("tune", "digits-mlp", "--space", space, "--trials", "4", "--dry-run")
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "would tune runs/digits-mlp-tune-<n>: 4 trials, val_acc (maximize), sampler tpe, pruner median"
    assert lines[1].startswith("a sample trial: optimizer.lr=") and "model.width=" in lines[1]
    assert lines[-1].startswith("dry run: no run dir written") and not (tmp_path / "runs").exists()
    space.write_text("model.widht: [16, 32]\n")
    assert "model.widht" in cli("tune", "digits-mlp", "--space", space, "--dry-run", code=2).stderr
