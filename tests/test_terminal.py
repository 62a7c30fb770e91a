"""Terminal manners: live displays only on a terminal that can animate, colour as NO_COLOR and
FORCE_COLOR say. Real processes, with stderr on a real pseudo-terminal where a terminal is meant."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import dltool_command, run_dltool

# What a live display writes and a plain line never does: cursor hidden, line erased, cursor up.
ANIMATION = re.compile(r"\x1b\[\?25l|\x1b\[2K|\x1b\[\d*A")
COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7][0-9;]*m")  # SGR with a foreground colour
COLOUR_ENV = ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM")


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in COLOUR_ENV}
    return {**env, **values}


def _train_on_terminal(runs: Path, term: str) -> str:
    """``dltool train`` with stderr on a pseudo-terminal; what it showed there."""
    leader, follower = pty.openpty()
    shown: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    args = ("train", "digits-mlp", "--epochs", "2", "--runs-dir", runs)
    process = subprocess.run(dltool_command(*args), stdout=subprocess.PIPE, stderr=follower, env=_env(TERM=term))
    os.close(follower)
    reader.join(timeout=30)
    os.close(leader)
    assert process.returncode == 0, b"".join(shown).decode(errors="replace")
    return b"".join(shown).decode(errors="replace")


def test_a_terminal_shows_a_live_bar_and_a_dumb_terminal_plain_lines(tmp_path: Path) -> None:
    live = _train_on_terminal(tmp_path / "xterm", "xterm-256color")
    assert ANIMATION.search(live), live
    dumb = _train_on_terminal(tmp_path / "dumb", "dumb")
    assert not ANIMATION.search(dumb), dumb
    assert "epoch 2/2  train_loss" in dumb


def test_force_color_colours_a_pipe_but_never_animates_it(tmp_path: Path) -> None:
    result = run_dltool("train", "digits-mlp", "--epochs", "2", "--runs-dir", tmp_path, env=_env(FORCE_COLOR="1"))
    assert not ANIMATION.search(result.stderr), result.stderr
    assert "epoch 2/2" in result.stderr
    assert Path(result.stdout.strip()).is_dir()  # stdout stays data, escape-free


@pytest.mark.parametrize(
    ("env", "coloured"),
    [({}, False), ({"FORCE_COLOR": "1"}, True), ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False)],
    ids=["pipe", "force-color", "no-color-wins"],
)
def test_error_lines_are_coloured_only_where_asked(env: dict[str, str], coloured: bool) -> None:
    result = run_dltool("train", "no-such-recipe", check=False, env=_env(**env))
    assert result.returncode == 2
    assert bool(COLOUR.search(result.stderr)) is coloured, repr(result.stderr)
    assert "error:" in result.stderr and "unknown recipe 'no-such-recipe'" in result.stderr
    if not env:
        assert "\x1b" not in result.stderr


@pytest.mark.parametrize(("no_color", "coloured"), [("", True), ("1", False)], ids=["terminal", "no-color"])
def test_a_terminal_is_coloured_unless_no_color_is_set(no_color: str, coloured: bool) -> None:
    leader, follower = pty.openpty()
    process = subprocess.run(
        dltool_command("train", "no-such-recipe"),
        stdout=subprocess.PIPE,
        stderr=follower,
        env=_env(TERM="xterm-256color", NO_COLOR=no_color),
    )
    os.close(follower)
    shown = os.read(leader, 65536).decode()
    os.close(leader)
    assert process.returncode == 2
    assert "error:" in shown
    assert bool(COLOUR.search(shown)) is coloured, repr(shown)


def test_counts_agree_with_their_nouns_in_the_lines_for_people() -> None:
    from dltool._text import counted
    from dltool.commands._progress import start_line

    assert [counted(1, "epoch"), counted(3, "epoch"), counted(1_000, "image")] == [
        "1 epoch",
        "3 epochs",
        "1,000 images",
    ]
    assert counted(2, "batch", "batches") == "2 batches" and counted(1, "batch", "batches") == "1 batch"
    info = {"run_dir": "runs/d-1", "device": "cpu", "amp": "off", "threads": 1, "epochs": 1, "batches": 1}
    assert start_line(info | {"resumed_at": None}).endswith("(amp off, 1 CPU thread): 1 epoch × 1 batch")


def test_brackets_in_a_folder_or_class_name_are_shown_as_written(cli, tmp_path: Path) -> None:
    # rich read them as styles: "[old] cats" showed as " cats" in every table, "dogs [b]x" as a
    # bold "dogs x", and the run log named the folder "photos " (of "photos [2019]").
    from PIL import Image

    root = tmp_path / "photos [2019]"
    for k, name in enumerate(["[old] cats", "dogs [b]x"]):
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * k + 10 * i, 0, 0)).save(root / name / f"{i}.png")
    stats = cli("stats", root).stderr
    assert "[old] cats" in stats and "dogs [b]x" in stats and f"{root.name}: 2 classes" in stats
    trained = cli("train", "digits-mlp", "--dataset", root, "--epochs", "1")
    assert f"{root} has no test split" in trained.stderr
    table = cli("eval", trained.stdout.strip()).stderr
    assert "[old] cats" in table and "dogs [b]x" in table
