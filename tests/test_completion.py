"""Shell completion: names complete through typer's completion protocol, without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dltool.catalog import KINDS
from dltool.cli import app
from dltool.data.sources import GENERATED, SOURCES
from dltool.models import models
from dltool.optim import optimizers


def complete(line: str, shell: str = "bash") -> list[str]:
    """The values ``shell`` is offered for ``line`` (the word being typed is its last one)."""
    words = line.split(" ")
    env = {
        "_DLTOOL_COMPLETE": f"complete_{shell}",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),  # bash
        "_TYPER_COMPLETE_ARGS": line,
        "_TYPER_COMPLETE_FISH_ACTION": "get-args",
    }  # zsh, fish
    result = CliRunner().invoke(app, [], env=env, prog_name="dltool")
    assert result.exit_code == 0, result.output
    if shell == "fish":  # value<TAB>help
        return [row.split("\t")[0] for row in result.stdout.splitlines() if row]
    return [row for row in result.stdout.splitlines() if row]


def test_recipe_names_complete_for_train_and_tune() -> None:
    assert complete("dltool train di") == ["digits-cnn", "digits-mlp"]
    assert complete("dltool tune digits-m") == ["digits-mlp"]


def test_fish_and_zsh_get_the_names_with_their_descriptions() -> None:
    assert complete("dltool train di", "fish") == ["digits-cnn", "digits-mlp"]
    zsh = complete("dltool train di", "zsh")
    assert zsh[0].startswith("_arguments") and '"digits-mlp":"a 2×256 MLP' in "\n".join(zsh)


def test_a_path_is_left_to_the_shells_file_completion() -> None:
    assert complete("dltool train ./my") == []
    assert complete("dltool train configs/", "zsh") == ["_files"]


def test_registry_names_complete_for_their_flags_and_arguments() -> None:
    assert complete("dltool train digits-mlp --model ") == models.names()
    assert complete("dltool tune digits-mlp --optimizer adam") == ["adam", "adamw"]
    assert complete("dltool train digits-mlp --dataset fa") == ["fashion-mnist"]
    assert complete("dltool stats ci") == ["cifar10", "cifar100"]
    assert complete("dltool eval runs/x --data k") == ["kmnist"]
    assert complete("dltool visualize runs/a dig") == ["digits"]
    assert complete("dltool list ") == KINDS
    assert complete("dltool train digits-mlp --optimizer ") == optimizers.names()


def test_download_offers_only_datasets_that_download() -> None:
    offered = complete("dltool download ")
    assert set(offered) == set(SOURCES) | set(GENERATED)
    assert "digits" not in offered


def test_completion_never_imports_torch() -> None:
    env = {**os.environ, "_DLTOOL_COMPLETE": "complete_bash", "COMP_WORDS": "dltool train di", "COMP_CWORD": "2"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dltool"], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.split() == ["digits-cnn", "digits-mlp"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "typer" in imported and "torch" not in imported


@pytest.fixture
def shell_named_on_the_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``--install/--show-completion SHELL`` as in a terminal, with HOME in the test's folder."""
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_a_script_for_dltool(cli, shell: str, shell_named_on_the_command_line: Path) -> None:
    script = cli("--show-completion", shell).stdout
    assert "_DLTOOL_COMPLETE=complete_" + shell in script and "dltool" in script.split()[-1]


def test_install_completion_for_bash(cli, shell_named_on_the_command_line: Path) -> None:
    home = shell_named_on_the_command_line
    cli("--install-completion", "bash")
    assert "_DLTOOL_COMPLETE=complete_bash" in (home / ".bash_completions" / "dltool.sh").read_text()
    assert "source" in (home / ".bashrc").read_text()
