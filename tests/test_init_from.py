"""--init-from RUN|FILE, and the encoder-classifier built on it: the source is read once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import make_autoencoder_run
from dltool.config import load_config, validate_config
from dltool.engine.init_from import load_init_weights, resolve_init_source
from dltool.errors import CheckpointError, ConfigError
from dltool.models.build import build_model

CNN = ["--model", "cnn", "--set", "model.widths=[8,16]", "--set", "model.convs_per_stage=1", "--set", "model.dropout=0"]


def _train(cli, *args: str) -> tuple[Path, str]:
    result = cli("train", "digits-cnn", *CNN, "--epochs", "1", *args)
    return Path(result.stdout.strip()), result.stderr


def test_init_from_a_run_copies_what_matches_and_makes_a_new_head(cli) -> None:
    source, _ = _train(cli, "--name", "source", "-q")
    run, log = _train(cli, "--init-from", "runs/source", "--set", "data.classes=[0,1,2]", "--set",
                      "model.freeze=backbone")  # fmt: skip
    assert f"init-from {source.resolve()}: loaded 12 of 14 tensors; new: 6.weight, 6.bias" in log
    config = load_config(str(run))
    assert config.model.init_from == str(source.resolve())  # recorded: RUN/config.yaml reproduces it
    before, after = load_file(source / "model.safetensors"), load_file(run / "model.safetensors")
    assert after["6.weight"].shape == (3, 16) and before["6.weight"].shape == (10, 16)
    assert all(torch.equal(before[k], after[k]) for k in after if not k.startswith("6."))  # frozen, loaded
    shutil.rmtree(source)  # --resume reads the checkpoint, never the source
    cli("train", "--resume", run, "--epochs", "2", "-q")
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 2


def test_init_from_a_pth_file_goes_through_the_safe_loader(cli, tmp_path: Path) -> None:
    source, _ = _train(cli, "--name", "source", "-q")
    torch.save({"state_dict": load_file(source / "model.safetensors")}, tmp_path / "weights.pth")
    _, log = _train(cli, "--init-from", tmp_path / "weights.pth")
    assert f"init-from {tmp_path / 'weights.pth'}: loaded 14 of 14 tensors; new: none" in log
    torch.save({"model": {"0.0.weight": torch.zeros(1)}, "code": Path("x")}, tmp_path / "pickled.pth")
    result = cli("train", "digits-cnn", *CNN, "--init-from", tmp_path / "pickled.pth", code=1)
    assert "not a readable weights file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.filterwarnings("ignore:.*torch.jit.script. is deprecated:FutureWarning")
def test_a_file_that_is_no_state_dict_is_one_line_naming_it_never_an_internal_error(cli, tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"hello\n")  # the unpickler fails with KeyError: 101
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "scripted.pth"))
    for name, fault in [("junk.pth", "corrupt, or not a PyTorch file"), ("scripted.pth", "a TorchScript archive")]:
        for args in (
            ("--init-from", tmp_path / name),
            ("--model", "timm:resnet18", "--set", f"model.pretrained={tmp_path / name}"),
        ):
            line = cli("train", "digits-cnn", *args, "--dry-run", code=1).stderr.strip()
            assert f"{tmp_path / name}: not a readable weights file ({fault}" in line, line
            assert "\n" not in line and "weights_only" not in line


def test_weights_that_match_nothing_are_an_error_not_a_no_op(cli, tmp_path: Path) -> None:
    save_file({"backbone.conv.weight": torch.zeros(3, 3)}, tmp_path / "other.safetensors")
    result = cli("train", "digits-cnn", *CNN, "--init-from", tmp_path / "other.safetensors", code=1)
    line = result.stderr.strip()
    assert "none of its 1 tensors matches the model by name and shape" in line and "\n" not in line
    missing = cli("train", "digits-cnn", "--init-from", "nowhere", code=2).stderr  # a usage error: exit 2, not 1
    assert f"model.init_from {tmp_path / 'nowhere'}: no such run dir or weights file" in missing
    (tmp_path / "eval-test.json").write_text("{}")  # a file, but no weights: "Unsupported operand 123"
    (tmp_path / "model.onnx").write_bytes(b"\x08\x08\x12\x07pytorch")  # an ONNX protobuf's first bytes
    not_weights = cli("train", "digits-cnn", "--init-from", tmp_path / "eval-test.json", code=1).stderr
    assert f"{tmp_path / 'eval-test.json'}: not a readable weights file (corrupt, or not a PyTorch file)" in not_weights
    onnx = cli("train", "digits-cnn", "--init-from", tmp_path / "model.onnx", code=1).stderr
    assert "model.onnx: not a readable weights file (an ONNX model, as dltool export writes, not a state dict)" in onnx


# --- encoder-classifier ---------------------------------------------------------------


def _start(run: Path, in_shape=(1, 8, 8)) -> None:
    """What a new encoder-classifier run does with its encoder_run when training starts."""
    params = validate_config({"model": {"name": "encoder-classifier", "encoder_run": str(run)}}).model
    params, source = resolve_init_source(params)
    model = build_model(params, in_shape=in_shape, num_classes=10)
    load_init_weights(model, source, params.must_load)


def _mlp_run(path: Path) -> None:
    make_autoencoder_run(path, (1, 8, 8), model={"name": "mlp", "depth": 1, "width": 8})


def _no_weights(path: Path) -> None:
    make_autoencoder_run(path, (1, 8, 8))
    (path / "model.safetensors").unlink()


def _corrupt_weights(path: Path) -> None:
    make_autoencoder_run(path, (1, 8, 8))
    (path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")


def _weights_of_other_widths(path: Path) -> None:
    make_autoencoder_run(path, (1, 8, 8), model={"name": "autoencoder", "widths": [2]}, metadata_shape=False)
    make_autoencoder_run(path / "other", (1, 8, 8))
    (path / "config.yaml").write_bytes((path / "other" / "config.yaml").read_bytes())


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda p: None, ConfigError, "no such run dir or weights file"),
        (_mlp_run, ConfigError, "is a mlp run .*expected an autoencoder run"),
        (lambda p: make_autoencoder_run(p, (3, 32, 32)), ConfigError, "no tensor of the right shape for encoder"),
        (_no_weights, CheckpointError, "has no model.safetensors"),
        (_corrupt_weights, CheckpointError, "not readable safetensors weights"),
        (_weights_of_other_widths, ConfigError, "no tensor of the right shape for encoder"),
    ],
    ids=["missing", "not-an-autoencoder", "other-shape", "no-weights", "corrupt", "mismatched"],
)
def test_a_wrong_encoder_run_is_one_clear_error(tmp_path: Path, make, error, message: str) -> None:
    make(tmp_path / "run")
    with pytest.raises(error, match=message) as raised:
        _start(tmp_path / "run")
    assert "\n" not in str(raised.value)


def test_an_encoder_classifier_run_outlives_its_encoder_run(cli, tmp_path: Path) -> None:
    encoder_run = cli(
        "train", "digits-mlp", "--model", "autoencoder", "--set", "loss.name=mse", "--set", "model.widths=[4,8]",
        "--set", "model.latent_dim=6", "--epochs", "1", "--name", "ae", "-q",
    ).stdout.strip()  # fmt: skip
    run = cli(
        "train", "digits-mlp", "--model", "encoder-classifier", "--set", f"model.encoder_run={encoder_run}",
        "--set", "model.dropout=0", "--epochs", "1", "--name", "classifier", "-q",
    ).stdout.strip()  # fmt: skip
    shutil.rmtree(encoder_run)
    evaluation = json.loads(cli("eval", run, "--json").stdout)
    assert evaluation["n"] > 0 and 0 <= evaluation["accuracy"] <= 1
    image = tmp_path / "digit.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(image)
    rows = cli("predict", run, image, "--format", "jsonl").stdout.splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["label"] in [str(d) for d in range(10)]
    exported = cli("export", run, "--format", "torchscript").stdout.strip()
    assert Path(exported).is_file()
    cli("train", "--resume", run, "--epochs", "2", "-q")
    assert json.loads((Path(run) / "summary.json").read_text())["epochs_run"] == 2


def test_a_low_first_loss_from_weights_that_learned_the_classes_is_no_warning() -> None:
    # A run started from another on the same classes begins well below ln(classes): the
    # pre-flight warned to check the labels and the normalisation.
    import dltool.tasks as tasks

    classification, classes = tasks.get("classification"), [str(i) for i in range(10)]
    assert classification.preflight(0.3, classes).startswith("warning: pre-flight: initial loss 0.300 is far")
    informed = classification.preflight(0.3, classes, "runs/source")
    assert (
        informed
        == "pre-flight: initial loss 0.300, below ln(10) = 2.303: the weights from runs/source already tell these classes apart"
    )
    assert classification.preflight(9.0, classes, "runs/source").startswith("warning:")  # too high is still suspect
