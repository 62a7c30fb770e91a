"""Real processes: SIGINT/SIGTERM stop cleanly and resume exactly; SIGKILL loses at most an epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from unittest.mock import ANY

import pytest

from conftest import dltool_command, metrics_without_times, run_dltool
from dltool import _signals
from dltool._signals import stop_on_signals
from dltool.config import load_config
from dltool.engine import train
from dltool.engine.checkpoint import load_checkpoint
from dltool.errors import UsageError
from dltool.rundir import create_run_dir
from events import epoch_series, events, hparams, logs_every_epoch
from fakedata import split_photos

EPOCHS, BATCH = 12, 16  # ~0.15 s an epoch: a signal after epoch 2 lands well before the end
ARGS = ["train", "digits-mlp", "--epochs", EPOCHS, "--batch-size", BATCH, "-q"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """An uninterrupted run with the same config (in-process: the same code as the CLI's)."""
    os.environ["DLTOOL_DATA"] = str(data_dir)
    config = load_config("digits-mlp", [f"train.epochs={EPOCHS}", f"train.batch_size={BATCH}"])
    return train(config, create_run_dir(tmp_path_factory.mktemp("reference"), "ref")).run_dir


def start_and_signal(
    runs: Path, sig: int, after_epochs: int = 2, *args: str, again_after_s: float | None = None
) -> subprocess.CompletedProcess:
    """Start a training process (with more ``args``) and send ``sig`` once ``after_epochs``
    epochs are logged (and once more ``again_after_s`` seconds later)."""
    process = subprocess.Popen(
        dltool_command(*ARGS, *args, "--runs-dir", runs, "--name", "run"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = runs / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= after_epochs):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "training never logged its epochs"
        time.sleep(0.005)
    process.send_signal(sig)
    if again_after_s is not None:
        time.sleep(again_after_s)
        process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_run_resumes_to_the_same_bytes(tmp_path: Path, reference: Path, sig: int, code: int) -> None:
    stopped = start_and_signal(tmp_path, sig)
    run = tmp_path / "run"
    assert stopped.returncode == code, stopped.stderr
    assert stopped.stdout.strip() == str(run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_run"] < EPOCHS
    assert summary["stop_reason"] == "signal"
    assert "Traceback" not in stopped.stderr

    run_dltool("train", "--resume", run, "-q")
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert metrics_without_times(run) == metrics_without_times(reference)


def test_two_sigints_within_a_second_are_one_ctrl_c_and_the_run_resumes_exactly(
    tmp_path: Path, reference: Path
) -> None:
    """One Ctrl-C can arrive twice (the terminal's process group, and a launcher passing it
    on): a second signal this soon asks the same clean stop, with last.pt where the run
    stopped and the run path on stdout, rather than stopping at once (no path, last.pt an
    epoch back)."""
    stopped = start_and_signal(tmp_path, signal.SIGINT, again_after_s=0.01)
    run = tmp_path / "run"
    # When the stop was quicker than 10 ms (a loaded machine delays the second signal), the
    # second finds the process exiting with Python's own handler back: it may end the process
    # (-2; a shell reports 130 all the same) or be reported by Python as ignored at shutdown.
    assert stopped.returncode in (130, -signal.SIGINT) and stopped.stdout.strip() == str(run), stopped.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"

    run_dltool("train", "--resume", run, "-q")
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert metrics_without_times(run) == metrics_without_times(reference)


def test_a_signal_within_a_second_of_the_first_is_the_same_request_a_later_one_stops_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_signals, "REPEAT_WINDOW_S", 0.2)  # the window, shortened to keep the test quick
    stop = threading.Event()
    with stop_on_signals(stop) as received:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.is_set() and received == [signal.SIGINT, signal.SIGTERM]
        time.sleep(0.25)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs between two bytecodes, before this ends
    assert received == [signal.SIGINT, signal.SIGTERM, signal.SIGINT]


def test_a_killed_run_keeps_a_loadable_checkpoint_and_resumes(tmp_path: Path, reference: Path) -> None:
    killed = start_and_signal(tmp_path, signal.SIGKILL, after_epochs=3)
    assert killed.returncode == -signal.SIGKILL
    run = tmp_path / "run"
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    assert checkpoint["progress"]["epoch"] >= 3 and checkpoint["ranks"] == [{"rng": ANY, "partial": None}]
    # What a kill in the middle of writing a checkpoint leaves beside it (see dltool._io).
    partial = run / "checkpoints" / ".last.pt.k1ll3d.tmp"
    partial.write_bytes(b"half a checkpoint")

    run_dltool("train", "--resume", run, "-q")
    assert not partial.exists()
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert metrics_without_times(run) == metrics_without_times(reference)


def test_resuming_a_run_that_is_still_training_is_refused(tmp_path: Path) -> None:
    process = subprocess.Popen(
        dltool_command(
            "train",
            "digits-mlp",
            "--epochs",
            1000,
            "--batch-size",
            BATCH,
            "-q",
            "--runs-dir",
            tmp_path,
            "--name",
            "run",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        last = tmp_path / "run" / "checkpoints" / "last.pt"
        deadline = time.monotonic() + 120
        while not last.is_file():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.01)
        second = subprocess.run(
            dltool_command("train", "--resume", tmp_path / "run", "-q"), capture_output=True, text=True
        )
        assert second.returncode == 1
        assert "being trained by another process" in second.stderr
        assert process.poll() is None  # the first run goes on undisturbed
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert process.returncode == 143


def test_tensorboard_events_of_a_stopped_run_are_complete_and_resume_without_duplicates(tmp_path: Path) -> None:
    stopped = start_and_signal(tmp_path, signal.SIGINT, 2, "--tensorboard")
    run = tmp_path / "run"
    assert stopped.returncode == 130 and logs_every_epoch(run)
    assert hparams(events(run))["train.epochs"] == EPOCHS
    run_dltool("train", "--resume", run, "-q")
    assert len(epoch_series(run)["val_loss"]) == EPOCHS and logs_every_epoch(run)


def test_the_run_path_is_the_only_stdout_line_in_a_pipeline(tmp_path: Path) -> None:
    script = f'RUN=$({" ".join(dltool_command("train", "digits-mlp", "--epochs", "1", "--runs-dir", tmp_path))}) && cat "$RUN/summary.json"'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    assert "epoch 1/1" in result.stderr  # plain progress lines, not a live bar, off a terminal


def _sigint_heeded(pid: int) -> bool:
    """Whether the process no longer ignores SIGINT (Linux's /proc: its SigIgn mask)."""
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    return not ignored & (1 << (signal.SIGINT - 1))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads signal masks from Linux's /proc")
def test_sigint_inherited_ignored_is_heeded_from_the_start(tmp_path: Path) -> None:
    # A script's `dltool train ... &` inherits SIGINT as ignored. The handlers of the run came
    # only with training: a `kill -INT` during the start (imports, config, data) was lost, and
    # the run trained to the end (exit 0).
    process = subprocess.Popen(
        dltool_command(*ARGS, "--runs-dir", tmp_path / "runs"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # what `cmd &` in a script does
    )
    deadline = time.monotonic() + 60
    while process.poll() is None and not _sigint_heeded(process.pid):
        assert time.monotonic() < deadline, "SIGINT stayed ignored"
        time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    # -2: the signal came while Python was still unwinding into dltool's handling of it; a
    # shell reports 130 all the same.
    assert process.returncode in (130, -signal.SIGINT) and stdout == "" and "Traceback" not in stderr, stderr
    assert not (tmp_path / "runs").exists()  # stopped before anything was made


def test_a_run_killed_during_setup_leaves_a_name_that_trains_again(tmp_path: Path) -> None:
    # SIGKILL while the data loaded left a folder holding only the training lock: --resume
    # said "not a dltool run directory" and the same --name "already exists; --resume it".
    process = subprocess.Popen(
        dltool_command(*ARGS, "--runs-dir", tmp_path, "--name", "run"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    lock, deadline = tmp_path / "run" / ".train.lock", time.monotonic() + 60
    while not lock.is_file():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.002)
    process.kill()
    process.communicate(timeout=60)
    assert sorted(os.listdir(tmp_path / "run")) == [".train.lock"]  # killed before its first file

    resumed = run_dltool("train", "--resume", tmp_path / "run", check=False)
    assert resumed.returncode == 1 and "nothing to resume; train again with --name run" in resumed.stderr
    again = run_dltool(*ARGS, "--runs-dir", tmp_path, "--name", "run")
    assert again.stdout.strip() == str(tmp_path / "run") and (tmp_path / "run" / "model.safetensors").is_file()
    assert sorted(os.listdir(tmp_path)) == ["run"]  # nothing of the killed one left beside it


def test_a_name_whose_training_is_still_in_setup_is_not_reclaimed(tmp_path: Path) -> None:
    from filelock import FileLock

    (tmp_path / "run").mkdir()
    # a train in its setup holds the lock
    with FileLock(tmp_path / "run" / ".train.lock"), pytest.raises(UsageError, match="already exists"):
        create_run_dir(tmp_path, "digits-mlp", "run")
    assert sorted(os.listdir(tmp_path / "run")) == [".train.lock"]


def test_a_signal_inside_a_deferred_block_is_handled_when_it_ends() -> None:
    # predict's process pool: a SIGTERM that cut its first submit between a worker's start
    # and that of the pool's manager thread left the command waiting for ever at exit.
    steps: list[str] = []
    previous = signal.signal(signal.SIGTERM, _signals._terminate)
    try:
        with pytest.raises(_signals.Terminated), _signals.signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            steps.append("the block went on to its end")
        assert steps == ["the block went on to its end"]
        assert signal.getsignal(signal.SIGTERM) is _signals._terminate  # the handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ctrl_c_in_the_final_test_pass_stops_at_once_and_the_run_resumes_to_its_score(tmp_path: Path) -> None:
    """The test pass (a ResNet-56 on 400 photos: seconds on a CPU) did not heed the first
    Ctrl-C: the run went on to the end of the pass and called itself completed."""
    photos = split_photos(tmp_path / "photos")
    args = ["train", "cifar10-resnet", "--dataset", photos, "--epochs", 1, "--batch-size", 4, "--set", "model.depth=56"]
    process = subprocess.Popen(
        dltool_command(*args, "--runs-dir", tmp_path, "--name", "run"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = tmp_path / "run"
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():  # its only epoch
        assert process.poll() is None
        time.sleep(0.005)
    last = (run / "checkpoints" / "last.pt").read_bytes()
    process.send_signal(signal.SIGINT)  # the test pass began as the epoch's line was written
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stdout.strip() == str(run), stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_run"] == 1 and summary.get("test") is None
    assert (run / "checkpoints" / "last.pt").read_bytes() == last  # not written again with the best weights
    run_dltool("train", "--resume", run, "-q")  # nothing left to train: it scores the test split
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["status"] == "completed" and resumed["test"]["n"] == 400
    assert json.loads(run_dltool("eval", run, "--split", "val", "--json").stdout)["n"] == 4


def test_ctrl_c_in_an_epochs_validation_stops_at_once_and_resumes_to_the_same_bytes(
    tmp_path: Path, data_dir: Path
) -> None:
    """Validation (a ResNet-56 on 400 photos) did not heed the first Ctrl-C: the run stopped
    only after it, at the next epoch's first step."""
    photos = split_photos(tmp_path / "photos", train=4, val=200, test=2)
    sets = ["model.depth=56", "train.epochs=2", "train.batch_size=8"]  # an epoch: 1 step, then validation
    config = load_config("cifar10-resnet", [f"data.name={photos}", *sets])
    reference = train(config, create_run_dir(tmp_path / "reference", "ref")).run_dir
    args = ["train", "cifar10-resnet", "--dataset", photos, *[a for s in sets for a in ("--set", s)], "-q"]
    process = subprocess.Popen(dltool_command(*args, "--runs-dir", tmp_path, "--name", "run"), stdout=subprocess.PIPE)
    run = tmp_path / "run"
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
        assert process.poll() is None
        time.sleep(0.005)
    time.sleep(1.0)  # epoch 2's one step is done (0.1 s), its validation (seconds) is on
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    progress = load_checkpoint(run / "checkpoints" / "last.pt")["progress"]
    assert (progress["epoch"], progress["batch"]) == (1, 1)  # epoch 2 trained, not validated
    run_dltool("train", "--resume", run, "-q")
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert metrics_without_times(run) == metrics_without_times(reference)
