"""Every recipe trains a short epoch on tiny data in its dataset's official format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dltool.config import load_config
from dltool.config.recipes import list_recipes
from fakedata import fake

RECIPES = [r.name for r in list_recipes()]


def put_dataset(name: str, root: Path) -> None:
    """The unpacked files of a tiny fake ``name`` under ``root``, as `dltool download` leaves them."""
    if name != "digits":
        fake(name).write_outputs(root / name)


def train_briefly(cli, recipe: str, root: Path, runs: Path, *extra: str) -> Path:
    put_dataset(load_config(recipe).data.name, root)
    result = cli(
        "train",
        recipe,
        "--root",
        root,
        "--runs-dir",
        runs,
        "--epochs",
        "1",
        "--limit-batches",
        "2",
        "--batch-size",
        "8",
        "-q",
        *extra,
    )
    return Path(result.stdout.strip())


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r != "mnist-encoder-classifier"])
def test_every_recipe_trains_one_short_epoch(cli, recipe: str, tmp_path: Path) -> None:
    run = train_briefly(cli, recipe, tmp_path / "data", tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 1
    assert (run / "model.safetensors").is_file()


def test_autoencoder_then_encoder_classifier_end_to_end(cli, tmp_path: Path) -> None:
    root, runs = tmp_path / "data", tmp_path / "runs"
    encoder_run = train_briefly(cli, "mnist-autoencoder", root, runs)
    classifier = train_briefly(cli, "mnist-encoder-classifier", root, runs, "--set", f"model.encoder_run={encoder_run}")
    summary = json.loads((classifier / "summary.json").read_text())
    assert summary["status"] == "completed" and "accuracy" in summary["test"]
    document = json.loads(cli("eval", classifier, "--json").stdout)
    assert document["n"] == 10 and len(document["confusion_matrix"]) == 10


def test_cifar10_fast_runs_its_cpu_path_and_scores_with_flips(cli, tmp_path: Path) -> None:
    run = train_briefly(
        cli, "cifar10-fast", tmp_path / "data", tmp_path / "runs", "--epochs", "2", "--set", "model.widths=[4,8,8]"
    )
    config = load_config(str(run))
    assert (config.train.compile, config.train.tta, config.train.batch_size) == ("auto", "flip", 8)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["amp"] == "off" and summary["epochs_run"] == 2
    document = json.loads(cli("eval", run, "--json").stdout)
    assert document["tta"] == "flip" and document["accuracy"] == summary["test"]["accuracy"]
