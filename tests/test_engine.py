"""Training features: exact resume with everything on, budgets, limits and sanity checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import StopAfter, metrics_without_times
from dltool.config import load_config
from dltool.engine import resume, train
from dltool.engine.checkpoint import load_checkpoint
from dltool.engine.observer import Observer
from dltool.optim import AdamParams, build_optimizer, optimizers
from dltool.optim.groups import parameter_groups
from dltool.rundir import create_run_dir, open_run_dir
from pointdata import age_and_weight_folder

FEATURES = [
    "train.epochs=6",
    "train.batch_size=32",
    "train.ema_decay=0.9",
    "train.accumulate=2",
    "train.grad_clip=0.5",
    "scheduler.name=plateau",
    "scheduler.patience=0",
    "scheduler.warmup_epochs=1",
    "train.early_stopping.patience=3",
    "train.monitor.metric=val_acc",
    "optimizer.name=adamw",
    "optimizer.decay_norm_and_bias=false",
]


def test_resume_is_bitwise_with_ema_accumulation_clipping_plateau_and_early_stopping(tmp_path: Path) -> None:
    config = load_config("digits-mlp", FEATURES)
    reference = train(config, create_run_dir(tmp_path, "ref"))
    run = create_run_dir(tmp_path, "cut")
    assert train(config, run, stop=StopAfter(31)).status == "interrupted"  # 20 steps an epoch: mid epoch 2
    finished = resume(open_run_dir(run.path))
    assert finished.status == reference.status
    assert (run.path / "model.safetensors").read_bytes() == (reference.run_dir / "model.safetensors").read_bytes()
    assert metrics_without_times(run.path) == metrics_without_times(reference.run_dir)
    state = load_checkpoint(run.path / "checkpoints" / "last.pt")
    assert state["ema"] is not None and state["scheduler"]["factor"] is not None


def test_accumulation_counts_optimizer_steps(tmp_path: Path) -> None:
    config = load_config("digits-mlp", ["train.epochs=1", "train.batch_size=32", "train.accumulate=4"])
    result = train(config, create_run_dir(tmp_path, "acc"))
    assert result.summary["final"]["step"] == 10  # 40 batches / 4


def test_time_budget_ends_the_run_after_the_current_step(tmp_path: Path) -> None:
    config = load_config("digits-mlp", ["train.epochs=500", "train.batch_size=8", "train.max_time=1.5s"])
    result = train(config, create_run_dir(tmp_path, "budget"))
    assert result.status == "completed" and result.summary["stop_reason"] == "max_time"
    assert 1 <= result.summary["epochs_run"] < 500 and result.summary["test"]["accuracy"] > 0


def test_limit_batches_caps_every_phase(tmp_path: Path) -> None:
    config = load_config("digits-mlp", ["train.epochs=2", "train.limit_batches=3"])
    result = train(config, create_run_dir(tmp_path, "limit"))
    assert result.summary["final"]["step"] == 6
    assert result.summary["test"]["n"] == 3 * 64


def test_no_decay_group_holds_biases_and_norm_scales() -> None:
    config = load_config("digits-mlp", ["optimizer.name=adamw", "optimizer.decay_norm_and_bias=false"])
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    groups = parameter_groups(model, config.optimizer)
    assert [len(g["params"]) for g in groups] == [1, 3] and groups[1]["weight_decay"] == 0.0
    optimizer = optimizers.build(config.optimizer, params=groups)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]


@pytest.mark.parametrize(("name", "fused"), [("sgd", True), ("adam", True), ("adamw", True), ("rmsprop", None)])
def test_the_optimizer_takes_torchs_fused_step_where_there_is_one(name: str, fused: bool | None) -> None:
    config = load_config("digits-mlp", [f"optimizer.name={name}"])
    model = torch.nn.Linear(4, 3)
    assert build_optimizer(config.optimizer, model.parameters(), "cpu").defaults.get("fused") is fused
    assert build_optimizer(config.optimizer, model.parameters(), "xla").defaults.get("fused") is None


def test_a_checkpoint_from_before_fused_steps_resumes_with_the_step_it_began_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run begun by a dltool that did not fuse keeps its per-tensor step when resumed (the
    optimizer state's param groups say which), so it still ends bit-identical to its start."""
    config = load_config("digits-mlp", ["train.epochs=2", "train.batch_size=32"])
    with monkeypatch.context() as before:
        before.setattr(AdamParams, "fused_on", frozenset())
        reference = train(config, create_run_dir(tmp_path, "ref"))
        run = create_run_dir(tmp_path, "cut")
        assert train(config, run, stop=StopAfter(30)).status == "interrupted"  # 20 steps an epoch
    assert load_checkpoint(run.path / "checkpoints" / "last.pt")["optimizer"]["param_groups"][0]["fused"] is None
    resume(open_run_dir(run.path))
    assert (run.path / "model.safetensors").read_bytes() == (reference.run_dir / "model.safetensors").read_bytes()
    fused = train(config, create_run_dir(tmp_path, "now"))  # the fused step rounds differently
    assert (fused.run_dir / "model.safetensors").read_bytes() != (reference.run_dir / "model.safetensors").read_bytes()
    assert load_checkpoint(fused.run_dir / "checkpoints" / "last.pt")["optimizer"]["param_groups"][0]["fused"] is True


def test_overfit_one_batch_reaches_near_zero_loss(cli) -> None:
    result = cli("train", "digits-mlp", "--overfit-batches", "1", "--json")
    document = json.loads(result.stdout)
    assert document["reached"] and document["final_loss"] < 0.01 and document["batches"] == 1
    assert "passed" in result.stderr


def test_overfit_runs_with_mixup_and_cutmix_in_the_config(cli) -> None:
    # Mixed batches carry soft targets: scoring them as labels was an internal error.
    mixing = ("--set", "data.augment.mixup=0.2", "--set", "data.augment.cutmix=1.0")
    result = cli("train", "digits-mlp", "--overfit-batches", "1", "--json", *mixing)
    document = json.loads(result.stdout)
    assert document["reached"] and document["batches"] == 1


def test_overfit_of_a_regression_on_large_targets_is_measured_in_their_standard_deviations(cli, tmp_path: Path) -> None:
    # Measured in the targets' units, weights near 80,000 g could never reach a loss of 0.01
    # (g²): the check said FAILED, "look for a bug", of a model that had memorised the batch.
    folder = age_and_weight_folder(tmp_path / "people", {"train": 16, "val": 4})
    flags = ("--dataset", folder, "--set", "model.head=regression", "--device", "cpu")
    document = json.loads(cli("train", "digits-mlp", *flags, "--overfit-batches", "1", "--json").stdout)
    assert document["reached"] and 0.5 < document["initial_loss"] < 5


def test_overfit_that_cannot_is_a_failure(cli) -> None:
    result = cli("train", "digits-mlp", "--overfit-batches", "2", "--lr", "1e-7", "--epochs", "1", code=1)
    assert "FAILED" in result.stderr


def test_preflight_line_compares_the_first_loss_with_ln_classes(cli) -> None:
    assert "pre-flight: initial loss" in cli("train", "digits-mlp", "--epochs", "1").stderr
    warned = cli(
        "train",
        "digits-mlp",
        "--epochs",
        "1",
        "--set",
        "model.init=kaiming_normal",
        "--set",
        "model.batch_norm=false",
        "--set",
        "model.depth=6",
        "--set",
        "model.width=512",
    )
    assert "far from ln(10)" in warned.stderr or "as expected" in warned.stderr


def test_find_lr_prints_a_rate_and_writes_its_curve(cli, tmp_path: Path) -> None:
    lr = float(cli("train", "digits-mlp", "--find-lr", "--runs-dir", tmp_path / "r").stdout)
    assert 1e-6 < lr < 1
    document = json.loads(cli("train", "digits-mlp", "--find-lr", "--json", "--runs-dir", tmp_path / "r").stdout)
    curve = json.loads(Path(document["curve"]).read_text())
    assert len(curve["lrs"]) == len(curve["losses"]) > 10 and curve["lrs"] == sorted(curve["lrs"])
    assert not list((tmp_path / "r").glob("digits-mlp-[0-9]*"))  # no training run was made


def test_find_lr_on_noisy_batches_does_not_suggest_the_first_rate(cli, tmp_path: Path) -> None:
    # MixUp's noisy first losses "fell fastest" at the sweep's first step: it suggested 1e-07.
    mixed = cli("train", "digits-mlp", "--find-lr", "--set", "data.augment.mixup=1.0", "--runs-dir", tmp_path)
    assert 1e-5 < float(mixed.stdout) < 1


@pytest.mark.parametrize("channels_last", ["true", "false"])
def test_channels_last_and_amp_on_cpu(tmp_path: Path, channels_last: str) -> None:
    config = load_config("digits-mlp", ["train.epochs=1", f"train.channels_last={channels_last}", "train.amp=bf16"])
    result = train(config, create_run_dir(tmp_path, "cl"))
    assert result.summary["amp"] == "bf16" and result.status == "completed"


def test_auto_threads_probe_steps_of_middling_size_and_keep_all_cores_near_a_tie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dltool.engine import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)  # a 4-core machine, whatever this one has
    cpu, middling = torch.device("cpu"), lambda: threads.PROBE_MAX_FLOPS / 100
    timed: list[int] = []

    def step_taking(seconds: dict[int, float]):  # type: ignore[no-untyped-def]
        def time_step(count: int) -> float:
            timed.append(count)
            assert torch.get_num_threads() == count  # timed at the count it reports
            return seconds[count]

        return time_step

    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_probed", {})
    busy = threads.resolve_threads("auto", cpu, middling, step_taking({1: 0.010, 4: 0.025}))
    assert busy.value == 1 and "1: 10.0 ms, 4: 25.0 ms" in busy.reason
    assert set(timed) == {1, 4} and torch.get_num_threads() == before
    timed.clear()  # the same step again in this process (a tune trial): the earlier probe's choice
    again = threads.resolve_threads("auto", cpu, middling, step_taking({1: 1.0, 4: 0.01}))
    assert again.value == 1 and again.reason.endswith("for an earlier run of this step in this process")
    assert not timed
    in_bf16 = threads.resolve_threads("auto", cpu, middling, step_taking({1: 1.0, 4: 0.01}), step_kind="bf16")
    assert in_bf16.value == 4 and set(timed) == {1, 4}  # the same FLOPs at another speed: probed anew
    near_tie = 1 / threads.PROBE_MARGIN + 0.01  # one thread faster, but by less than the margin
    monkeypatch.setattr(threads, "_probed", {})
    assert threads.resolve_threads("auto", cpu, middling, step_taking({1: near_tie, 4: 1.0})).value == 4
    timed.clear()
    big = lambda: threads.PROBE_MAX_FLOPS * 2  # noqa: E731
    assert threads.resolve_threads("auto", cpu, big, step_taking({1: 0.01, 4: 1.0})).value == 4
    assert threads.resolve_threads("auto", cpu, middling, step_taking({1: 0.01, 4: 1.0}), kept=3).value == 3
    assert not timed  # too big to probe, or kept from the run's start: nothing timed


def test_the_thread_probe_changes_nothing_but_the_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """digits-cnn's step (0.6 GFLOP, batch norm and dropout) is probed: whichever count the
    probe picks, the run equals one told that count, and its checkpoint keeps the choice."""
    from dltool.engine import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_probed", {})  # probed here, not remembered from another test
    lines: list[str] = []
    log = type("Log", (Observer,), {"on_message": lambda self, text: lines.append(text)})()
    probed = train(load_config("digits-cnn", ["train.epochs=1"]), create_run_dir(tmp_path, "auto"), observer=log)
    chosen = probed.summary["threads"]
    assert any(line.startswith(f"threads: {chosen} (auto: a step measured at 1: ") for line in lines)
    fixed = train(
        load_config("digits-cnn", ["train.epochs=1", f"train.threads={chosen}"]), create_run_dir(tmp_path, "n")
    )
    assert probed.run_dir and fixed.run_dir
    weights = [load_file(run / "model.safetensors") for run in (probed.run_dir, fixed.run_dir)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])  # the metadata differs: threads
    assert load_checkpoint(probed.run_dir / "checkpoints" / "last.pt")["progress"]["threads"] == chosen


def test_auto_threads_follow_omp_num_threads_and_the_probe_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """No step is too small to probe: digits-mlp's (0.03 GFLOP) runs 1.1x faster on two
    threads when the machine is idle and 2x slower beside a busy process."""
    from dltool.engine import threads
    from dltool.engine.threads import forward_flops, resolve_threads, usable_cores

    cpu = torch.device("cpu")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads(3, cpu, lambda: 0).value == 3
    assert resolve_threads("auto", cpu, lambda: 1e6).value == usable_cores()  # nothing to time a step with
    if usable_cores() > 1:
        tiny_idle = {1: 0.0014, usable_cores(): 0.0012}
        monkeypatch.setattr(threads, "_probed", {})
        assert resolve_threads("auto", cpu, lambda: 1e6, tiny_idle.__getitem__).value == usable_cores()
        tiny_busy = {1: 0.0014, usable_cores(): 0.0030}
        monkeypatch.setattr(threads, "_probed", {})
        assert resolve_threads("auto", cpu, lambda: 1e6, tiny_busy.__getitem__).value == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun's or tune's share: torch's count is already that
    assert resolve_threads("auto", cpu, lambda: 1e6).value == torch.get_num_threads()

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.Dropout(0.5)).train()
    state = torch.random.get_rng_state()
    assert forward_flops(model, (3, 2, 2)) == 2 * 12 * 5
    assert model.training and torch.equal(torch.random.get_rng_state(), state)
