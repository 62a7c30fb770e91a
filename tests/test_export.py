"""`dltool export`: every model as ONNX and TorchScript, reloaded by its own runtime, equal
to the PyTorch model at any batch size; `dltool predict` on the file gives the run's rows."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import onnx
import onnxruntime
import pytest
import torch

from conftest import Cli, write_digit_images
from dltool.config import validate_config
from dltool.data.normalise import Normalise
from dltool.errors import ExportError
from dltool.evaluation.trained import Trained
from dltool.export import sidecar_path
from dltool.export.export import export_trained
from dltool.models import models
from dltool.models.build import build_model

IN_SHAPE = (3, 12, 10)  # not square: height and width must not swap
CLASSES = ["cat", "dog", "emu"]
# Small versions of the models; an entry not listed here is exported at its defaults.
TINY = {
    "mlp": {"width": 16},
    "cnn": {"widths": [4, 8], "convs_per_stage": 1},
    "resnet": {"depth": 8},
    "autoencoder": {"latent_dim": 5, "widths": [4, 8]},
    "encoder-classifier": {"hidden": 8},
    # A zoo family is exported through one architecture of it.
    "torchvision:ARCH": {"name": "torchvision:resnet18"},
    "unet": {"depth": 2, "width": 4},
    "timm:ARCH": {"name": "timm:resnet18"},
}
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript"}


# torchvision's segmentation networks through the lightest of them (the others share its code).
EXPORTED = [
    e
    for e in models
    if not e.name.startswith("torchvision:") or e.name in ("torchvision:ARCH", "torchvision:lraspp_mobilenet_v3_large")
]


def _trained(entry, required_params, tmp_path: Path) -> Trained:
    section = {"name": entry.name, **TINY.get(entry.name, {}), **required_params(entry, IN_SHAPE)}
    loss = "mse" if entry.params.task == "reconstruction" else "cross_entropy"
    config = validate_config(
        {"model": section, "loss": {"name": loss}, "data": {"mean": [0.2, 0.5, 0.7], "std": [0.3, 0.25, 0.2]}}
    )
    torch.manual_seed(0)
    model = build_model(config.model, in_shape=IN_SHAPE, num_classes=len(CLASSES))
    for name, buffer in model.named_buffers():  # BN statistics away from their defaults, so they count
        if name.endswith("running_mean"):
            buffer.uniform_(-0.2, 0.2)  # small: ReLUs after BN stay alive and outputs vary by input
        elif buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    return Trained(model.eval(), config, CLASSES, IN_SHAPE, tmp_path / "model.safetensors", None)


def _pixels(batch: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (batch, *IN_SHAPE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _images(batch: int, seed: int) -> torch.Tensor:
    return Normalise([0.2, 0.5, 0.7], [0.3, 0.25, 0.2], torch.device("cpu"))(_pixels(batch, seed))


def _reloaded(path: Path, format_name: str):
    """The file run by its own runtime, without dltool's loader."""
    if format_name == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    return torch.jit.load(str(path))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("format_name", ["onnx", "torchscript"])
@pytest.mark.parametrize("entry", EXPORTED, ids=lambda e: e.name)
def test_every_model_exports_and_reloads_with_a_dynamic_batch(
    entry, format_name: str, required_params, tmp_path: Path
) -> None:
    trained = _trained(entry, required_params, tmp_path)
    path = tmp_path / f"model{SUFFIXES[format_name]}"
    result = export_trained(trained, format_name, path)
    assert result.path == path and result.max_abs_diff <= 1e-4
    forward = _reloaded(path, format_name)
    with torch.inference_mode():
        for batch in (1, 3, 64):
            images = _images(batch, seed=batch)
            expected, got = trained.model(images), forward(images)
            assert got.shape == expected.shape
            assert (got - expected).abs().max().item() <= 1e-4
            if batch > 1:  # the outputs depend on the input: the comparison means something
                assert expected.std(0).max().item() > 1e-3
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar["format"] == format_name and sidecar["model"] == trained.config.model.name
    assert sidecar["task"] == entry.params.task
    assert sidecar.get("classes") == (CLASSES if entry.params.task != "reconstruction" else None)  # names no output
    assert (sidecar["channels"], *sidecar["image_size"]) == IN_SHAPE
    assert sidecar["mean"] == [0.2, 0.5, 0.7] and sidecar["std"] == [0.3, 0.25, 0.2]
    assert sidecar["verification"]["max_abs_diff"] == result.max_abs_diff
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [path.name, path.name + ".json"]


@pytest.fixture(scope="module")
def run(digits_run: Path) -> Path:
    return digits_run


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dozen digits of other sizes and modes than training's 8×8 grey."""
    return write_digit_images(tmp_path_factory.mktemp("imgs"), 12)


@pytest.fixture(scope="module")
def onnx_export(run: Path):
    """``dltool export RUN`` (the default: ONNX into RUN/export), run once for the module."""
    return Cli()("export", run)


def _rows(stdout: str) -> list[dict]:
    return list(csv.DictReader(stdout.splitlines()))


@pytest.mark.parametrize("format_name", ["onnx", "torchscript"])
def test_predict_on_the_exported_file_gives_the_runs_rows(
    cli, run: Path, images: Path, onnx_export, format_name: str
) -> None:
    output = run / "export" / f"model{SUFFIXES[format_name]}"
    result = onnx_export if format_name == "onnx" else cli("export", run, "--to", format_name)
    assert result.stdout == f"{output}\n"  # the written file and nothing else
    assert "verified with" in result.stderr and "max abs diff" in result.stderr
    assert "warn" not in result.stderr.lower()
    expected = _rows(cli("predict", run, images, "--format", "csv").stdout)
    rows = _rows(cli("predict", output, images, "--format", "csv").stdout)
    assert len(rows) == len(expected) == 12
    assert list(rows[0]) == list(expected[0])  # the same columns, in the same order
    for row, want in zip(rows, expected):
        assert [row["path"], row["label"], row["top2_label"]] == [want["path"], want["label"], want["top2_label"]]
        assert abs(float(row["score"]) - float(want["score"])) <= 1e-4


def test_an_existing_export_is_replaced_only_with_force(cli, run: Path, tmp_path: Path) -> None:
    path = tmp_path / "digits.torchscript"
    cli("export", run, "--format", "torchscript", "--output", path)  # 0.1.0's spelling of --to still works
    first = sidecar_path(path).read_text()
    again = cli("export", run, "--format", "torchscript", "--output", path, code=2).stderr
    # It said "(and is not a dltool export output)" of the export it had written itself.
    assert again.startswith(f"error: {path} already exists; pass --force") and "is not a" not in again
    assert sidecar_path(path).read_text() == first
    cli("export", run, "--format", "torchscript", "--output", path, "--force")


# A Ctrl-C while torch's exporter traces the model, as it lands inside one of the exporter's
# imports: the module is left half-made and its next use fails, wrapped in the exporter's error.
CTRL_C_IN_THE_EXPORTER = """
import os, signal, sys, time
import torch
from dltool.cli import main
export, sent = torch.onnx.export, []
def ctrl_c(*_):
    if not sent:
        sent.append(True)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)
        finally:
            raise AttributeError("partially initialized module 'torch._dynamo' has no attribute 'exc'")
def exporting(model, *args, **kwargs):
    [m for m in model.modules() if not list(m.children())][-1].register_forward_hook(ctrl_c)
    return export(model, *args, **kwargs)
torch.onnx.export = exporting
sys.argv = ["dltool", *sys.argv[1:]]
main()
"""


def test_ctrl_c_inside_torchs_onnx_exporter_stops_the_export(run: Path, tmp_path: Path) -> None:
    """The exporter caught it: it tried another way and wrote the file (exit 0), or, when every
    way failed, the run ended "torch's ONNX exporter failed" (exit 1)."""
    import os
    import subprocess

    import dltool

    env = {**os.environ, "PYTHONPATH": str(Path(dltool.__file__).parents[1])}  # this source, from any folder
    output = tmp_path / "exports" / "model.onnx"
    output.parent.mkdir()
    command = [sys.executable, "-c", CTRL_C_IN_THE_EXPORTER, "export", run, "--output", output]
    stopped = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env, timeout=240)
    assert stopped.returncode == 130, stopped.stderr
    assert "exporter failed" not in stopped.stderr and list(output.parent.iterdir()) == []


def test_opset_is_written_as_asked_and_checked(cli, run: Path, tmp_path: Path) -> None:
    path = tmp_path / "digits.onnx"
    cli("export", run, "--opset", "18", "--output", path)
    assert {o.domain: o.version for o in onnx.load(path).opset_import}[""] == 18
    assert json.loads(sidecar_path(path).read_text())["opset"] == 18
    assert "opsets 18 to" in cli("export", run, "--opset", "13", "--output", tmp_path / "old.onnx", code=2).stderr
    assert "only ONNX" in cli("export", run, "--format", "torchscript", "--opset", "18", code=2).stderr
    assert "expected one of: onnx, torchscript" in cli("export", run, "--format", "tflite", code=2).stderr
    assert not (tmp_path / "old.onnx").exists()


class Drifting(torch.nn.Module):
    """A model whose output moves with every call: a traced file keeps the count it was traced
    with, so it cannot reproduce the model."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.calls = torch.nn.Linear(8 * 8, 10), 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(images.flatten(1)) + self.calls


@pytest.mark.parametrize("format_name", ["onnx", "torchscript"])
def test_a_failed_verification_writes_nothing(format_name: str, tmp_path: Path) -> None:
    config = validate_config({"data": {"mean": [0.5], "std": [0.25]}})
    trained = Trained(Drifting(), config, list("0123456789"), (1, 8, 8), tmp_path / "model.safetensors", None)
    runtime = "onnxruntime" if format_name == "onnx" else "torch.jit"
    with pytest.raises(ExportError, match=rf"{runtime}'s outputs differ from PyTorch's by up to .*nothing written"):
        export_trained(trained, format_name, tmp_path / "out" / f"model{SUFFIXES[format_name]}")
    assert not (tmp_path / "out").exists()


class LargeOutputs(Drifting):
    """Outputs near 100,000 (a regression's weights in grams) that drift by float32's last
    digits of them at every call: the export, traced once, differs by those digits."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return super().forward(images) * 0.1 + 1e5


@pytest.mark.parametrize("format_name", ["onnx", "torchscript"])
def test_outputs_far_beyond_one_are_verified_to_their_own_precision(format_name: str, tmp_path: Path) -> None:
    # A difference of 1e-4 is below float32's resolution at 100,000 (0.008): exporting a
    # regression on such targets failed every time; the tolerance now grows with the outputs.
    config = validate_config({"data": {"mean": [0.5], "std": [0.25]}})
    trained = Trained(LargeOutputs(), config, list("0123456789"), (1, 8, 8), tmp_path / "model.safetensors", None)
    result = export_trained(trained, format_name, tmp_path / f"model{SUFFIXES[format_name]}")
    assert 0.01 < result.max_abs_diff <= result.tolerance == pytest.approx(1e-4 * 1e5, rel=1e-3)
    assert json.loads(result.sidecar.read_text())["verification"]["tolerance"] == result.tolerance


def test_a_file_without_its_own_sidecar_is_refused(cli, onnx_export, images: Path, tmp_path: Path) -> None:
    exported = Path(onnx_export.stdout.strip())
    path = tmp_path / "digits.onnx"
    path.write_bytes(exported.read_bytes())
    (tmp_path / "alone.onnx").write_bytes(path.read_bytes())
    assert "no sidecar alone.onnx.json" in cli("predict", tmp_path / "alone.onnx", images, code=1).stderr
    sidecar_path(path).write_text(sidecar_path(exported).read_text())
    path.write_bytes(path.read_bytes() + b"\0")  # the model changed behind its sidecar's back
    assert "describes another file" in cli("predict", path, images, code=1).stderr


def test_a_reconstruction_export_is_not_labelled(cli, required_params, images: Path, tmp_path: Path) -> None:
    trained = _trained(models.get("autoencoder"), required_params, tmp_path)
    path = export_trained(trained, "torchscript", tmp_path / "ae.torchscript").path
    assert "reconstructs" in cli("predict", path, images, code=2).stderr


def test_without_onnxruntime_the_error_says_what_to_install(
    cli, run: Path, onnx_export, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(onnx_export.stdout.strip())
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an install without the extra has
    assert "onnxruntime is not installed; pip install 'dltool[onnx]'" in cli("predict", path, images, code=2).stderr
    assert "pip install 'dltool[onnx]'" in cli("export", run, "--output", tmp_path / "again.onnx", code=2).stderr


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("format_name", ["onnx", "torchscript"])
def test_a_flip_tta_model_exports_as_it_is_scored(format_name: str, required_params, tmp_path: Path) -> None:
    from dataclasses import replace

    trained = replace(_trained(models.get("cnn"), required_params, tmp_path), tta="flip")
    result = export_trained(trained, format_name, tmp_path / f"model{SUFFIXES[format_name]}")
    assert json.loads(sidecar_path(result.path).read_text())["tta"] == "flip"
    images = _images(4, seed=3)
    with torch.no_grad():
        scored, plain = torch.from_numpy(trained.forward(_pixels(4, seed=3).numpy())), trained.model(images)
        got = _reloaded(result.path, format_name)(images)
    assert (scored - plain).abs().max() > 1e-3  # the mirror does change the logits here
    assert torch.allclose(got, scored, atol=1e-4)


def test_a_trained_model_normalises_on_its_own_device_to_the_numpy_bits(required_params, tmp_path: Path) -> None:
    """Trained.forward takes uint8 and normalises with torch where the model runs (a GPU is
    sent bytes); on a CPU that gives the bits NumPy's normalise gave, so rows do not change."""
    import numpy as np

    from dltool.data.normalise import normalise

    trained = _trained(models.get("cnn"), required_params, tmp_path)
    pixels = _pixels(5, seed=4).numpy()
    in_numpy = normalise(pixels, trained.mean, trained.std)
    assert trained.normalise.scale.device == trained.device
    assert torch.equal(trained.normalise(torch.from_numpy(pixels)), torch.from_numpy(in_numpy))
    with torch.inference_mode():
        before = trained.scorer(torch.from_numpy(in_numpy).contiguous(memory_format=torch.channels_last)).numpy()
    assert np.array_equal(trained.forward(pixels), before)
