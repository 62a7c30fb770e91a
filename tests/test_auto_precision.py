"""`train.amp: auto`: half precision on a GPU only where a timed step is faster in it.

The choice is made on a GPU only; its rules are checked here against a CUDA device object
(nothing runs on it: without CUDA, torch reports no bf16, so half precision is fp16), the
probe itself on a CPU (autocast runs there in bf16), and a whole run where CUDA is present.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import StopAfter
from dltool.config import load_config
from dltool.engine import resume, train
from dltool.engine.amp import (
    AMP_MARGIN,
    FULL,
    PROBE_MAX_PARAMETERS,
    faster_precision,
    resolve_amp,
    unmeasured,
)
from dltool.engine.checkpoint import load_checkpoint
from dltool.engine.device import Precision
from dltool.engine.observer import Observer
from dltool.engine.probe import Choice, step_timer
from dltool.rundir import create_run_dir, open_run_dir

BF16, FP16 = Precision(torch.bfloat16), Precision(torch.float16)
CUDA = torch.device("cuda")  # an object only, unless the test needs CUDA


def taking(seconds: dict[Precision, float], timed: list[Precision]):  # type: ignore[no-untyped-def]
    def time_step(precision: Precision) -> float:
        timed.append(precision)
        return seconds[precision]

    return time_step


def test_half_precision_is_kept_only_when_it_measures_faster_by_the_margin() -> None:
    timed: list[Precision] = []
    faster = faster_precision(BF16, taking({BF16: 0.001, FULL: 0.003}, timed))
    assert faster.value == BF16 and faster.reason == "a step measured in bf16: 1.00 ms, fp32: 3.00 ms"
    assert set(timed) == {BF16, FULL}
    near_tie = 1 / AMP_MARGIN + 0.01  # half faster, but by less than the margin
    assert faster_precision(BF16, taking({BF16: near_tie, FULL: 1.0}, timed)).value == FULL
    assert faster_precision(BF16, taking({BF16: 2.0, FULL: 1.0}, timed)).value == FULL


def test_auto_probes_only_a_single_eager_gpu_process_with_a_model_small_enough_to_copy() -> None:
    timed: list[Precision] = []
    slow_half = taking({FP16: 0.002, FULL: 0.001}, timed)
    assert resolve_amp("auto", CUDA, slow_half).value == FULL and timed
    timed.clear()
    assert unmeasured(1000, distributed=False, compiled=False) == ""
    assert unmeasured(PROBE_MAX_PARAMETERS + 1, distributed=False, compiled=False) == "20M parameters"
    assert unmeasured(1000, distributed=True, compiled=False).startswith("several processes")
    assert unmeasured(1000, distributed=False, compiled=True).startswith("compiled")
    assert resolve_amp("auto", CUDA, "20M parameters") == Choice(FP16, "20M parameters")
    assert resolve_amp("auto", CUDA, slow_half, kept="fp16") == Choice(FP16, "as when the run began")
    assert resolve_amp("auto", CUDA, slow_half, kept="bf16") == Choice(
        FP16, "the run began in bf16, which this GPU lacks"
    )
    assert resolve_amp("fp16", CUDA, slow_half) == Choice(FP16, "")
    assert resolve_amp("off", CUDA, slow_half) == Choice(FULL, "")
    assert resolve_amp("auto", torch.device("cpu"), slow_half) == Choice(FULL, "")  # a CPU: fp32, as before
    assert not timed


@pytest.mark.parametrize("half", [BF16, FP16])  # fp16 steps through a gradient scaler, as the run does
def test_the_probe_times_both_precisions_and_leaves_the_run_untouched(half: Precision) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Dropout(0.5)
    )
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    before = ({k: v.clone() for k, v in model.state_dict().items()}, torch.random.get_rng_state())
    choice = faster_precision(half, step_timer(model, optimizer, (1, 8, 8), 16))
    assert choice.value in (half, FULL) and choice.reason.startswith(f"a step measured in {half.name}: ")
    assert all(torch.equal(before[0][k], v) for k, v in model.state_dict().items())
    assert torch.equal(before[1], torch.random.get_rng_state()) and not optimizer.state


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_probe_feeds_the_runs_memory_format(channels_last: bool) -> None:
    seen: list[bool] = []
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    model.register_forward_pre_hook(
        lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    step_timer(model, torch.optim.SGD(model.parameters(), lr=0.1), (3, 8, 8), 2, channels_last)(FULL)
    assert seen == [channels_last]


def run_and_resume(tmp_path: Path, overrides: list[str]) -> tuple[list[str], str, dict[str, object]]:
    """(the log of both sessions, the precision the checkpoint kept, the resumed run's summary)
    of a digits-cnn run stopped in its first epoch and resumed."""
    lines: list[str] = []
    log = type("Log", (Observer,), {"on_message": lambda self, text: lines.append(text)})()
    run = create_run_dir(tmp_path, "amp")
    config = load_config("digits-cnn", ["train.epochs=2", "train.compile=false", *overrides])
    assert train(config, run, observer=log, stop=StopAfter(5)).status == "interrupted"
    kept = load_checkpoint(run.path / "checkpoints" / "last.pt")["progress"]["amp"]
    return lines, kept, resume(open_run_dir(run.path), observer=log).summary


def test_a_run_logs_the_measured_choice_and_keeps_it_when_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On this CPU, as if ``auto`` meant bf16 here as on a GPU: the run probes its own model."""
    from dltool.engine import amp

    monkeypatch.setattr(amp, "resolve_precision", lambda setting, device: BF16 if setting in ("auto", "bf16") else FULL)
    lines, kept, summary = run_and_resume(tmp_path, [])
    assert kept in ("bf16", "off") and summary["amp"] == kept
    assert sum(line.startswith(f"amp: {kept} (auto: a step measured in bf16: ") for line in lines) == 1
    assert lines.count(f"amp: {kept} (auto: as when the run began)") == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_run_measures_its_precision_and_keeps_it_when_resumed(tmp_path: Path) -> None:
    lines, kept, summary = run_and_resume(tmp_path, ["train.device=cuda"])
    assert kept in ("bf16", "off") and summary["amp"] == kept
    assert any(line.startswith(f"amp: {kept} (auto: a step measured in ") for line in lines)


def test_a_run_begun_in_bf16_resumes_in_fp16_where_there_is_no_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Begun where ``auto`` measured bf16 faster, resumed where half precision means fp16 (a GPU
    without bf16; here a CPU made to answer so): fp16 with a fresh gradient scale."""
    from dltool.engine import amp

    halves = {"auto": BF16, "bf16": BF16, "fp16": FP16}
    monkeypatch.setattr(amp, "resolve_precision", lambda setting, device: halves.get(setting, FULL))
    monkeypatch.setattr(amp, "faster_precision", lambda half, time_step: Choice(half, "measured"))
    lines: list[str] = []
    log = type("Log", (Observer,), {"on_message": lambda self, text: lines.append(text)})()
    run = create_run_dir(tmp_path, "moved")
    config = load_config("digits-mlp", ["train.epochs=2", "train.batch_size=32"])
    assert train(config, run, stop=StopAfter(25)).status == "interrupted"
    assert load_checkpoint(run.path / "checkpoints" / "last.pt")["progress"]["amp"] == "bf16"
    halves["auto"] = FP16
    resumed = resume(open_run_dir(run.path), observer=log)
    assert resumed.status == "completed" and resumed.summary["amp"] == "fp16"
    assert "amp: fp16 (auto: the run began in bf16, which this GPU lacks)" in lines


def test_a_dry_run_says_what_auto_would_measure(monkeypatch: pytest.MonkeyPatch) -> None:
    from dltool.engine import amp
    from dltool.engine.dryrun import dry_run

    monkeypatch.setattr(amp, "resolve_precision", lambda setting, device: BF16 if setting in ("auto", "bf16") else FULL)
    line = dry_run(load_config("digits-cnn", ["train.compile=false"])).lines()[-2]
    assert " (amp bf16, auto: a step measured in bf16: " in line or " (amp off, auto: a step measured in bf16: " in line
