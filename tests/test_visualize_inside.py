"""`dltool visualize`: ROC and precision–recall curves that agree with eval's numbers, first-layer
filters, and feature maps of a chosen layer for a chosen image."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dltool.config import load_config
from dltool.data.images import decode_image
from dltool.engine import train
from dltool.evaluation.trained import load_trained
from dltool.figures import eval_plots
from dltool.rundir import create_run_dir
from dltool.viz import inside


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    os.environ["DLTOOL_DATA"] = str(data_dir)
    config = load_config("digits-mlp", [], {"train.epochs": 2, "model.width": 32})
    return train(config, create_run_dir(tmp_path_factory.mktemp("runs"), "digits-mlp")).run_dir


@pytest.fixture(scope="module")
def digit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_digits

    path = tmp_path_factory.mktemp("img") / "three.png"
    Image.fromarray((load_digits().images[3] * 255 / 16).astype(np.uint8)).resize((24, 24)).save(path)
    return path


def test_curves_enclose_the_areas_eval_reports(cli, run: Path) -> None:
    from dltool.evaluation.evaluate import evaluate_split

    document = json.loads(cli("eval", run, "--json").stdout)
    evaluation = evaluate_split(load_trained(run), split="test")
    probs, labels, classes = evaluation.probs, evaluation.samples.labels, [str(d) for d in range(10)]
    per_class = [document["per_class"][name] for name in classes]
    aucs, aps = [row["roc_auc"] for row in per_class], [row["average_precision"] for row in per_class]
    roc = eval_plots.roc_figure(probs, labels, classes, aucs, document["roc_auc"])
    lines = roc.axes[0].lines[:10]  # a line per class, then the chance diagonal
    for name, line in zip(classes, lines):
        fpr, tpr = line.get_data()
        assert np.trapezoid(tpr, fpr) == pytest.approx(document["per_class"][name]["roc_auc"])
        assert line.get_label().startswith(f"{name} (")
    pr = eval_plots.precision_recall_figure(probs, labels, classes, aps, document["average_precision"])
    for name, line in zip(classes, pr.axes[0].lines):
        recall, precision = line.get_data()  # recall falls as the threshold rises
        step_area = -np.sum(np.diff(recall) * precision[:-1])  # AP: precision at each recall step
        assert step_area == pytest.approx(document["per_class"][name]["average_precision"])
    assert f"macro AUC {document['roc_auc']:.3f}" in roc.axes[0].get_title()


def test_first_layer_filters_are_the_weights_as_images(run: Path) -> None:
    trained = load_trained(run)
    name, weights = inside.first_layer_weights(trained.model, trained.in_shape)
    assert name == "1" and weights.shape == (32, 1, 8, 8)  # an MLP's first Linear, rows as 8×8 images
    assert np.array_equal(weights.reshape(32, -1), trained.model.get_submodule("1").weight.detach().numpy())
    figure = inside.filters_figure(name, "Linear", weights)
    assert sum(bool(ax.images) for ax in figure.axes) == 32
    convolution = torch.nn.Sequential(torch.nn.Conv2d(3, 70, 5), torch.nn.ReLU())
    conv_name, kernels = inside.first_layer_weights(convolution, (3, 16, 16))
    assert conv_name == "0" and kernels.shape == (70, 3, 5, 5)
    shown = inside.filters_figure(conv_name, "Conv2d", kernels)
    assert sum(bool(ax.images) for ax in shown.axes) == inside.SHOWN and "64 of 70" in shown._suptitle.get_text()
    assert inside.first_layer_weights(torch.nn.Sequential(torch.nn.Linear(5, 2)), (1, 8, 8)) is None  # not an image


def test_feature_maps_are_the_layers_output_for_the_image(cli, run: Path, digit: Path, tmp_path: Path) -> None:
    paths = cli("visualize", run, "--feature-maps", "1", "--image", digit, "--out", tmp_path).stdout.split()
    assert paths == [str(tmp_path / "feature-maps-1.png")]
    with Image.open(paths[0]) as image:
        image.verify()
    trained = load_trained(run)
    activation = inside._activation(trained, trained.model.get_submodule("1"), digit)
    pixels = decode_image(str(digit), channels=1, size=(8, 8), crop_pct=trained.crop_pct)
    x = (torch.from_numpy(pixels).float() / 255 - trained.mean[0]) / trained.std[0]
    expected = trained.model.get_submodule("1")(x.reshape(1, -1)).detach().numpy()[0]  # Linear on flat pixels
    assert activation.shape == (32,) and np.allclose(activation, expected, atol=1e-5)
    figure = inside.feature_maps_figure(np.zeros((3, 4, 4)), "conv", "Conv2d", "x.png")
    assert sum(bool(ax.images) for ax in figure.axes) == 3


def test_a_few_features_are_numbered_by_whole_ticks() -> None:
    (ax,) = inside.feature_maps_figure(np.array([-0.03, 0.5]), "10", "Linear", "x.png").axes
    low, high = ax.get_xlim()
    shown = [tick for tick in ax.get_xticks() if low <= tick <= high]
    assert shown == [0, 1]  # was -0.5, -0.25, 0, ..., 1.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--feature-maps", "1"], "--feature-maps LAYER and --image FILE go together"),
        (["--feature-maps", "x1", "--image", "IMAGE"], "no such layer in mlp; did you mean '1'"),
        (["--feature-maps", "1", "--image", "IMAGE", "--split", "val"], "--split does not apply"),
        (["--feature-maps", "1", "--image", "IMAGE", "RUN"], "one run dir"),
        (["--feature-maps", "1", "--image", "missing.png"], "--image missing.png: no such file"),  # was exit 1
    ],
)
def test_feature_map_usage_errors(cli, run: Path, digit: Path, args: list[str], message: str) -> None:
    args = [str(digit) if a == "IMAGE" else str(run) if a == "RUN" else a for a in args]
    assert message in cli("visualize", run, *args, code=2).stderr


def test_an_unreadable_image_is_one_line(cli, run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    result = cli("visualize", run, "--feature-maps", "1", "--image", broken, code=1)
    assert result.stderr.startswith("error: --image") and result.stderr.count("\n") == 1
