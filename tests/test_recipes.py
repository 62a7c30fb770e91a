"""Every recipe trains a short epoch on tiny data in its dataset's official format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from dltool.config import load_config
from dltool.config.recipes import list_recipes
from dltool.data.download import download_dataset
from dltool.data.sources import GENERATED
from fakedata import fake

RECIPES = [r.name for r in list_recipes()]


def put_dataset(name: str, root: Path) -> None:
    """The unpacked files of a tiny fake ``name`` under ``root``, as `dltool download` leaves them;
    for a photos recipe (``data.name: photos``, a folder), a few photos in ``./photos``."""
    if name == "photos":
        write_photos(Path("photos"))
    elif name in GENERATED:  # made offline, as `dltool download` makes it
        download_dataset(name, root)
    elif name != "digits":
        fake(name).write_outputs(root / name)


def write_photos(folder: Path, per_class: int = 6) -> None:
    """JPEG photos of two classes, of other sizes than the weights' 224 px."""
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (rng.integers(120, 300), rng.integers(120, 300), 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{i}.jpg")


def cache_pretrained_weights(recipe: str) -> None:
    """Random weights under the file name and folder the recipe's pretrained weights load from."""
    from dltool.models.build import build_model
    from dltool.models.zoo import split_name

    config = load_config(recipe)
    family, arch = split_name(config.model.name)
    source = family.impl().weights_source(arch, config.model.pretrained)
    model = build_model(config.model.without_weights(), in_shape=(3, 32, 32), num_classes=source.num_classes)
    path = source.folder / source.file_names[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, path) if path.suffix == ".pth" else save_file(state, path)


def train_briefly(cli, recipe: str, root: Path, runs: Path, *extra: str) -> Path:
    put_dataset(load_config(recipe).data.name, root)
    if getattr(load_config(recipe).model, "pretrained", False):
        cache_pretrained_weights(recipe)
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


def test_a_photos_recipe_needs_its_weights_to_train_not_to_validate(cli, tmp_path: Path) -> None:
    config = load_config("photos-resnet18")  # validates with an empty cache
    assert config.model.pretrained is True and config.data.image_size == 224
    write_photos(Path("photos"))
    result = cli("train", "photos-resnet18", "--epochs", "1", code=1)
    assert "resnet18-f37072fd.pth" in result.stderr and "model.pretrained=PATH" in result.stderr
