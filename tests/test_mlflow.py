"""MLflow tracking (`train.tracking: mlflow`) against a real `mlflow server` on a loopback port
with a SQLite backend, started here; everything is read back through MlflowClient."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import dltool_command, run_dltool
from studies import wait_for_epochs, write

QUICK = ["--epochs", "2", "--set", "train.limit_batches=3"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = open(folder / "server.log", "w")  # noqa: SIM115  # closed below, after the server
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (folder / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server never answered"
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


@pytest.fixture
def client(server: str, monkeypatch: pytest.MonkeyPatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    return MlflowClient(tracking_uri=server)


def _metric(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def test_a_run_logs_params_epochs_summary_and_files_and_resumes_in_place(
    cli, client, server: str, isolated: Path
) -> None:
    args = ["train", "digits-mlp", *QUICK, "--set", "train.tracking=mlflow", "--set", "train.mlflow.experiment=exp-a"]
    result = run_dltool(*args, env={"MLFLOW_TRACKING_URI": server})
    run = isolated / result.stdout.strip()
    assert result.stdout == "runs/digits-mlp-1\n"  # MLflow's own "View run" line kept off stdout
    run_id = json.loads((run / "mlflow.json").read_text())["run_id"]
    found = client.get_run(run_id)
    assert found.info.status == "FINISHED" and found.info.run_name == "digits-mlp-1"
    assert client.get_experiment(found.info.experiment_id).name == "exp-a"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert found.data.params["optimizer.lr"] == str(config["optimizer"]["lr"])
    assert found.data.params["train.tracking"] == "['mlflow']" and len(found.data.params) > 50
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert _metric(client, run_id, "val_loss") == [(r["epoch"], pytest.approx(r["val_loss"])) for r in records]
    summary = json.loads((run / "summary.json").read_text())
    assert found.data.metrics["test_loss"] == pytest.approx(summary["test"]["loss"])
    assert found.data.metrics[f"best_{summary['best']['metric']}"] == pytest.approx(summary["best"]["value"])
    # KILLED is a Ctrl-C and a pruned tune trial alike (dltool_status interrupted): the reason tells
    assert (found.data.tags["dltool_status"], found.data.tags["dltool_stop_reason"]) == ("completed", "epochs")
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "metrics.jsonl", "summary.json", "model.safetensors", "classes.json"} <= artifacts
    assert "checkpoints" not in artifacts

    cli("train", "--resume", run, "--epochs", "3", "-q")
    assert json.loads((run / "mlflow.json").read_text())["run_id"] == run_id  # the same MLflow run
    assert [step for step, _ in _metric(client, run_id, "val_loss")] == [1, 2, 3]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_tracker_that_fails_midway_is_a_warning_and_the_run_goes_on(client, server: str, isolated: Path) -> None:
    # An MLflow server that went away or refused the run midway failed the run after MLflow's
    # retries ("internal error: MlflowException ...", exit 1, status failed), training lost.
    args = [
        "train",
        "digits-mlp",
        "--epochs",
        "300",
        "--set",
        "train.limit_batches=2",
        "--set",
        "train.tracking=mlflow",
    ]
    process = subprocess.Popen(dltool_command(*args, "--name", "r"), cwd=isolated, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    run = isolated / "runs" / "r"
    wait_for_epochs(run / "metrics.jsonl", process)
    client.delete_run(json.loads((run / "mlflow.json").read_text())["run_id"])  # its next log is refused
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0 and stdout == "runs/r\n", stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 300
    (warning,) = [line for line in stderr.splitlines() if "mlflow" in line.lower()]
    assert warning.startswith(f"warning: mlflow: MLflow at {server} failed to log epoch "), warning
    assert warning.endswith("the run goes on without it (the run dir keeps every record)")


def test_a_study_run_refused_at_the_end_is_a_warning(client, isolated: Path) -> None:
    write(isolated / "space.yaml", "optimizer.lr: [1.0e-3, 1.0e-2]\n")
    args = ["tune", "digits-mlp", "--space", "space.yaml", "--sampler", "grid", "--epochs", "50", "--name", "s"]
    process = subprocess.Popen(dltool_command(*args, "--set", "train.tracking=mlflow", "--set", "train.limit_batches=2"),
                               cwd=isolated, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    record = isolated / "runs" / "s" / "mlflow.json"
    deadline = time.monotonic() + 120
    while not record.is_file():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    client.delete_run(json.loads(record.read_text())["run_id"])
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0 and stdout == "runs/s\n", stderr
    assert "warning: mlflow: MLflow at " in stderr and "failed to end the study's run" in stderr
    assert json.loads((isolated / "runs" / "s" / "study.json").read_text())["states"]["COMPLETE"] == 2


def test_tune_trials_are_child_runs_of_the_study(cli, client, isolated: Path) -> None:
    write(isolated / "space.yaml", "optimizer.lr: [1.0e-3, 1.0e-2]\n")
    study = cli(
        "tune",
        "digits-mlp",
        "--space",
        "space.yaml",
        "--sampler",
        "grid",
        "--pruner",
        "none",
        *QUICK,
        "--set",
        "train.tracking=mlflow",
        "--set",
        "train.mlflow.experiment=exp-tune",
        "-q",
    ).stdout.strip()
    parent_id = json.loads((Path(study) / "mlflow.json").read_text())["run_id"]
    parent = client.get_run(parent_id)
    assert parent.info.run_name == Path(study).name and parent.info.status == "FINISHED"
    assert "best_val_acc" in parent.data.metrics
    experiment = client.get_experiment_by_name("exp-tune").experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(r.info.run_name for r in children) == ["trial-0000", "trial-0001"]
    assert sorted(r.data.params["optimizer.lr"] for r in children) == ["0.001", "0.01"]
    assert all(r.info.status == "FINISHED" for r in children)
    # best.yaml trains the configuration as a run of its own, not as one more child of the study
    best = yaml.safe_load((Path(study) / "best.yaml").read_text())
    assert best["train"]["mlflow"] == {"experiment": "exp-tune", "run_name": None, "parent_run": None}


def test_a_lost_trials_mlflow_run_ends_failed_when_the_study_goes_on(client, isolated: Path) -> None:
    # A SIGKILLed trial was marked FAIL (lost) in the study, while its MLflow run stayed
    # RUNNING for ever: nothing resumes a lost trial, so nothing ended it.
    write(isolated / "space.yaml", "optimizer.lr: [1.0e-3, 1.0e-2]\n")
    args = ["tune", "digits-mlp", "--space", "space.yaml", "--sampler", "grid", "--pruner", "none", "--name", "s"]
    tracked = [*args, "--set", "train.tracking=mlflow", "--set", "train.limit_batches=2"]
    process = subprocess.Popen(dltool_command(*tracked, "--epochs", "500"), cwd=isolated,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    trial = isolated / "runs" / "s" / "trial-0000"
    wait_for_epochs(trial / "metrics.jsonl", process)
    process.kill()
    process.wait()
    run_id = json.loads((trial / "mlflow.json").read_text())["run_id"]
    assert client.get_run(run_id).info.status == "RUNNING"  # as the kill left it
    result = run_dltool(*tracked, "--epochs", "1", cwd=isolated)
    assert "trial 0: its worker is gone; marked FAIL" in result.stderr and "warning" not in result.stderr
    lost = client.get_run(run_id)
    assert (lost.info.status, lost.data.tags["dltool_status"]) == ("FAILED", "lost")


def test_without_mlflow_the_error_names_the_extra(cli, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow: ImportError
    error = cli("train", "digits-mlp", "--set", "train.tracking=mlflow", code=2).stderr
    assert "mlflow is not installed; pip install 'dltool[mlflow]'" in error
    assert not (isolated / "runs").exists()
    assert (
        "should be 'mlflow' or 'tensorboard'"
        in cli("train", "digits-mlp", "--set", "train.tracking=mlfow", code=2).stderr
    )


def test_a_store_that_refuses_the_run_is_one_line_and_leaves_no_run_dir(isolated: Path) -> None:
    # MLflow 3's file store refuses new runs ("maintenance mode"): that was an internal error,
    # and a run dir with config.yaml but no summary.json stayed behind.
    store = f"file://{isolated / 'mlruns'}"
    result = run_dltool("train", "digits-mlp", "--epochs", "1", "--set", "train.tracking=mlflow", check=False,
                        env={"MLFLOW_TRACKING_URI": store}, cwd=isolated)  # fmt: skip
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: MLflow at {store} refused the run: ") and "MLFLOW_ALLOW_FILE_STORE" in last
    assert not list((isolated / "runs").glob("*"))


@pytest.fixture
def hung_server() -> Iterator[str]:
    """A server that takes connections and never answers: a bare socket listening on loopback."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


def test_a_server_that_never_answers_costs_one_timeout_then_the_run_goes_on(hung_server: str, isolated: Path) -> None:
    # MLflow waits its request timeout once per retry (7 retries, with backoff: 4 minutes a call
    # at a 1 s timeout, 20 at the default 120 s), and the run waited that for every call.
    env = {"MLFLOW_TRACKING_URI": hung_server, "MLFLOW_HTTP_REQUEST_TIMEOUT": "1"}
    started = time.monotonic()
    result = run_dltool("train", "digits-mlp", *QUICK, "--set", "train.tracking=mlflow", "--name", "r", env=env,
                        cwd=isolated)  # fmt: skip
    assert time.monotonic() - started < 60, result.stderr
    assert result.stdout == "runs/r\n"
    (warning,) = [line for line in result.stderr.splitlines() if "mlflow" in line.lower()]
    assert warning == (
        f"warning: mlflow: MLflow at {hung_server} did not answer in 1 s (MLFLOW_HTTP_REQUEST_TIMEOUT); "
        "the run goes on without it (the run dir keeps every record)"
    )
    assert json.loads((isolated / "runs" / "r" / "summary.json").read_text())["status"] == "completed"
    write(isolated / "space.yaml", "optimizer.lr: [1.0e-3, 1.0e-2]\n")
    tuned = run_dltool("tune", "digits-mlp", "--space", "space.yaml", "--sampler", "grid", *QUICK, "--set",
                       "train.tracking=mlflow", env=env, cwd=isolated)  # fmt: skip
    assert tuned.stderr.count("did not answer in 1 s") == 1 and "study goes on without it" in tuned.stderr
    assert time.monotonic() - started < 120, tuned.stderr
