"""What each network promises beyond running: sizes, paper parameter counts, loaded encoders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import make_autoencoder_run
from dltool.config import load_config, validate_config
from dltool.engine.checkpoint import load_weights
from dltool.errors import ConfigError
from dltool.models import models
from dltool.models.build import build_model


def _build(name: str, in_shape=(3, 32, 32), num_classes: int = 10, **params) -> nn.Module:
    return build_model(models.get(name).params(name=name, **params), in_shape=in_shape, num_classes=num_classes)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# He et al. 2016, Table 6: parameters of the CIFAR-10 ResNets (option A shortcuts).
@pytest.mark.parametrize(("depth", "millions"), [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_resnet_parameter_counts_match_the_paper(depth: int, millions: float) -> None:
    count = _count(_build("resnet", depth=depth))
    assert round(count / 1e6, 2 if depth < 100 else 1) == millions


@pytest.mark.parametrize("depth", [0, 2, 7, 21, 27, 100])
def test_resnet_refuses_depths_that_are_not_6n_plus_2(depth: int) -> None:
    with pytest.raises(ConfigError, match=rf"model.depth: depth must be 6n\+2 .* \(got {depth}\)"):
        validate_config({"model": {"name": "resnet", "depth": depth}})


def test_resnet_option_b_and_width_multiplier() -> None:
    base = _count(_build("resnet"))
    wide = _build("resnet", width_multiplier=2, shortcut="B")
    assert 3.9 * base < _count(wide) < 4.3 * base  # conv weights grow with width squared
    assert any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in wide.modules())
    assert wide(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_lenet5_is_the_classic_size_on_32x32_and_fits_small_inputs() -> None:
    assert _count(_build("lenet5", in_shape=(1, 32, 32))) == 61_706  # LeCun et al.'s ~60k
    mnist = _build("lenet5", in_shape=(1, 28, 28), activation="relu", pool="max")
    assert mnist[7].in_features == 16 * 5 * 5  # 28 → 28 → 14 → 10 → 5, as on padded MNIST
    for shape in [(1, 4, 4), (1, 8, 8), (3, 13, 40)]:
        assert _build("lenet5", in_shape=shape)(torch.randn(2, *shape)).shape == (2, 10)
    with pytest.raises(ConfigError, match="at least 4×4"):
        _build("lenet5", in_shape=(1, 3, 3))


@pytest.mark.parametrize("side", [8, 224])
def test_cnn_fits_8_to_224_pixels(side: int) -> None:
    model = _build("cnn", in_shape=(3, side, side), widths=[4, 8, 8, 8], convs_per_stage=1, dropout=0.1)
    assert model(torch.randn(2, 3, side, side)).shape == (2, 10)


@pytest.mark.parametrize("name", ["cnn", "resnet"])
@pytest.mark.parametrize(("activation", "layer"), [("relu", nn.ReLU), ("gelu", nn.GELU), ("tanh", nn.Tanh)])
def test_cnn_and_resnet_use_the_activation_they_are_given(name: str, activation: str, layer: type) -> None:
    small = {"cnn": {"widths": [4, 8]}, "resnet": {"depth": 8}}[name]
    model = _build(name, in_shape=(3, 8, 8), activation=activation, **small)
    found = {type(m) for m in model.modules() if type(m).__module__ == "torch.nn.modules.activation"}
    assert found == {layer}
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    # The activation holds no weights: a relu run's weights load into a gelu network of its shape.
    relu = _build(name, in_shape=(3, 8, 8), **small)
    assert model.state_dict().keys() == relu.state_dict().keys()


def test_an_unknown_activation_for_cnn_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="model.activation: .*'relu', 'leaky_relu', 'tanh', 'sigmoid' or 'gelu'"):
        validate_config({"model": {"name": "cnn", "activation": "swish"}})


@pytest.mark.parametrize("in_shape", [(1, 8, 8), (1, 28, 28), (3, 7, 9), (1, 1, 1)])
def test_autoencoder_restores_the_input_shape_through_a_code(in_shape) -> None:
    model = _build("autoencoder", in_shape=in_shape, latent_dim=5, widths=[4, 8, 8])
    images = torch.randn(2, *in_shape)
    assert model.encoder(images).shape == (2, 5)
    assert model.decoder(model.encoder(images)).shape == images.shape
    # Inputs are mean/std-normalised, so the output is not squashed into [0, 1].
    assert isinstance(model.decoder[-1], nn.Conv2d)
    assert models.get("autoencoder").params.task == "reconstruction"
    assert models.get("resnet").params.task == "classification"


# --- encoder-classifier (its encoder's weights: tests/test_init_from.py) --------------


def test_encoder_classifier_is_built_from_its_params_alone() -> None:
    model = _build("encoder-classifier", in_shape=(1, 8, 8), latent_dim=6, widths=[4, 8], hidden=16, dropout=0.1)
    assert model.encoder(torch.randn(2, 1, 8, 8)).shape == (2, 6)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert model.dltool_head == "head"


def test_encoder_classifier_trains_through_the_cli(cli, tmp_path: Path) -> None:
    run = make_autoencoder_run(tmp_path / "ae", (1, 8, 8))  # digits are 1×8×8
    out = cli(
        "train",
        "digits-mlp",
        "--model",
        "encoder-classifier",
        "--set",
        f"model.encoder_run={run}",
        "--epochs",
        "1",
        "-q",
    ).stdout.strip()
    config = load_config(out)
    assert config.model.name == "encoder-classifier" and config.model.encoder_run == str(run)
    weights = load_weights(Path(out) / "model.safetensors")
    saved = load_weights(run / "model.safetensors")
    encoder = [k for k in saved if k.startswith("encoder.")]
    assert encoder and all(torch.equal(weights[k], saved[k]) for k in encoder)  # frozen: unchanged
    assert (config.model.latent_dim, config.model.widths) == (6, [4, 8])  # the architecture, from the run
