"""Switches read from the environment: one set of spellings, anything else refused by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dltool._env import env_flag


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [("1", False, True), (" Yes ", False, True), ("ON", False, True), ("off", True, False), ("0", True, False)]
    + [("", True, True), ("", False, False)],
)
def test_the_same_spellings_mean_on_and_off_and_empty_is_unset(
    monkeypatch: pytest.MonkeyPatch, text: str, default: bool, expected: bool
) -> None:
    monkeypatch.setenv("DLTOOL_SOME_SWITCH", text)
    assert env_flag("DLTOOL_SOME_SWITCH", default) is expected


def _dltool(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dltool", *args], env={**os.environ, **env}, capture_output=True, text=True, cwd=tmp_path
    )


# A pretrained model whose weights are not cached: only the offline switches decide what happens.
PRETRAINED = ("train", "digits-mlp", "--set", "model.name=torchvision:resnet18", "--set", "model.pretrained=true")


@pytest.mark.parametrize(
    ("variable", "args"),
    [("DLTOOL_OFFLINE", PRETRAINED), ("HF_HUB_OFFLINE", PRETRAINED), ("DLTOOL_DEBUG", ("list", "models"))],
)
def test_a_mistyped_switch_is_a_usage_error_naming_it_and_the_spellings(
    tmp_path: Path, variable: str, args: tuple[str, ...]
) -> None:
    # "banana" meant online (a download attempted, or its failure reported as a network error).
    result = _dltool(tmp_path, {"DLTOOL_OFFLINE": "", "HF_HUB_OFFLINE": "", variable: "banana"}, *args)
    assert result.returncode == 2, result.stderr
    assert f"${variable}: 'banana' is not one of 1, true, yes, on or 0, false, no, off" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("variable", ["DLTOOL_DEBUG", "DLTOOL_OFFLINE", "HF_HUB_OFFLINE", "DLTOOL_REUSE_HEAP"])
def test_every_command_refuses_a_mistyped_switch_whichever_it_reads(tmp_path: Path, variable: str) -> None:
    """$DLTOOL_OFFLINE=banana was refused only by a command that came to a zoo download (and
    $DLTOOL_REUSE_HEAP only by training): `dltool list` or `stats` went on without a word."""
    result = _dltool(tmp_path, {"DLTOOL_OFFLINE": "", "HF_HUB_OFFLINE": "", variable: "banana"}, "list", "losses")
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr
        == f"error: ${variable}: 'banana' is not one of 1, true, yes, on or 0, false, no, off (empty: unset)\n"
    )
