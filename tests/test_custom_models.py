"""Your own model: model.name `package.module:Class`, `file.py:Class` or an entry point name;
every command works with it, and a run whose class is gone is a clear exit 1."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

NET = textwrap.dedent(
    """
    from torch import nn


    class {name}(nn.Sequential):
        def __init__(self, *, hidden: int, in_shape, num_classes: int, dropout: float = 0.0):
            channels, height, width = in_shape
            super().__init__(
                nn.Flatten(),
                nn.Linear(channels * height * width, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )


    class NotAModule:
        pass
    """
)
FAST = ["--epochs", "1", "--set", "train.limit_batches=2"]


def write_net(path: Path, name: str = "MyNet") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(NET.format(name=name))
    return path


def test_a_file_model_trains_resumes_evaluates_predicts_and_exports(cli, tmp_path: Path) -> None:
    net = write_net(tmp_path / "nets" / "mynet.py")
    result = cli("train", "digits-mlp", "--model", "nets/mynet.py:MyNet", "--set", "model.hidden=16", *FAST)
    run = Path(result.stdout.strip())
    config = yaml.safe_load((run / "config.yaml").read_text())["model"]
    # Recorded absolute; the recipe's dropout is kept: MyNet takes it (its depth and width are not).
    assert config == {**config, "name": f"{net}:MyNet", "hidden": 16, "dropout": 0.2} and "depth" not in config
    source = json.loads((run / "summary.json").read_text())["model_source"]
    assert source == {
        "class": f"{net}:MyNet",
        "file": str(net),
        "sha256": hashlib.sha256(net.read_bytes()).hexdigest(),
    }
    assert f"model class {net}:MyNet from {net}" in result.stderr
    cli("train", "--resume", run, "--epochs", "2")
    assert json.loads(cli("eval", run, "--json").stdout)["n"] == 359
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    assert cli("predict", run, image, "--format", "jsonl").stdout.count("\n") == 1
    cli("export", run)
    net.unlink()  # the class is gone: loading the run fails clearly
    for command in (["eval", run], ["predict", run, image], ["train", "--resume", run, "--epochs", "3"]):
        (line,) = cli(*command, code=1).stderr.strip().splitlines()
        assert "no such file" in line and str(net) in line


def test_a_package_model_and_the_errors_that_name_what_to_fix(cli, tmp_path: Path, monkeypatch) -> None:
    write_net(tmp_path / "site" / "pkg_a" / "models.py")
    (tmp_path / "site" / "pkg_a" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cli("train", "digits-mlp", "--model", "pkg_a.models:MyNet", "--set", "model.hidden=8", *FAST)
    cases = [
        (
            ["--set", "model.hidden=8", "--set", "model.dropuot=0.1"],
            "'dropuot': not a keyword of the class; did you mean 'dropout'?",
        ),
        ([], "pkg_a.models:MyNet needs hidden (set model.hidden)"),
        (["--set", "model.hidden=8", "--set", "model.num_classes=3"], "'num_classes': dltool sets it from the data"),
    ]
    for extra, message in cases:
        result = cli("train", "digits-mlp", "--set", "model.name=pkg_a.models:MyNet", *extra, code=2)
        assert message in result.stderr, result.stderr
    for name, message in [
        ("pkg_a.models:MyNte", "pkg_a.models has no class 'MyNte'; did you mean 'MyNet'?"),
        ("pkg_a.models:NotAModule", "pkg_a.models.NotAModule is not a torch.nn.Module"),
        ("pkg_b.models:MyNet", "model.name: cannot import pkg_b.models (ModuleNotFoundError"),
        ("timn:resnet18", "did you mean 'timm'?"),
    ]:
        assert message in cli("train", "digits-mlp", "--set", f"model.name={name}", code=2).stderr


def test_a_package_registers_its_models_by_entry_point(cli, tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "site"
    write_net(site / "tinynets.py", name="TinyNet")
    info = site / "tinynets-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinynets\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dltool.models]\ntinynet = tinynets:TinyNet\n")
    monkeypatch.syspath_prepend(str(site))
    listed = {m["name"]: m for m in json.loads(cli("list", "models", "--json").stdout)["models"]}
    assert listed["tinynet"]["description"] == "tinynets:TinyNet (entry point of tinynets)"
    run = Path(cli("train", "digits-mlp", "--model", "tinynet", "--set", "model.hidden=8", *FAST).stdout.strip())
    assert json.loads((run / "summary.json").read_text())["model_source"]["class"] == "tinynets:TinyNet"


def test_tune_searches_a_file_models_keywords(cli, tmp_path: Path) -> None:
    net = write_net(tmp_path / "mynet.py")
    base = tmp_path / "mynet.yaml"
    base.write_text(f"model: {{name: '{net}:MyNet', hidden: 4}}\ntrain: {{epochs: 1, limit_batches: 2}}\n")
    space = tmp_path / "space.yaml"
    space.write_text("model.hidden: [8, 16]\n")
    study = Path(cli("tune", base, "--space", space, "--trials", "2", "--sampler", "grid").stdout.strip())
    hidden = sorted(yaml.safe_load(p.read_text())["model"]["hidden"] for p in study.glob("trial-*/config.yaml"))
    assert hidden == [8, 16]


@pytest.mark.parametrize("name", ["mlp", "torchvision:resnet18"])
def test_catalogue_names_are_not_taken_for_classes(name: str) -> None:
    from dltool.models import models
    from dltool.models.custom import CustomParams

    assert models.get(name).params is not CustomParams
