"""The task layer: tasks are asked, never compared by name, and a new one is one module."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dltool.tasks as tasks
from dltool import api
from dltool._registry import Entry
from dltool.config.validate import validate_config
from dltool.errors import ConfigError
from dltool.tasks.task import Batches, Drawable, Figures, Forward, Scored, Task
from dltool.viz import visualize_run

SRC = Path(__file__).parents[1] / "src" / "dltool"
# `task == "x"`, `.task != X`, `"classification" == task`, `task in ("a", "b")`: a name compared.
COMPARISON = re.compile(
    r"""task\w*\s*(==|!=|\bin\b|\bnot in\b)\s*["'(A-Z]|["'](classification|reconstruction)["']\s*(==|!=)"""
)


def test_no_module_outside_the_tasks_compares_task_names() -> None:
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if "tasks" not in path.relative_to(SRC).parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if COMPARISON.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_comparison_pattern_finds_what_it_forbids() -> None:
    for line in ['if task == "classification":', "if step.task != CLASSIFICATION:", 'if "reconstruction" == t:']:
        assert COMPARISON.search(line), line
    assert not COMPARISON.search("loss = task.target(images, labels)")


class BrightnessParams(tasks.TaskParams):
    """Toy: each image's mean (normalised) pixel, from a linear head on any backbone."""

    target = "values"
    default_loss = "mse"
    metrics = ("val_mae",)
    on_backbone = True
    rows = None


class Brightness(Task):
    """A task defined here alone: no module of dltool is touched to add it."""

    name = "brightness"
    export_output = "brightness"

    def out_features(self, classes: list[str]) -> int:
        return 1

    def target(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return images.mean((1, 2, 3))[:, None]

    def batch_sums(
        self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, confusion_classes: int
    ) -> dict[str, torch.Tensor]:
        error = output.float() - self.target(images, labels)
        return {"loss_sum": error.square().sum().double(), "abs_sum": error.abs().sum().double()}

    def zero_sums(self, confusion_classes: int, device: torch.device) -> dict[str, torch.Tensor]:
        return super().zero_sums(confusion_classes, device) | {"abs_sum": torch.zeros((), dtype=torch.float64)}

    def means(self, sums: dict[str, Any]) -> dict[str, float]:
        return super().means(sums) | {"mae": float(sums["abs_sum"]) / max(1, int(sums["n"]))}

    def record(self, train: dict[str, float], val: dict[str, float]) -> dict[str, float]:
        return {"val_mae": val["mae"]}

    @torch.inference_mode()
    def evaluate(self, forward: Forward, batches: Batches, classes: list[str], std: list[float]) -> Scored:
        sums = self.zero_sums(0, torch.device("cpu"))
        n = 0
        for images, labels in batches:
            for key, value in self.batch_sums(forward(images), images, labels, 0).items():
                sums[key] += value.cpu()
            n += len(images)
        return Scored(self.means({**sums, "n": n}))

    def figures(self, scored: Drawable) -> Figures:
        from dltool.figures.canvas import new_figure

        images = scored.samples.take(np.arange(min(8, len(scored.samples)))).images
        figure = new_figure(4, 3)
        figure.add_subplot().scatter(images.mean((1, 2, 3)), scored.run(images)[:, 0].numpy())
        return [("brightness", figure, "predicted brightness against each image's mean pixel")]


@pytest.fixture
def brightness(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = Entry("brightness", f"{__name__}:Brightness", BrightnessParams, "toy")
    monkeypatch.setitem(tasks.tasks._entries, "brightness", entry)
    yield
    tasks.get.cache_clear()


def test_a_task_registered_from_outside_trains_evaluates_and_is_monitored(brightness: None, tmp_path: Path) -> None:
    overrides = {
        "model.head": "brightness",
        "loss.name": "mse",
        "train.epochs": 2,
        "train.monitor.metric": "val_mae",
        "train.device": "cpu",
    }
    result = api.train("digits-mlp", overrides=overrides, runs_dir=tmp_path)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [set(row) & {"val_mae", "val_acc", "train_acc"} for row in rows] == [{"val_mae"}, {"val_mae"}]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["best"]["metric"] == "val_mae" and summary["test"]["mae"] >= 0
    document = api.evaluate(result.run_dir, split="val", device="cpu").document
    assert document["mae"] == pytest.approx(rows[summary["best"]["epoch"] - 1]["val_mae"], rel=1e-4)
    with pytest.raises(ConfigError, match="loss.name: 'cross_entropy' does not suit the brightness task"):
        validate_config({"model": {"name": "mlp", "head": "brightness"}, "loss": {"name": "cross_entropy"}})
    drawn = visualize_run(result.run_dir, out=tmp_path / "plots", device="cpu")
    plots = {path.stem for path in drawn.written if path.suffix == ".png"}
    assert "brightness" in plots and not plots & {"confusion", "reconstructions", "worst"}, plots
    assert "predicted brightness against each image" in (tmp_path / "plots" / "report.html").read_text()


def test_a_head_needs_a_task_served_on_a_backbone_and_a_classification_backbone(brightness: None) -> None:
    assert tasks.task_name(validate_config({"model": {"name": "cnn", "head": "brightness"}}).model) == "brightness"
    with pytest.raises(
        ConfigError,
        match=r"model.head: should be one of: classifier, keypoints, regression, brightness \(got 'reconstruction'",
    ):
        validate_config({"model": {"name": "cnn", "head": "reconstruction"}})
    with pytest.raises(ConfigError, match="a brightness head needs a classification backbone, not a reconstruction"):
        validate_config({"model": {"name": "autoencoder", "head": "brightness"}})


def test_each_task_says_what_it_measures_and_which_way_is_better() -> None:
    assert tasks.maximize("val_acc") and not tasks.maximize("val_loss")
    assert validate_config({"model": {"name": "autoencoder"}}).loss.name == "mse"  # the task's default loss
    with pytest.raises(ConfigError, match="train.monitor.metric: 'val_acc' is not measured for the reconstruction"):
        validate_config({"model": {"name": "autoencoder"}, "train": {"monitor": {"metric": "val_acc"}}})
    with pytest.raises(ConfigError, match="did you mean 'val_acc'"):
        validate_config({"train": {"monitor": {"metric": "val_ac"}}})


@pytest.mark.parametrize("name", tasks.names())
def test_each_tasks_headline_scores_are_keys_of_its_test_means(name: str) -> None:
    """What train's closing line shows is what the task's test score holds (no silent loss)."""
    sums = tasks.get(name).zero_sums(3 if tasks.info(name).class_sums else 0, torch.device("cpu"))
    means = tasks.get(name).means(sums | {"n": 0})
    headline = tasks.info(name).headline
    assert headline and {key for key, _ in headline} <= set(means)
