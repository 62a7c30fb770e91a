"""Fine-tuning: model.freeze, train.unfreeze_epoch, optimizer.backbone_lr_scale, --init-from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import StopAfter, metrics_without_times
from dltool.config import load_config, validate_config
from dltool.engine import resume, train
from dltool.engine.checkpoint import load_checkpoint
from dltool.errors import ConfigError
from dltool.models import models
from dltool.models.build import build_model
from dltool.models.freezing import find_head, freeze, unfreeze
from dltool.rundir import create_run_dir, open_run_dir

CNN = ["model.name=cnn", "model.widths=[8,16]", "model.convs_per_stage=1", "train.batch_size=64"]


def _cnn_config(*sets: str):
    return load_config("digits-cnn", [*CNN, *sets])


def _weights_file(path: Path, num_classes: int = 10) -> Path:
    """A digits CNN's weights with BN statistics unlike a fresh model's, as a safetensors file."""
    torch.manual_seed(5)
    model = build_model(_cnn_config().model, in_shape=(1, 8, 8), num_classes=num_classes)
    for buffer in model.buffers():
        if buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


# --- freezing ------------------------------------------------------------------------


def test_a_frozen_backbone_is_bit_for_bit_the_loaded_one_and_the_head_trains(cli, tmp_path: Path) -> None:
    start = _weights_file(tmp_path / "start.safetensors")
    run = cli(
        "train", "digits-cnn", *[a for s in CNN for a in ("--set", s)],
        "--set", "model.freeze=backbone", "--init-from", start, "--epochs", "2", "-q",
    ).stdout.strip()  # fmt: skip
    before, after = load_file(start), load_file(Path(run) / "model.safetensors")
    head = find_head(build_model(load_config(run).model, in_shape=(1, 8, 8), num_classes=10))
    assert f"{head}.weight" in before and f"{head}.bias" in before
    backbone = [k for k in before if not k.startswith(head + ".")]
    assert any("running_mean" in k for k in backbone)
    assert all(torch.equal(before[k], after[k]) for k in backbone)
    assert not torch.equal(before[f"{head}.weight"], after[f"{head}.weight"])


def test_frozen_norm_layers_stay_in_eval_mode_until_unfrozen() -> None:
    params = validate_config({"model": {"name": "cnn", "widths": [4], "convs_per_stage": 1}}).model
    model = build_model(params, in_shape=(1, 8, 8), num_classes=3)
    frozen = freeze(model, "backbone")
    norm = model[0][1]
    model.train()
    assert not norm.training and model.training and not norm.weight.requires_grad
    assert model[-1].weight.requires_grad
    unfreeze(model, frozen)
    assert norm.training and norm.weight.requires_grad
    model.eval()
    assert not norm.training


def test_freeze_globs_fix_what_they_match_and_a_glob_matching_nothing_is_a_usage_error(cli) -> None:
    params = validate_config({"model": {"name": "mlp", "depth": 1, "width": 8}}).model
    model = build_model(params, in_shape=(1, 8, 8), num_classes=3)
    freeze(model, ["1.*"])
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["1.weight", "1.bias"]
    with pytest.raises(ConfigError, match=r"model.freeze: 'encoder\.\*' matches no parameter"):
        freeze(model, ["1.*", "encoder.*"])
    result = cli("train", "digits-mlp", "--set", "model.freeze=[blocks.*]", "--epochs", "1", code=2)
    assert "model.freeze: 'blocks.*' matches no parameter" in result.stderr


def test_globs_freezing_every_parameter_are_a_usage_error_before_a_run_dir_is_made(cli) -> None:
    result = cli("train", "digits-mlp", "--set", "model.freeze=['*']", "--epochs", "1", code=2)
    assert "model.freeze: ['*'] fixes every parameter of the model, so nothing would train" in result.stderr
    assert not list(Path("runs").glob("*/config.yaml"))  # the run dir was removed


def test_a_model_without_a_head_cannot_freeze_its_backbone() -> None:
    params = validate_config({"model": {"name": "autoencoder"}, "loss": {"name": "mse"}}).model
    with pytest.raises(ConfigError, match="has no classifier head"):
        freeze(build_model(params, in_shape=(1, 8, 8), num_classes=0), "backbone")
    with pytest.raises(ConfigError, match="train.unfreeze_epoch: 1 unfreezes what model.freeze fixes"):
        validate_config({"train": {"unfreeze_epoch": 1}})


def test_every_classifier_of_the_registry_names_its_head(required_params) -> None:
    for entry in models:
        if entry.params.task != "classification":
            continue
        # A zoo family through one architecture of it (tests/test_zoo.py checks eight).
        name = entry.name.replace(":ARCH", ":resnet18") if entry.family else entry.name
        params = entry.params(name=name, **required_params(entry, (3, 16, 16)))
        model = build_model(params, in_shape=(3, 16, 16), num_classes=7)
        head = model.get_submodule(find_head(model))
        assert any(p.shape[0] == 7 for p in head.parameters()), entry.name  # it makes the class scores


# --- unfreeze_epoch and backbone_lr_scale ---------------------------------------------


def _groups(run: Path) -> list[dict]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["optimizer"]["param_groups"]


def _stepped(run: Path) -> set[int]:
    """Indices of the parameters the optimizer has moved (Adam keeps state only for those)."""
    return set(load_checkpoint(run / "checkpoints" / "last.pt")["optimizer"]["state"])


def test_unfreeze_epoch_and_backbone_lr_scale_per_epoch(tmp_path: Path) -> None:
    sets = ["model.freeze=backbone", "train.unfreeze_epoch=1", "optimizer.backbone_lr_scale=0.1"]
    sets += ["optimizer.name=adam", "optimizer.lr=0.01", "optimizer.decay_norm_and_bias=true"]
    sets += ["scheduler.name=exponential", "scheduler.gamma=0.5", "scheduler.warmup_epochs=1"]
    config = _cnn_config(*sets, "train.epochs=1")
    run = create_run_dir(tmp_path, "ft")
    train(config, run, stop=StopAfter(5))  # mid-warmup: both groups on their way up
    head, backbone = _groups(run.path)
    assert 0 < head["lr"] < 0.005 and backbone["lr"] == pytest.approx(0.1 * head["lr"])
    resume(open_run_dir(run.path))
    head, backbone = _groups(run.path)
    assert len(head["params"]) == 2 and len(backbone["params"]) == 6  # linear w, b; 2 × (conv w, BN w, b)
    assert backbone["lr"] == pytest.approx(0.1 * head["lr"]) and head["initial_lr"] == 0.01
    assert _stepped(run.path) == set(head["params"])  # epoch 1: the backbone is frozen
    lrs = [head["lr"]]
    for epochs in (2, 3):
        resume(open_run_dir(run.path), overrides={"train.epochs": epochs})
        head, backbone = _groups(run.path)
        assert backbone["lr"] == pytest.approx(0.1 * head["lr"])  # the schedule moves both groups
        assert backbone["initial_lr"] == pytest.approx(0.001)
        assert _stepped(run.path) == set(head["params"]) | set(backbone["params"])  # from epoch 2 all train
        lrs.append(head["lr"])
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == pytest.approx(lrs)
    assert lrs == pytest.approx([0.005, 0.0025, 0.00125])  # warmed up to 0.01, then halved each epoch


def test_resume_across_the_unfreeze_epoch_is_bitwise_identical(tmp_path: Path) -> None:
    config = _cnn_config("model.freeze=backbone", "train.unfreeze_epoch=1", "train.epochs=3")
    config = config.model_copy(update={"train": config.train.model_copy(update={"batch_size": 32})})
    reference = train(config, create_run_dir(tmp_path, "ref"))
    run = create_run_dir(tmp_path, "cut")
    interrupted = train(config, run, stop=StopAfter(30))  # 46 batches per epoch: stops in epoch 1
    assert interrupted.status == "interrupted" and interrupted.summary["epochs_run"] == 0
    cut_again = resume(open_run_dir(run.path), stop=StopAfter(40))  # stops in epoch 2, after the unfreeze
    assert cut_again.summary["epochs_run"] == 1
    assert resume(open_run_dir(run.path)).status == "completed"
    assert (run.path / "model.safetensors").read_bytes() == (reference.run_dir / "model.safetensors").read_bytes()
    assert metrics_without_times(run.path) == metrics_without_times(reference.run_dir)


def test_the_log_counts_trainable_parameters(cli) -> None:
    result = cli("train", "digits-cnn", *[a for s in CNN for a in ("--set", s)], "--set", "model.freeze=backbone",
                 "--set", "train.unfreeze_epoch=1", "--epochs", "2")  # fmt: skip
    # the head: 16·10 + 10; convs 1·8·9 + 8·16·9 and BN scales and shifts 2·(8 + 16) besides
    assert "parameters: 170 trainable of 1,442 (model.freeze: backbone)" in result.stderr
    assert "epoch 2: unfrozen (train.unfreeze_epoch 1): 1,442 of 1,442 parameters train" in result.stderr


def test_encoder_classifier_configs_with_freeze_true_or_false_still_validate() -> None:
    for old, new in [(True, "backbone"), (False, "none")]:
        config = validate_config({"model": {"name": "encoder-classifier", "freeze": old}})
        assert config.model.freeze == new
    assert validate_config({"model": {"name": "encoder-classifier"}}).model.freeze == "backbone"
    assert validate_config({"model": {"name": "mlp"}}).model.freeze == "none"
