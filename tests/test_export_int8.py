"""`dltool export --int8`: an ONNX file with int8 weights and activations, calibrated on the
run's training images, kept only when it scores on the test split within --max-drop of the
model; `dltool predict` runs it like any export."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch
from PIL import Image

import dltool
from conftest import Cli, write_digit_images
from dltool.commands._output import error_message
from dltool.config import load_config
from dltool.engine import train
from dltool.errors import ExportError, UsageError
from dltool.evaluation.trained import Trained, load_trained
from dltool.export import sidecar_path
from dltool.export.export import export_trained
from dltool.export.int8 import Int8, Int8Check
from dltool.export.quantize import quantize, refusal
from dltool.models.build import build_model
from dltool.rundir import create_run_dir


@pytest.fixture(scope="module")
def run(digits_run: Path) -> Path:
    return digits_run


@pytest.fixture(scope="module")
def int8_export(run: Path):
    return Cli()("export", run, "--int8")


@pytest.fixture(scope="module")
def float_export(run: Path) -> Path:
    return Path(Cli()("export", run).stdout.strip())


def _rows(stdout: str) -> list[dict]:
    return list(csv.DictReader(stdout.splitlines()))


def test_an_int8_export_is_scored_on_the_runs_test_split_and_says_so(cli, run: Path, int8_export) -> None:
    path = run / "export" / "model.int8.onnx"
    assert int8_export.stdout == f"{path}\n"
    sidecar = json.loads(sidecar_path(path).read_text())
    check = sidecar["verification"]["int8"]
    evaluated = json.loads(cli("eval", run, "--json").stdout)
    # The float score is the run's own test accuracy, on the same images as dltool eval.
    assert check["split"] == "test" and check["score"] == "accuracy"
    assert check["float"] == evaluated["accuracy"] and check["images"] == evaluated["n"] == 359
    assert check["int8"] >= check["float"] * (1 - check["max_drop"]) and check["max_drop"] == 0.01
    assert sidecar["quantization"]["calibration"] == {"split": "train", "images": 256, "method": "min-max"}
    assert sidecar["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert f"accuracy {check['int8']:.4g} on 359 test images against the model's" in int8_export.stderr
    assert "calibrated on 256 training images" in int8_export.stderr and "warn" not in int8_export.stderr.lower()
    assert check["speedup"] > 0 and f"{check['speedup']:.2g}× the float file's speed here" in int8_export.stderr
    # One line each, however narrow stderr is (a pipe: 80 columns), so a log keeps it whole.
    announced = "int8: after the float file's check, calibrating on up to 256 training images, then scoring"
    assert any(line.startswith(announced) for line in int8_export.stderr.splitlines())


def test_the_int8_file_holds_int8_weights_beside_the_float_export(run: Path, int8_export, float_export: Path) -> None:
    float_path = float_export
    int8_path = run / "export" / "model.int8.onnx"
    assert float_path == run / "export" / "model.onnx" and int8_path.is_file()  # neither replaced the other
    graph = onnx.load(int8_path).graph
    layers = [node for node in graph.node if node.op_type in ("Gemm", "MatMul", "Conv")]
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert layers and len(int8_weights) >= len(layers)
    assert sum(node.op_type == "QuantizeLinear" for node in graph.node) >= len(layers)
    assert int8_path.stat().st_size < 0.4 * float_path.stat().st_size  # a byte per weight, not four


def test_predict_runs_the_int8_file_with_the_runs_labels(cli, run: Path, int8_export, tmp_path: Path) -> None:
    images = write_digit_images(tmp_path, 40)
    expected = _rows(cli("predict", run, images, "--format", "csv").stdout)
    rows = _rows(cli("predict", run / "export" / "model.int8.onnx", images, "--format", "csv").stdout)
    assert [r["path"] for r in rows] == [r["path"] for r in expected] and len(rows) == 40
    agree = sum(r["label"] == e["label"] for r, e in zip(rows, expected))
    assert agree >= 36, f"{agree} of 40 labels agree with the float model"


def test_every_calibration_batch_sets_the_ranges(float_export: Path) -> None:
    """The first of nine batches holds the widest pixels: its range must reach the file, as
    it would not if the calibrator dropped batches (onnxruntime's CalibMaxIntermediateOutputs)."""
    float_onnx = float_export.read_bytes()
    rng = np.random.default_rng(0)
    batches = [rng.uniform(-1, 1, (10, 1, 8, 8)).astype(np.float32) for _ in range(9)]
    batches[0][0, 0, 0, 0], batches[0][0, 0, 0, 1] = -40.0, 60.0
    data, images = quantize(float_onnx, iter(batches))
    graph = onnx.load_from_string(data).graph
    node = next(n for n in graph.node if n.op_type == "QuantizeLinear")  # the MLP's first: the pixels, flattened
    scale = onnx.numpy_helper.to_array(next(t for t in graph.initializer if t.name == node.input[1]))
    assert images == 90 and float(scale) == pytest.approx(100 / 255, rel=1e-3)


def test_the_same_run_exports_the_same_int8_file(run: Path, int8_export, tmp_path: Path) -> None:
    again = export_trained(load_trained(run), "onnx", tmp_path / "again.onnx", int8=Int8())
    assert again.path.read_bytes() == (run / "export" / "model.int8.onnx").read_bytes()


class Outlier(torch.nn.Module):
    """The model, with one activation ten thousand times the others' size on the way: in
    float it changes nothing, but it stretches that tensor's int8 range so far that every
    pixel rounds to the same level."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.flatten(1)
        stretched = torch.cat([flat, 1e4 * flat[:, :1]], 1)
        return self.model(stretched[:, :-1].reshape(images.shape))


def test_an_int8_file_that_scores_worse_is_refused_and_nothing_written(run: Path, tmp_path: Path) -> None:
    trained = load_trained(run)
    outlier = Trained(
        Outlier(trained.model).eval(), trained.config, trained.classes, trained.in_shape, trained.source, None
    )
    with pytest.raises(
        ExportError,
        match=r"int8 accuracy on the 359 images of the test split is 0\.\d+ against .* worse .*nothing written",
    ):
        export_trained(outlier, "onnx", tmp_path / "out" / "model.onnx", int8=Int8())
    assert not (tmp_path / "out").exists()
    # Allowed to fall that far, it is written, and says how far it fell.
    result = export_trained(outlier, "onnx", tmp_path / "out" / "model.onnx", int8=Int8(max_drop=1.0))
    assert result.int8 is not None and result.int8.drop > 0.5


def test_a_refusal_on_a_small_test_split_says_one_image_decides_it() -> None:
    # A photo folder's 7 test images: 1 answer of 7 changed is "33.3% worse", which read as
    # a broken quantization rather than a check too coarse to pass.
    check = Int8Check("test", "accuracy", 3 / 7, 2 / 7, True, images=7, calibration_images=55, max_drop=0.01)
    error = ExportError(refusal(check))
    message = error_message(error)  # as the command says it
    assert message.startswith("int8 accuracy on the 7 images of the test split is 0.2857 against the float model's")
    assert "33.3% worse (allowed: 1.0%, --max-drop)" in message and message.endswith("nothing written")
    assert "one image is 14.3% of 7: a larger --max-drop or a larger test split" in message
    assert "a larger max_drop or" in str(error)  # as dltool.export_model says it
    big = Int8Check("test", "accuracy", 0.9, 0.8, True, images=359, calibration_images=256, max_drop=0.01)
    assert "one image is" not in refusal(big)


def test_without_the_runs_data_an_int8_export_says_so_and_writes_nothing(cli, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        write_digit_images(folder / label, 12)
    run = Path(
        cli("train", "digits-mlp", "--dataset", folder, "--epochs", "1", "-q", "--runs-dir", tmp_path).stdout.strip()
    )
    folder.rename(tmp_path / "moved")
    error = cli("export", run, "--int8", code=1).stderr
    assert "int8 calibrates on the run's own data, which cannot be read" in error and "no such folder" in error
    assert not (run / "export").exists()


def test_a_reconstruction_int8_export_is_held_to_its_loss(cli, tmp_path: Path) -> None:
    config = load_config("digits-mlp", ["model.name=autoencoder", "loss.name=mse", "train.epochs=1"])
    run = train(config, create_run_dir(tmp_path, "ae")).run_dir
    result = export_trained(load_trained(run), "onnx", int8=Int8(calibration=64, max_drop=1.0))
    assert result.path == run / "export" / "model.int8.onnx"
    assert result.int8 is not None and result.int8.score == "loss" and not result.int8.higher_is_better
    sidecar = json.loads(sidecar_path(result.path).read_text())
    assert sidecar["quantization"]["calibration"]["images"] == 64
    # It listed the digits' classes, which nothing an autoencoder outputs refers to.
    assert "classes" not in sidecar and sidecar["postprocessing"].startswith("the reconstructed 8×8 image")
    assert json.loads(cli("eval", result.path, "--json").stdout)["n"] == 359  # still its run's model
    image = tmp_path / "digit.png"
    Image.new("L", (8, 8)).save(image)
    with pytest.raises(UsageError, match=r"\(score it with dltool\.evaluate\(run\)\)$"):  # was "dltool eval"
        dltool.predict(run, [image])
    assert "(score it with dltool eval)" in cli("predict", run, image, code=2).stderr


def test_a_lower_is_better_score_drops_when_it_rises() -> None:
    accuracy = Int8Check("test", "accuracy", 0.9, 0.855, True, 100, 256, 0.01)
    rmse = Int8Check("test", "rmse", 2.0, 2.1, False, 100, 256, 0.01)
    assert accuracy.drop == pytest.approx(0.05) and rmse.drop == pytest.approx(0.05)
    assert Int8Check("test", "rmse", 2.0, 1.9, False, 100, 256, 0.01).drop < 0


def test_bad_int8_settings_are_usage_errors(cli, run: Path) -> None:
    refused = cli("export", run, "--int8", "--to", "torchscript", code=2).stderr
    assert "only ONNX files are quantized" in refused and "calibrating" not in refused  # no notice of work not done
    assert "--calibration" in cli("export", run, "--int8", "--calibration", "0", code=2).stderr
    assert "--max-drop" in cli("export", run, "--int8", "--max-drop", "1.5", code=2).stderr
    with pytest.raises(UsageError, match="max_drop -0.1: expected a fraction from 0 to 1"):
        Int8(max_drop=-0.1)
    assert not (run / "export" / "model.int8.torchscript").exists()


def test_eval_scores_an_export_on_its_runs_data_beside_the_file(
    cli, run: Path, int8_export, float_export: Path
) -> None:
    int8_path = run / "export" / "model.int8.onnx"
    scored = json.loads(cli("eval", int8_path, "--json").stdout)
    check = json.loads(sidecar_path(int8_path).read_text())["verification"]["int8"]
    # The same test images through the same file as the export's own check, by its own runtime.
    assert scored["accuracy"] == check["int8"] and scored["n"] == check["images"] == 359
    assert scored["runtime"] == "onnxruntime" and scored["checkpoint"] == str(int8_path)
    assert json.loads((run / "export" / "model.int8.onnx.eval-test.json").read_text()) == scored
    assert dltool.evaluate(int8_path).document["accuracy"] == scored["accuracy"]  # the Python API routes it too
    ours = json.loads(cli("eval", run, "--json").stdout)
    assert json.loads(cli("eval", float_export, "--json").stdout)["accuracy"] == ours["accuracy"]
    assert json.loads((run / "eval-test.json").read_text())["checkpoint"] == ours["checkpoint"]  # not overwritten


def test_eval_of_an_export_refuses_what_only_a_run_has_and_a_lost_source(
    cli, run: Path, int8_export, tmp_path: Path
) -> None:
    int8_path = run / "export" / "model.int8.onnx"
    assert "is an exported model, not a run" in cli("eval", int8_path, "--checkpoint", "last", code=2).stderr
    assert "averages the test-time augmentation" in cli("eval", int8_path, "--tta", "flip", code=2).stderr
    moved = tmp_path / "model.int8.onnx"
    moved.write_bytes(int8_path.read_bytes())
    sidecar = json.loads(sidecar_path(int8_path).read_text()) | {"source": str(tmp_path / "gone.safetensors")}
    sidecar_path(moved).write_text(json.dumps(sidecar))
    assert "which are gone" in cli("eval", moved, code=1).stderr


def test_eval_of_an_export_in_a_moved_run_dir_finds_the_weights_beside_it(
    cli, run: Path, int8_export, tmp_path: Path
) -> None:
    copy = shutil.copytree(run, tmp_path / "laptop" / run.name)  # the runs folder copied off the server
    int8_path = copy / "export" / "model.int8.onnx"
    sidecar = json.loads(sidecar_path(int8_path).read_text())
    sidecar_path(int8_path).write_text(json.dumps(sidecar | {"source": "/server/runs/gone/model.safetensors"}))
    scored = json.loads(cli("eval", int8_path, "--json").stdout)  # was "... which are gone", exit 1
    assert scored["accuracy"] == sidecar["verification"]["int8"]["int8"] and scored["n"] == 359


def test_a_streamed_runs_int8_export_calibrates_on_a_draw_of_its_files(cli, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        write_digit_images(folder / label, 30)
    args = ("--dataset", folder, "--set", "data.loader=stream", "--set", "data.image_size=16", "--epochs", "1")
    args += ("-q", "--runs-dir", tmp_path)
    run = Path(cli("train", "digits-mlp", *args).stdout.strip())
    assert "stream" in (run / "config.yaml").read_text()
    result = cli("export", run, "--int8", "--calibration", "16", "--max-drop", "1")
    sidecar = json.loads(sidecar_path(Path(result.stdout.strip())).read_text())
    assert sidecar["quantization"]["calibration"]["images"] == 16 and sidecar["verification"]["int8"]["images"] > 0


def test_the_quantizers_notes_stay_off_the_users_screen(tmp_path: Path, caplog) -> None:
    """onnxruntime logs a warning for each 1-d weight it cannot quantize per channel
    (cifar10-fast's batch norms): the quantized file says what matters."""
    config = load_config("cifar10-fast", ["data.mean=[0.5,0.5,0.5]", "data.std=[0.25,0.25,0.25]"])
    shape = (3, 32, 32)
    network = build_model(config.model, in_shape=shape, num_classes=10).eval()
    trained = Trained(network, config, [str(c) for c in range(10)], shape, tmp_path / "m.safetensors", None)
    float_onnx = export_trained(trained, "onnx", tmp_path / "fast.onnx").path.read_bytes()
    batch = np.random.default_rng(0).standard_normal((4, *shape), np.float32)
    with caplog.at_level(logging.INFO):
        quantize(float_onnx, [batch])
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
