"""`dltool summary` and train's totals line: torchinfo's layers and counts, checked against
independent counts (parameters by hand, MACs against torch's FLOP counter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from dltool.models import models
from dltool.models.build import build_model
from dltool.models.freezing import freeze
from dltool.models.summary import summarize

IN_SHAPE = (3, 16, 16)


@pytest.mark.parametrize("entry", [e for e in models if not e.family], ids=lambda e: e.name)
def test_every_model_is_summarised_with_its_own_counts(entry, required_params) -> None:
    model = build_model(
        entry.params(name=entry.name, **required_params(entry, IN_SHAPE)), in_shape=IN_SHAPE, num_classes=10
    )
    model.train()
    rng = torch.get_rng_state()
    found = summarize(model, IN_SHAPE, name=entry.name)
    assert model.training and torch.equal(torch.get_rng_state(), rng)  # mode restored, no random draws
    assert found.total_params == sum(p.numel() for p in model.parameters())
    assert found.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert found.input_shape == [1, *IN_SHAPE] and found.layers and found.macs > 0
    assert {row.depth for row in found.layers} <= {1, 2, 3}
    top = {row.name for row in found.layers if row.depth == 1}  # in the order they ran
    assert top == {name for name, _ in model.named_children()}


def test_macs_agree_with_torchs_flop_counter_and_frozen_weights_are_counted() -> None:
    model = build_model(models.get("cnn").params(name="cnn", widths=[8, 16]), in_shape=IN_SHAPE, num_classes=10)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *IN_SHAPE))
    found = summarize(model, IN_SHAPE, name="cnn")
    # The FLOP counter counts convolutions and matmuls, 2 FLOPs per MAC; torchinfo adds the
    # small elementwise layers (norms, biases).
    assert found.macs == pytest.approx(counter.get_total_flops() / 2, rel=0.05)
    freeze(model, "backbone")
    head = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = summarize(model, IN_SHAPE, name="cnn")
    assert frozen.trainable_params == head < frozen.total_params
    assert frozen.frozen_params == frozen.total_params - head
    assert frozen.to_dict()["frozen_params"] == frozen.frozen_params


def test_summary_of_a_recipe_a_config_and_a_run(cli, tmp_path: Path) -> None:
    recipe = json.loads(cli("summary", "digits-mlp", "--json").stdout)
    expected = 64 * 256 + 2 * 256 + 256 * 256 + 2 * 256 + 256 * 10 + 10  # two bias-free Linear+BN, the head
    assert recipe["total_params"] == recipe["trainable_params"] == expected and recipe["frozen_params"] == 0
    assert recipe["input_shape"] == [1, 1, 8, 8] and recipe["layers"][-1]["output_shape"] == [1, 10]
    shown = cli("summary", "digits-mlp")
    assert shown.stdout == "" and f"{expected:,} parameters" in shown.stderr and "Linear" in shown.stderr

    config = tmp_path / "frozen.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "mlp", "width": 32, "freeze": ["1.*"]}}))
    frozen = json.loads(cli("summary", config, "--json", "--depth", "1").stdout)
    first = 64 * 32 + 32  # the first Linear, weight and bias (no norm layer without the recipe)
    assert frozen["frozen_params"] == first and frozen["trainable_params"] == frozen["total_params"] - first

    trained = cli("train", "digits-mlp", "--epochs", "1", "--set", "train.limit_batches=2")
    run = Path(trained.stdout.strip())
    assert json.loads(cli("summary", run, "--json").stdout) == recipe
    assert json.loads(cli("summary", run / "model.safetensors", "--json").stdout) == recipe
    macs = f"{recipe['macs'] / 1e3:.3g} K MACs per 1×8×8 input"
    assert f"parameters: {expected:,} trainable of {expected:,} (model.freeze: none); {macs}" in trained.stderr


def test_summary_usage_errors(cli) -> None:
    assert "did you mean 'digits-mlp'" in cli("summary", "digts-mlp", code=2).stderr
    assert "--depth" in cli("summary", "digits-mlp", "--depth", "0", code=2).stderr


def test_summary_of_an_export_names_the_weights_it_came_from(cli, digits_run: Path) -> None:
    cli("export", digits_run, "--to", "torchscript", "--output", "m.torchscript")
    error = cli("summary", "m.torchscript", code=2).stderr  # was "not a YAML file (... a binary file?)"
    assert error.strip() == (
        "error: m.torchscript is an exported model; summary lists a recipe's, config's, run's or checkpoint's "
        f"layers: dltool summary {(digits_run / 'model.safetensors').resolve()}, the weights it was exported from"
    )
    missing = cli("summary", "typo.onnx", code=2).stderr  # no such file: not called an export
    assert "exported model" not in missing and "typo.onnx" in missing


@pytest.mark.parametrize("command", ["train", "summary"])
def test_an_input_too_small_for_the_network_is_a_usage_error_naming_it(cli, tmp_path: Path, command: str) -> None:
    # ConvNeXt downsamples 32x: at 8 px (photos-convnext at data.image_size=16 too) train and
    # summary were an internal error quoting torchinfo's list of every layer it had run.
    config = tmp_path / "convnext.yaml"
    config.write_text("base: digits-mlp\nmodel: {name: 'timm:convnext_atto'}\n")
    result = cli(command, config, code=2)
    assert "model 'timm:convnext_atto' cannot take a 1×8×8 input: " in result.stderr
    assert "raise data.image_size" in result.stderr and "torchinfo" not in result.stderr
    assert not list(tmp_path.glob("runs/*"))  # no run dir


def test_summary_of_a_keypoint_config_has_the_trained_models_head(cli, tmp_path: Path) -> None:
    # A config's summary sized the head by the point names (2 for 2 points): the run it
    # trains has x and y of each, 4 outputs, as the run's own summary showed.
    from pointdata import points_folder

    folder = points_folder(tmp_path / "dots", {"train": 8, "val": 4, "test": 4})
    config = tmp_path / "points.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"name": str(folder), "image_size": 16},
                "model": {"name": "mlp", "width": 8, "head": "keypoints"},
                "loss": {"name": "mse"},
            }
        )
    )
    recipe = json.loads(cli("summary", config, "--json").stdout)
    assert recipe["layers"][-1]["output_shape"] == [1, 4]
    run = Path(cli("train", config, "--epochs", "1", "--runs-dir", tmp_path / "runs").stdout.strip())
    assert json.loads(cli("summary", run, "--json").stdout)["layers"] == recipe["layers"]


def test_a_run_that_trained_past_unfreeze_epoch_is_summarised_with_every_weight_trainable(cli) -> None:
    # model.freeze is the first epochs' only: "(650 trainable, 65,184 frozen)" described a
    # run whose every weight had trained since epoch 2.
    args = ["train", "digits-cnn", "--set", "model.freeze=backbone", "--set", "train.unfreeze_epoch=1"]
    fast = ["--set", "train.limit_batches=1"]
    unfrozen = Path(cli(*args, "--epochs", "2", *fast).stdout.strip())
    found = json.loads(cli("summary", unfrozen, "--json").stdout)
    assert found["frozen_params"] == 0 and found["trainable_params"] == found["total_params"]
    still_frozen = Path(cli(*args, "--epochs", "1", *fast).stdout.strip())
    head = json.loads(cli("summary", still_frozen, "--json").stdout)
    assert 0 < head["trainable_params"] < head["total_params"] == found["total_params"]


@pytest.mark.parametrize("name", ["autoencoder", "cnn", "unet"])
def test_a_container_s_macs_are_its_layers_sum(name: str, required_params) -> None:
    # torchinfo's figure for a container multiplies the parameters below it by its own output
    # size: an autoencoder's encoder read 868 K MACs where its layers do 87 K.
    entry = models.get(name)
    model = build_model(entry.params(name=name, **required_params(entry, IN_SHAPE)), in_shape=IN_SHAPE, num_classes=3)
    found = summarize(model, IN_SHAPE, name=name, depth=9)
    assert sum(row.macs for row in found.layers if row.depth == 1) == found.macs
    for row in found.layers:
        below = [r for r in found.layers if r.depth == row.depth + 1 and r.name.startswith(row.name + ".")]
        if below:
            assert row.macs == sum(r.macs for r in below), row.name


def test_a_recipe_is_summarised_from_its_dataset_under_another_root(cli, tmp_path: Path, digits_run: Path) -> None:
    # A dataset downloaded with `--root data` could not be summarised: summary had no --root.
    root = tmp_path / "elsewhere"
    found = json.loads(cli("summary", "digits-cnn", "--root", root, "--json").stdout)
    assert found["total_params"] > 0 and (root / "digits").is_dir()  # prepared there
    refused = cli("summary", digits_run, "--root", root, code=2).stderr
    assert "--root applies to a recipe or config" in refused
