"""Optuna's conventions: --study-name (and its old spelling --study), OPTUNA_STORAGE when
--storage is absent, and `tune --dashboard`, whose printed command is run here: a real
optuna-dashboard on a loopback port, asked for the study through its HTTP API."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from studies import QUICK, study_json, write

SPACE = "optimizer.lr: [1.0e-3, 1.0e-2]\n"  # a grid of two trials
TUNE = ["tune", "digits-mlp", "--space", "space.yaml", "--sampler", "grid", "--pruner", "none", *QUICK]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def _serve(command: str, port: int) -> subprocess.Popen:
    """optuna-dashboard as the printed command has it, on a loopback port (wsgiref: no gunicorn
    control socket in $HOME), from the venv the tests run in."""
    args = shlex.split(command)
    assert args[0] == "optuna-dashboard"
    executable = str(Path(sys.executable).parent / "optuna-dashboard")
    extra = ["--port", str(port), "--host", "127.0.0.1", "--server", "wsgiref", "--quiet"]
    return subprocess.Popen([executable, *args[1:], *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _studies(process: subprocess.Popen, port: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.communicate()[1]
        try:
            status, document = _get(f"http://127.0.0.1:{port}/api/studies")
            assert status == 200
            return document["study_summaries"]
        except OSError:
            assert time.monotonic() < deadline, "optuna-dashboard never answered"
            time.sleep(0.2)


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_the_printed_dashboard_command_serves_the_study(
    cli, isolated: Path, monkeypatch: pytest.MonkeyPatch, storage: str
) -> None:
    write(isolated / "space.yaml", SPACE)
    if storage == "sqlite":
        monkeypatch.setenv("OPTUNA_STORAGE", f"sqlite:///{isolated / 'studies.db'}")
    cli(*TUNE, "--name", "s", "--study-name", "lr-search", "-q")
    command = cli(*TUNE, "--name", "s", "--dashboard").stdout.strip()
    expected = "runs/s/study.journal" if storage == "journal" else f"sqlite:///{isolated / 'studies.db'}"
    assert command == f"optuna-dashboard {expected}"
    port = _free_port()
    process = _serve(command, port)
    try:
        summaries = _studies(process, port)
        assert [s["study_name"] for s in summaries] == ["lr-search"]
        status, study = _get(f"http://127.0.0.1:{port}/api/studies/{summaries[0]['study_id']}?after=0")
        assert status == 200 and len(study["trials"]) == 2
        assert sorted(t["state"] for t in study["trials"]) == ["Complete", "Complete"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_optuna_storage_is_read_when_storage_is_absent(cli, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "space.yaml", SPACE)
    monkeypatch.setenv("OPTUNA_STORAGE", f"sqlite:///{isolated / 'env.db'}")
    cli(*TUNE, "--name", "from-env", "--dashboard")
    assert study_json(isolated / "runs" / "from-env")["storage"] == f"sqlite:///{isolated / 'env.db'}"
    flag = f"sqlite:///{isolated / 'flag.db'}"
    cli(*TUNE, "--name", "from-flag", "--storage", flag, "--dashboard")
    assert study_json(isolated / "runs" / "from-flag")["storage"] == flag  # the flag wins
    assert (isolated / "env.db").is_file() and (isolated / "flag.db").is_file()


def test_study_name_and_its_old_spelling(cli, isolated: Path) -> None:
    write(isolated / "space.yaml", SPACE)
    cli(*TUNE, "--name", "a", "--study-name", "first", "--dashboard")
    cli(*TUNE, "--name", "b", "--study", "second", "--dashboard")
    assert study_json(isolated / "runs" / "a")["study_name"] == "first"
    assert study_json(isolated / "runs" / "b")["study_name"] == "second"
    assert not list((isolated / "runs" / "a").glob("trial-*"))  # --dashboard runs no trial


def test_dashboard_without_optuna_dashboard_names_the_extra(
    cli, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated / "space.yaml", SPACE)
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # find_spec: not installed
    error = cli(*TUNE, "--name", "s", "--dashboard", code=2).stderr
    assert "optuna-dashboard is not installed; pip install 'dltool[dashboard]'" in error
    assert not (isolated / "runs").exists()
