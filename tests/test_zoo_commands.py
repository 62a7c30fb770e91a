"""Every command with a zoo model: resume, eval, predict, export, tune, torchrun, visualize and
the Python API, at tiny sizes (digits upsampled to 16 px, a few batches)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import dltool
from conftest import StopAfter, metrics_without_times, write_digit_images
from dltool.config import load_config
from dltool.engine import resume, train
from dltool.rundir import create_run_dir, open_run_dir

QUICK = ["train.epochs=1", "train.limit_batches=3", "data.image_size=16"]
PRETRAINED = ["model.name=timm:resnet18", "model.pretrained=true", *QUICK]
IMAGENET_MEAN = [0.485, 0.456, 0.406]


def _cache_resnet18_weights(hf_home: Path) -> None:
    """Random weights with timm resnet18's names, where the Hugging Face cache keeps a1_in1k's."""
    import timm

    torch.manual_seed(7)
    state = timm.create_model("resnet18", num_classes=1000).state_dict()
    folder = hf_home / "hub" / "models--timm--resnet18.a1_in1k" / "snapshots" / "main"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A pretrained timm resnet18 run on digits (the module's fixtures precede conftest's own)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLTOOL_DATA", str(data_dir))
        patch.setenv("HF_HOME", str(home / "hf"))
        patch.setenv("DLTOOL_OFFLINE", "1")
        patch.setenv("HF_HUB_OFFLINE", "1")
        _cache_resnet18_weights(home / "hf")
        # 3 batches of 128 cover the whole test split (360 images): eval must give the same score.
        config = load_config("digits-mlp", [*PRETRAINED, "train.batch_size=128"])
        return train(config, create_run_dir(tmp_path_factory.mktemp("runs"), "zoo")).run_dir


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Grey and RGB digits of other sizes than training's: predict converts them as training did."""
    return write_digit_images(tmp_path_factory.mktemp("imgs"), 6, grow=5)


def _rows(stdout: str) -> list[dict]:
    return list(csv.DictReader(stdout.splitlines()))


def test_eval_and_predict_reproduce_the_weights_preprocessing(cli, run: Path, images: Path) -> None:
    config = json.loads(json.dumps(__import__("yaml").safe_load((run / "config.yaml").read_text())))
    assert config["data"]["mean"] == IMAGENET_MEAN and config["data"]["channels"] == 3
    document = json.loads(cli("eval", run, "--json").stdout)
    summary = json.loads((run / "summary.json").read_text())
    assert document["n"] == summary["test"]["n"] and document["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    rows = _rows(cli("predict", run, images, "--format", "csv").stdout)
    assert len(rows) == 6 and all(r["label"] in [str(d) for d in range(10)] for r in rows)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("format_name", ["onnx", "torchscript"])
def test_export_is_verified_and_predicts_the_runs_rows(cli, run: Path, images: Path, format_name: str) -> None:
    output = run / "zoo-export" / f"model.{format_name}"
    result = cli("export", run, "--to", format_name, "--output", output)
    assert "verified with" in result.stderr
    exported = Path(result.stdout.strip())
    expected = _rows(cli("predict", run, images, "--format", "csv").stdout)
    got = _rows(cli("predict", exported, images, "--format", "csv").stdout)
    assert [r["label"] for r in got] == [r["label"] for r in expected]


def test_visualize_draws_the_zoo_run(cli, run: Path, tmp_path: Path) -> None:
    cli("visualize", run, "--out", tmp_path / "plots")
    assert any(p.suffix == ".png" for p in (tmp_path / "plots").rglob("*"))


def test_resume_of_a_pretrained_zoo_run_is_bitwise_identical(isolated: Path) -> None:
    _cache_resnet18_weights(Path(os.environ["HF_HOME"]))
    config = load_config("digits-mlp", [*PRETRAINED, "train.epochs=2"])
    reference = train(config, create_run_dir(isolated, "ref"))
    run = create_run_dir(isolated, "cut")
    assert train(config, run, stop=StopAfter(4)).status == "interrupted"  # in epoch 2 (3 batches each)
    assert resume(open_run_dir(run.path)).status == "completed"
    assert (run.path / "model.safetensors").read_bytes() == (reference.run_dir / "model.safetensors").read_bytes()
    assert metrics_without_times(run.path) == metrics_without_times(reference.run_dir)


def test_the_python_api_trains_and_evaluates_a_zoo_model(isolated: Path) -> None:
    overrides = {"model.name": "torchvision:mobilenet_v3_small", **dict(o.split("=") for o in QUICK)}
    result = dltool.train("digits-mlp", overrides=overrides)
    assert result.status == "completed"
    assert dltool.evaluate(result.run_dir).document["n"] > 0


def test_tune_chooses_among_zoo_architectures(cli, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("model.name: ['timm:resnet18', 'torchvision:resnet18']\n")
    study = Path(
        cli("tune", "digits-mlp", "--space", space, "--sampler", "grid", *(f"--set={o}" for o in QUICK)).stdout.strip()
    )
    trials = list(csv.DictReader((study / "trials.csv").read_text().splitlines()))
    assert sorted(t["model.name"] for t in trials) == ["timm:resnet18", "torchvision:resnet18"]
    assert all(t["state"] == "COMPLETE" for t in trials)


def test_torchrun_trains_a_zoo_model_in_two_processes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "dltool", "train", "digits-mlp", "--model", "timm:resnet18", "--device", "cpu",
        "--runs-dir", str(runs), *(f"--set={o}" for o in QUICK),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((runs / "digits-mlp-1" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
