"""`dltool train` end to end on the embedded digits, through typer's CliRunner."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import StopAfter, metrics_without_times
from dltool.config import load_config
from dltool.engine import resume, train
from dltool.engine.checkpoint import load_checkpoint
from dltool.errors import TrainingDivergedError
from dltool.rundir import create_run_dir, open_run_dir

METRIC_KEYS = {"epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s", "samples_per_s"}
SUMMARY_KEYS = {
    "status",
    "epochs_run",
    "best",
    "final",
    "test",
    "wall_time_s",
    "setup_time_s",
    "device",
    "amp",
    "world_size",
    "dltool_version",
    "torch_version",
}


def test_train_writes_the_whole_run_dir(cli, tmp_path: Path) -> None:
    result = cli("train", "digits-mlp", "--epochs", "3", "--runs-dir", tmp_path / "r")
    run = Path(result.stdout.strip())
    assert result.stdout.count("\n") == 1 and run == tmp_path / "r" / "digits-mlp-1"
    umask = os.umask(0o022)
    os.umask(umask)
    for name in [
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "classes.json",
        "model.safetensors",
        "checkpoints/last.pt",
    ]:
        assert (run / name).is_file(), name
        # as readable as any file the user makes (crash-safe writes start from mkstemp's 0600)
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~umask, name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(set(r) >= METRIC_KEYS for r in records)
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["status"] == "completed" and summary["epochs_run"] == 3
    assert set(summary["best"]) == {"epoch", "metric", "value"}
    assert summary["test"]["n"] == 359 and 0.5 < summary["test"]["accuracy"] <= 1
    assert json.loads((run / "classes.json").read_text()) == [str(i) for i in range(10)]
    assert load_file(run / "model.safetensors").keys() == load_checkpoint(run / "checkpoints/last.pt")["model"].keys()
    assert "epoch 3/3" in result.stderr and "test accuracy" in result.stderr
    # Setup is timed apart from training, in the log and in summary.json.
    assert summary["setup_time_s"] > 0 and "data ready in " in result.stderr
    assert f"training {summary['wall_time_s']:.1f}s, setup {summary['setup_time_s']:.1f}s" in result.stderr


def test_the_run_config_is_resolved_and_reproduces_the_run(cli, tmp_path: Path) -> None:
    first = Path(cli("train", "digits-mlp", "--epochs", "2", "--seed", "3", "-q").stdout.strip())
    config = yaml.safe_load((first / "config.yaml").read_text())
    assert config["train"]["seed"] == 3 and len(config["data"]["mean"]) == 1
    second = Path(cli("train", first / "config.yaml", "-q").stdout.strip())
    assert second.name == "digits-mlp-2"
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()


def test_runs_are_numbered_and_never_overwritten(cli) -> None:
    runs = [cli("train", "digits-mlp", "--epochs", "1", "-q").stdout.strip() for _ in range(2)]
    assert [Path(r).name for r in runs] == ["digits-mlp-1", "digits-mlp-2"]
    cli("train", "digits-mlp", "--epochs", "1", "--name", "mine", "-q")
    assert "already exists" in cli("train", "digits-mlp", "--name", "mine", code=2).stderr


def test_print_config_prints_yaml_and_trains_nothing(cli, tmp_path: Path) -> None:
    result = cli("train", "digits-mlp", "--lr", "0.01", "--set", "model.depth=3", "--print-config")
    config = yaml.safe_load(result.stdout)
    assert config["optimizer"]["lr"] == 0.01 and config["model"]["depth"] == 3
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["digts-mlp"], "did you mean 'digits-mlp'"),
        (["digits-mlp", "--lr", "-1"], "optimizer.lr: should be greater than 0"),
        (["digits-mlp", "--set", "optimizer.momentun=0.9"], "optimizer.momentun: unknown key"),
        (["digits-mlp", "--set", "train.epochs=abc"], "train.epochs: should be a valid integer"),
        (["digits-mlp", "--device", "cuda:7"], "device 'cuda:7' is not available here; available: cpu"),
        (["digits-mlp", "--device", "gpu"], "train.device: expected auto, cpu, cuda, cuda:N or mps (got 'gpu')"),
        (["digits-mlp", "--optimizer", "adamm"], "did you mean 'adam'"),
        ([], "name a recipe"),
        (["digits-mlp", "--name", "a/b"], "--name 'a/b': use letters, digits"),
    ],
)
def test_bad_input_is_a_usage_error_and_creates_nothing(cli, tmp_path: Path, args, expected) -> None:
    result = cli("train", *args, code=2)
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == "" and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--set", "data.classes=[1,99]"], 2, "data.classes: '99' not a class"),
        (["--dataset", "not-classes", "--set", "data.image_size=8"], 1, "no class folders"),
    ],
)
def test_a_run_that_fails_while_its_data_is_prepared_leaves_no_run_dir(
    cli, tmp_path: Path, args, code, expected
) -> None:
    # Such errors come after the run dir is claimed: it stayed, empty but for its lock, and
    # took the name (the next run was digits-mlp-2); the runs folder made for it stayed too.
    (tmp_path / "not-classes").mkdir()
    result = cli("train", "digits-mlp", "--runs-dir", tmp_path / "r" / "deep", *args, code=code)
    assert expected in result.stderr and result.stdout == ""
    assert not (tmp_path / "r").exists()
    (tmp_path / "r").mkdir()
    cli("train", "digits-mlp", "--runs-dir", tmp_path / "r", *args, code=code)
    assert list((tmp_path / "r").iterdir()) == []  # a folder that was there before stays
    assert (
        cli("train", "digits-mlp", "--epochs", "1", "--runs-dir", tmp_path / "r")
        .stdout.strip()
        .endswith("digits-mlp-1")
    )


def test_resume_a_finished_run_with_more_epochs(cli) -> None:
    run = cli("train", "digits-mlp", "--epochs", "2", "-q").stdout.strip()
    first = json.loads((Path(run) / "summary.json").read_text())
    cli("train", "--resume", run, "--epochs", "4", "-q")
    summary = json.loads((Path(run) / "summary.json").read_text())
    assert summary["epochs_run"] == 4 and summary["status"] == "completed"
    assert summary["setup_time_s"] > first["setup_time_s"]  # both sessions' setups, summed
    assert len((Path(run) / "metrics.jsonl").read_text().splitlines()) == 4
    assert "cannot change optimizer.lr" in cli("train", "--resume", run, "--lr", "0.1", code=2).stderr
    assert "nowhere: no such run directory" in cli("train", "--resume", "nowhere", code=2).stderr
    # Fewer epochs than it has trained: nothing to train, and config.yaml said 3 of a 4-epoch run.
    config = (Path(run) / "config.yaml").read_text()
    fewer = cli("train", "--resume", run, "--epochs", "3", code=2)
    assert "train.epochs 3: the run has trained 4 epochs already; resume with --epochs 4 or more" in fewer.stderr
    assert (Path(run) / "config.yaml").read_text() == config and fewer.stdout == ""


def test_early_stopping_stops_and_says_so(tmp_path: Path) -> None:
    config = load_config(
        "digits-mlp", ["train.epochs=50", "train.early_stopping.patience=2", "train.early_stopping.min_delta=10"]
    )
    result = train(config, create_run_dir(tmp_path, "es"))
    assert result.status == "early_stopped" and result.summary["epochs_run"] == 3
    assert result.summary["best"]["epoch"] == 1


@pytest.mark.parametrize("layout", ["ranks", "before ranks"])
def test_resume_from_a_mid_epoch_stop_is_bitwise_identical(tmp_path: Path, layout: str) -> None:
    """The library path: stop after some steps via the event, resume, compare bytes. A
    checkpoint from before the random state and partial sums were kept per rank (``rng``
    and ``progress.partial``: a single process's) resumes the same."""
    config = load_config("digits-mlp", ["train.epochs=3", "train.batch_size=32"])
    reference = train(config, create_run_dir(tmp_path, "ref"))

    run = create_run_dir(tmp_path, "cut")
    interrupted = train(config, run, stop=StopAfter(50))  # 40 batches per epoch: stops in epoch 2
    assert interrupted.status == "interrupted" and interrupted.summary["epochs_run"] == 1
    if layout == "before ranks":
        state = torch.load(run.last_checkpoint, weights_only=True)
        (own,) = state.pop("ranks")
        state["rng"], state["progress"]["partial"] = own["rng"], own["partial"]
        torch.save(state, run.last_checkpoint)
    finished = resume(open_run_dir(run.path))
    assert finished.status == "completed"
    assert (run.path / "model.safetensors").read_bytes() == (reference.run_dir / "model.safetensors").read_bytes()
    assert metrics_without_times(run.path) == metrics_without_times(reference.run_dir)


def test_a_diverging_run_records_nan_as_null(tmp_path: Path) -> None:
    config = load_config(
        "digits-mlp",
        [
            "train.epochs=2",
            "optimizer.name=sgd",
            "optimizer.lr=1e6",
            "model.batch_norm=false",
            "loss.label_smoothing=0",
        ],
    )
    run = create_run_dir(tmp_path, "nan")
    with pytest.raises(TrainingDivergedError, match="NaN or infinite"):  # see train.nonfinite_patience
        train(config, run)
    records = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    assert all(r["train_loss"] is None or math.isfinite(r["train_loss"]) for r in records)
    assert json.loads(run.summary.read_text())["status"] == "failed"  # strict JSON all the same


def test_checkpoint_loads_with_the_safe_loader_only(tmp_path: Path) -> None:
    result = train(load_config("digits-mlp", ["train.epochs=1"]), create_run_dir(tmp_path, "safe"))
    state = torch.load(result.run_dir / "checkpoints/last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "ranks", "progress", "config", "classes", "versions"} <= set(
        state
    )


def test_a_photo_recipe_without_its_folder_says_to_give_one_before_looking_for_weights(
    cli, tmp_path: Path, monkeypatch
) -> None:
    # Its data.name is a placeholder (photos): the weights' download error came first, and
    # the dataset's hint said "give a folder path" without saying how.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    error = cli("train", "photos-resnet18", code=2).stderr
    assert error.startswith("error: unknown dataset 'photos'") and "--dataset PATH" in error
    assert "weights" not in error and not (tmp_path / "runs").exists()
