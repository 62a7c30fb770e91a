"""The CIFAR-10 fast path on CPU: the airbench network, its whitening stem, test-time flips,
``compile: auto`` and the linear schedule, through the same code a GPU runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dltool.config import load_config, validate_config
from dltool.data.prepare import prepare_data
from dltool.engine import train
from dltool.engine.device import on_cuda_when_auto, resolve_precision
from dltool.engine.distributed import World
from dltool.engine.setup import build_components, init_images
from dltool.engine.tta import FlipAverage, with_tta
from dltool.errors import ConfigError
from dltool.evaluation.trained import load_trained
from dltool.models import models
from dltool.models.build import build_model
from dltool.rundir import create_run_dir

TINY = ["model.name=airbench", "model.widths=[8,16,16]"]


def _airbench(in_shape=(3, 32, 32), **params) -> torch.nn.Module:
    return build_model(models.get("airbench").params(name="airbench", **params), in_shape=in_shape, num_classes=10)


def test_airbench_has_the_published_size_and_no_learned_norm_scales() -> None:
    model = _airbench()
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 1.97  # airbench94: "2M parameters"
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 6 and not any(n.weight.requires_grad for n in norms)
    assert all(n.bias.requires_grad for n in norms) and model.stem.out_channels == 24
    # convs start as identity maps: a block's second conv passes its input through
    conv = model.blocks[0].conv2
    x = torch.randn(1, 64, 5, 5)
    assert torch.equal(conv(x), x)


def test_whitening_decorrelates_the_stems_patches_and_freezes_it() -> None:
    torch.manual_seed(0)
    mixing = torch.randn(12, 12)  # strongly correlated 2×2 patches of 3 channels
    patches = torch.randn(20000, 12) @ mixing.T * 10
    images = patches.view(-1, 3, 2, 2)  # each image is one patch: the stem sees exactly these rows
    model = _airbench()
    model.init_from_data(images)
    weight = model.stem.weight
    assert not weight.requires_grad and model.stem.bias.requires_grad
    assert torch.equal(weight[12:], -weight[:12])
    filters = weight[:12].reshape(12, 12)
    covariance = (patches @ filters.T).T @ (patches @ filters.T) / len(patches)
    assert torch.allclose(covariance, torch.eye(12), atol=1e-2)  # eigenvalues ≫ the ε added to them
    unfitted = _airbench(whiten=False)
    unfitted.init_from_data(images)
    assert unfitted.stem.weight.requires_grad


def test_a_run_keeps_the_whitened_stem_and_optimises_the_rest(tmp_path: Path) -> None:
    config = load_config("digits-mlp", [*TINY, "train.epochs=2", "optimizer.weight_decay=0.01"])
    run = train(config, create_run_dir(tmp_path, "airbench")).run_dir
    saved = load_file(run / "model.safetensors")
    data = prepare_data(load_config(str(run)).data)
    fresh = _airbench(in_shape=data.in_shape, widths=[8, 16, 16])
    fresh.init_from_data(init_images(data, torch.device("cpu")))
    assert torch.equal(saved["stem.weight"], fresh.stem.weight)  # fitted, then never moved
    assert not torch.equal(saved["head.2.weight"], fresh.head[2].weight)
    parts = build_components(config, torch.device("cpu"), resolve_precision("off", torch.device("cpu")), World())
    optimised = {id(p) for group in parts.step.optimizer.param_groups for p in group["params"]}
    assert id(parts.model.stem.weight) not in optimised and id(parts.model.stem.bias) in optimised


def test_flip_tta_averages_the_logits_of_image_and_mirror() -> None:
    torch.manual_seed(0)
    model = _airbench(widths=[4, 8]).eval()
    images = torch.randn(3, 3, 32, 32)
    expected = (model(images) + model(torch.flip(images, dims=[3]))) / 2
    assert torch.allclose(with_tta(model, "flip")(images), expected)
    assert with_tta(model, "none") is model
    assert not torch.allclose(model(images), expected)


@pytest.fixture(scope="module")
def tta_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    import os

    os.environ["DLTOOL_DATA"] = str(data_dir)
    config = load_config("digits-mlp", [*TINY, "train.epochs=2", "train.tta=flip"])
    return train(config, create_run_dir(tmp_path_factory.mktemp("runs"), "tta")).run_dir


def _accuracy(run: Path, tta: str) -> float:
    """Test accuracy computed here, from the weights, without dltool's evaluation code."""
    config = load_config(str(run))
    data = prepare_data(config.data)
    model = _airbench(in_shape=data.in_shape, widths=[8, 16, 16]).eval()
    model.load_state_dict(load_file(run / "model.safetensors"))
    images = torch.from_numpy(data.splits["test"].images).float() / 255
    images = (images - torch.tensor(data.mean).view(1, -1, 1, 1)) / torch.tensor(data.std).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = model(images)
        if tta == "flip":
            logits = (logits + model(images.flip(-1))) / 2
    return float((logits.argmax(1).numpy() == data.splits["test"].labels).mean())


def test_tta_scores_training_and_eval_alike(cli, tta_run: Path) -> None:
    summary = json.loads((tta_run / "summary.json").read_text())
    flipped = json.loads(cli("eval", tta_run, "--json").stdout)
    assert flipped["tta"] == "flip" and json.loads((tta_run / "eval-test.json").read_text()) == flipped
    assert (
        flipped["accuracy"] == pytest.approx(summary["test"]["accuracy"]) == pytest.approx(_accuracy(tta_run, "flip"))
    )
    plain = json.loads(cli("eval", tta_run, "--tta", "none", "--json").stdout)
    assert plain["tta"] == "none" and plain["accuracy"] == pytest.approx(_accuracy(tta_run, "none"))
    assert isinstance(load_trained(tta_run).scorer, FlipAverage)
    assert "--tta 'twice': expected none or flip" in cli("eval", tta_run, "--tta", "twice", code=2).stderr


def test_tta_and_compile_values_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"train.tta: should be 'none' or 'flip' \(got 'mirror'\)"):
        validate_config({"train": {"tta": "mirror"}})
    with pytest.raises(ConfigError, match="train.tta: 'flip' averages a classifier's logits; model 'autoencoder'"):
        validate_config({"model": {"name": "autoencoder"}, "loss": {"name": "mse"}, "train": {"tta": "flip"}})
    with pytest.raises(ConfigError, match="train.compile"):
        validate_config({"train": {"compile": "sometimes"}})
    assert validate_config({"train": {"compile": "auto"}}).train.compile == "auto"


@pytest.mark.parametrize(("setting", "cpu", "cuda"), [("auto", False, True), (True, True, True), (False, False, False)])
def test_auto_switches_turn_on_for_cuda_only(setting, cpu: bool, cuda: bool) -> None:
    assert on_cuda_when_auto(setting, torch.device("cpu")) is cpu
    assert on_cuda_when_auto(setting, torch.device("cuda")) is cuda


def test_compile_auto_trains_the_plain_model_on_cpu() -> None:
    cpu = torch.device("cpu")
    config = load_config("digits-mlp", ["train.compile=auto"])
    parts = build_components(config, cpu, resolve_precision("auto", cpu), World())
    assert parts.step.model is parts.model and not parts.step.channels_last
