"""Shared fixtures: no test touches user state; CLI and subprocess helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dltool.cli import app

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root per test session (per xdist worker): the digits cache is built once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every dltool path points into tmp dirs; the working directory is the test's tmp_path."""
    monkeypatch.setenv("DLTOOL_DATA", str(data_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("DLTOOL_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Cli:
    """Typer's CliRunner with stdout and stderr kept apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0):
        result = self.runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, (
            f"exit {result.exit_code} != {code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result


@pytest.fixture
def cli() -> Cli:
    return Cli()


def dltool_command(*args: str) -> list[str]:
    """A real ``dltool`` process: the interpreter running the tests, ``-m dltool``."""
    return [sys.executable, "-m", "dltool", *map(str, args)]


def run_dltool(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, **kwargs.pop("env", {})}
    result = subprocess.run(dltool_command(*args), capture_output=True, text=True, env=env, **kwargs)
    if check:
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    return result
