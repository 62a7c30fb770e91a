"""`--tensorboard`: event files in RUN/tensorboard/, read back with TensorBoard's own reader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import StopAfter
from dltool.config import load_config
from dltool.engine import resume, train
from dltool.engine.device import Precision
from dltool.engine.loop import evaluate
from dltool.rundir import create_run_dir, open_run_dir
from events import epoch_series, events, hparams, logs_every_epoch, scalars
from studies import trials_csv, write

QUICK = ["--epochs", "2", "--limit-batches", "3", "-q"]


def test_train_logs_every_epoch_the_scores_the_confusion_matrix_and_the_hparams(cli) -> None:
    run = Path(cli("train", "digits-mlp", "--tensorboard", *QUICK).stdout.strip())
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["tensorboard"] is True
    summary = json.loads((run / "summary.json").read_text())
    assert {"lr", "train_loss", "train_acc", "val_loss", "val_acc"} <= set(epoch_series(run))
    assert logs_every_epoch(run)
    accumulator = events(run)
    logged = scalars(accumulator)
    assert logged["best_val_loss"] == [(summary["best"]["epoch"], pytest.approx(summary["best"]["value"]))]
    assert logged["test_acc"] == [(2, pytest.approx(summary["test"]["accuracy"]))]
    assert logged["test_loss"] == [(2, pytest.approx(summary["test"]["loss"]))]
    [image] = accumulator.Images("confusion_matrix")
    assert image.step == 2 and image.encoded_image_string.startswith(b"\x89PNG")
    values = hparams(accumulator)
    assert values["optimizer.lr"] == 1e-3 and values["model.name"] == "mlp" and values["train.batch_size"] == 64
    assert values["train.limit_batches"] == 3 and values["train.grad_clip"] == "null"
    assert values["data.mean"] == json.dumps(yaml.safe_load((run / "config.yaml").read_text())["data"]["mean"])


def test_a_reconstruction_run_logs_its_losses_and_no_confusion_matrix(cli) -> None:
    run = Path(
        cli(
            "train", "digits-mlp", "--model", "autoencoder", "--set", "loss.name=mse", "--tensorboard", *QUICK
        ).stdout.strip()
    )
    assert logs_every_epoch(run)
    accumulator = events(run)
    logged = scalars(accumulator)
    assert "train_acc" not in logged and "test_acc" not in logged and "test_loss" in logged
    assert accumulator.Tags()["images"] == [] and hparams(accumulator)["model.name"] == "autoencoder"


def test_a_stopped_and_resumed_run_has_each_epoch_once(tmp_path: Path) -> None:
    config = load_config("digits-mlp", ["train.epochs=3", "train.limit_batches=5", "train.tensorboard=true"])
    run = create_run_dir(tmp_path, "cut")
    stopped = train(config, run, stop=StopAfter(10))  # 5 steps, 3 val batches an epoch: stops in epoch 2
    assert stopped.status == "interrupted"
    assert logs_every_epoch(run.path) and len(epoch_series(run.path)["val_loss"]) == 1  # flushed on the way out
    accumulator = events(run.path)
    assert accumulator.Tags()["images"] == [] and hparams(accumulator)["train.epochs"] == 3

    resume(open_run_dir(run.path), overrides={"train.epochs": 4})
    assert logs_every_epoch(run.path) and [step for step, _ in epoch_series(run.path)["val_loss"]] == [1, 2, 3, 4]
    accumulator = events(run.path)
    assert hparams(accumulator)["train.epochs"] == 4 and len(accumulator.Images("confusion_matrix")) == 1


def test_resume_may_turn_tensorboard_on_and_writes_the_whole_history(cli) -> None:
    run = Path(cli("train", "digits-mlp", *QUICK).stdout.strip())
    assert not (run / "tensorboard").exists()
    cli("train", "--resume", run, "--epochs", "3", "--tensorboard", "-q")
    assert logs_every_epoch(run) and len(epoch_series(run)["train_loss"]) == 3


def test_flag_beats_set_and_no_tensorboard_turns_it_off(cli) -> None:
    printed = cli("train", "digits-mlp", "--set", "train.tensorboard=true", "--no-tensorboard", "--print-config")
    assert yaml.safe_load(printed.stdout)["train"]["tensorboard"] is False


def test_tune_trials_log_into_their_own_run_dirs(cli, tmp_path: Path) -> None:
    space = write(tmp_path / "grid.yaml", "optimizer.lr: [1.0e-3, 1.0e-2]\n")
    study = Path(
        cli(
            "tune", "digits-mlp", "--space", space, "--sampler", "grid", "--pruner", "none", "--tensorboard", *QUICK
        ).stdout.strip()
    )
    rows = trials_csv(study)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    for row in rows:
        assert logs_every_epoch(study / row["run_dir"])
        assert hparams(events(study / row["run_dir"]))["optimizer.lr"] == float(row["optimizer.lr"])


@pytest.mark.parametrize("command", ["train", "tune"])
def test_asking_without_tensorboard_installed_names_the_extra(cli, tmp_path: Path, monkeypatch, command) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what an import finds when the extra is missing
    space = ["--space", write(tmp_path / "space.yaml", "optimizer.lr: [1.0e-3]\n")] if command == "tune" else []
    result = cli(command, "digits-mlp", *space, "--tensorboard", code=2)
    assert "train.tensorboard: tensorboard is not installed; pip install 'dltool[tensorboard]'" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_run_without_it_never_imports_tensorboard(tmp_path: Path) -> None:
    code = (
        "import sys; from dltool.cli import app\n"
        "try: app(['train', 'digits-mlp', '--epochs', '1', '--limit-batches', '2', '-q'])\n"
        "except SystemExit as exit: assert not exit.code, exit.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorboard' or 'utils.tensorboard' in m))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]" and (tmp_path / "runs" / "digits-mlp-1").is_dir()


def test_evaluate_counts_true_and_predicted_pairs() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    batches = [(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(3)]
    sums = evaluate(model, batches, Precision(None), torch.device("cpu"), confusion_classes=3)
    predicted = torch.cat([model(x).argmax(1) for x, _ in batches])
    labels = torch.cat([y for _, y in batches])
    expected = [[int(((labels == t) & (predicted == p)).sum()) for p in range(3)] for t in range(3)]
    assert sums["confusion"].tolist() == expected and int(sums["confusion"].trace()) == int(sums["correct"])
