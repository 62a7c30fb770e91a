"""Malformed checkpoints and weights (issue 18, item 1): every one is a single line on stderr
that names the file and the fault, exit 1 — never a traceback, never torch's advice to load
with ``weights_only=False``. Then a seeded fuzz of a few hundred mutated files."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import typer.main
import typer.testing
from PIL import Image
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from conftest import run_dltool
from dltool.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "runs" / "digits-mlp-0.1.0"
CHECKPOINT = torch.load(FIXTURE / "checkpoints" / "last.pt", weights_only=True)
WEIGHTS = (FIXTURE / "model.safetensors").read_bytes()
# Read here by hand (8-byte length, JSON header), not by the reader under test.
METADATA = json.loads(WEIGHTS[8 : 8 + int.from_bytes(WEIGHTS[:8], "little")])["__metadata__"]


@pytest.fixture
def fast_cli(cli: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI runner, without typer rebuilding its click group for every call (about 50 ms
    of CPU each, most of a fuzz case): the group is built once and reused."""
    command = typer.main.get_command(app)
    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: command)
    return cli


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "digit.png"
    Image.new("L", (8, 8), 100).save(path)
    return path


def checkpoint_with(**entries: Any) -> bytes:
    """The release run's last.pt with ``entries`` replaced (a value of ``...`` removes the key)."""
    state = {k: v for k, v in CHECKPOINT.items() if entries.get(k) is not ...}
    state |= {k: v for k, v in entries.items() if v is not ...}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def weights_with(**metadata: str) -> bytes:
    """The release run's model.safetensors with its metadata entries replaced."""
    return save_safetensors(load_safetensors(WEIGHTS), metadata=METADATA | metadata)


class _Evil:
    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (os.system, ("echo owned",))


def _pickled_code() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": _Evil()}, buffer)
    return buffer.getvalue()


CASES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "text as .pt": (".pt", lambda: b"hello world\n", "not a readable dltool checkpoint"),
    "a pickle that would run code": (".pt", _pickled_code, "not a readable dltool checkpoint"),
    "a list, not a dict": (".pt", lambda: _saved([1, 2, 3]), "no model state"),
    "no model": (".pt", lambda: checkpoint_with(model=...), "no model state"),
    "model is a list": (".pt", lambda: checkpoint_with(model=[1, 2]), "'model' entry"),
    "model holds numbers": (".pt", lambda: checkpoint_with(model={"1.weight": 3}), "'model' entry"),
    "classes is a number": (".pt", lambda: checkpoint_with(classes=5), "'classes' entry"),
    "classes are numbers": (".pt", lambda: checkpoint_with(classes=[1, 2]), "'classes' entry"),
    "in_shape is text": (".pt", lambda: checkpoint_with(in_shape="1,8,8"), "'in_shape' entry"),
    "in_shape too short": (".pt", lambda: checkpoint_with(in_shape=[8, 8]), "'in_shape' entry"),
    "in_shape of text": (".pt", lambda: checkpoint_with(in_shape=["1", "8", "8"]), "'in_shape' entry"),
    "ema is text": (".pt", lambda: checkpoint_with(ema="yes"), "'ema' entry"),
    "ema of another model": (".pt", lambda: checkpoint_with(ema={"module.x": torch.ones(2)}), "do not fit"),
    "config is text": (".pt", lambda: checkpoint_with(config="mlp"), "'config' entry"),
    "config sections are numbers": (".pt", lambda: checkpoint_with(config={"model": 3}), "'config' entry"),
    "config no longer validates": (".pt", lambda: checkpoint_with(config={"model": {"name": "nope"}}), "config"),
    "config metadata not JSON": (".safetensors", lambda: weights_with(config="{data: ["), "'config' metadata"),
    "classes metadata not JSON": (".safetensors", lambda: weights_with(classes="[0, 1"), "'classes' metadata"),
    "in_shape metadata a,b,c": (".safetensors", lambda: weights_with(in_shape="a,b,c"), "'in_shape' entry"),
    "classes metadata numbers": (".safetensors", lambda: weights_with(classes="[0, 1]"), "'classes' entry"),
    "config metadata a list": (".safetensors", lambda: weights_with(config="[1]"), "'config' entry"),
    "text as .safetensors": (".safetensors", lambda: b"hello world\n", "not readable safetensors"),
    "truncated weights": (".safetensors", lambda: WEIGHTS[: len(WEIGHTS) // 2], "not readable safetensors"),
    # torch's zip reader said "[Errno 22] Invalid argument", which reads as a disk's fault
    "checkpoint cut short": (
        ".pt",
        lambda: _saved(CHECKPOINT)[:-100],
        "(truncated or damaged: not a whole zip archive)",
    ),
    "empty checkpoint": (".pt", lambda: b"", "not a readable dltool checkpoint (empty, or cut short)"),
}


def _saved(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def assert_one_line_error(result: Any, path: Path, fault: str = "") -> None:
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and fault in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "weights_only" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_file_is_one_line_naming_it(cli, case: str, image: Path, tmp_path: Path) -> None:
    suffix, make, fault = CASES[case]
    path = tmp_path / f"model{suffix}"
    path.write_bytes(make())
    for command in (("predict", path, image), ("eval", path)):
        assert_one_line_error(cli(*command, code=1), path, fault)


def test_pickle_refusal_gives_no_unsafe_advice(cli, image: Path, tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    path.write_bytes(_pickled_code())
    stderr = cli("predict", path, image, code=1).stderr
    assert "posix.system" in stderr or "os.system" in stderr  # what was refused
    assert "weights_only" not in stderr and "trusted source" not in stderr


def test_real_processes_print_one_line(image: Path, tmp_path: Path) -> None:
    for case in ("text as .pt", "in_shape metadata a,b,c", "ema is text"):
        suffix, make, _ = CASES[case]
        path = tmp_path / f"bad{suffix}"
        path.write_bytes(make())
        result = run_dltool("predict", path, image, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr


# ---- fuzz: seeded mutations that each break the file, and random flips that may not ----

GARBAGE = ["", "x", 3, 2.5, None, [1, 2], [1.5, 8, 8], [0, 8, 8], [-1, 8, 8], {"a": 1}, b"\x00", [["1"]], True]
GARBAGE_TEXT = ["", "{", "[", "null", "[1,", "a,b,c", "1,8", "8,8,8,8", "\x00\xff", '{"model": 3}', "[]", "0,8,8"]
CHECKPOINT_KEYS = ["model", "ema", "classes", "in_shape", "config"]
METADATA_KEYS = ["config", "classes", "in_shape"]


def _truncated(rng: random.Random, blob: bytes) -> bytes:
    return blob[: rng.randrange(0, len(blob) - 1)]


def _flipped_length(rng: random.Random, blob: bytes) -> bytes:
    # The 8-byte header length of a safetensors file: any other value misplaces the data.
    position = rng.randrange(0, 3)
    return blob[:position] + bytes([blob[position] ^ rng.randrange(1, 256)]) + blob[position + 1 :]


def _wrong_entry(rng: random.Random) -> bytes:
    key = rng.choice(CHECKPOINT_KEYS)
    return checkpoint_with(**{key: rng.choice(GARBAGE)})


def _garbage_metadata(rng: random.Random) -> bytes:
    key = rng.choice(METADATA_KEYS)
    return weights_with(**{key: rng.choice(GARBAGE_TEXT)})


def _flipped(rng: random.Random, blob: bytes) -> bytes:
    data = bytearray(blob)
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
    return bytes(data)


def broken_files(rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    """``count`` (suffix, bytes) pairs, each certainly not a loadable dltool model."""
    pt = (FIXTURE / "checkpoints" / "last.pt").read_bytes()
    makers = [
        lambda: (".pt", _truncated(rng, pt)),
        lambda: (".safetensors", _truncated(rng, WEIGHTS)),
        lambda: (".safetensors", _flipped_length(rng, WEIGHTS)),
        lambda: (".pt", _wrong_entry(rng)),
        lambda: (".safetensors", _garbage_metadata(rng)),
    ]
    return [rng.choice(makers)() for _ in range(count)]


def test_fuzz_broken_files_are_one_line_each(fast_cli, image: Path, tmp_path: Path) -> None:
    rng = random.Random(18)
    for number, (suffix, blob) in enumerate(broken_files(rng, 240)):
        path = tmp_path / f"fuzz-{number}{suffix}"
        path.write_bytes(blob)
        command = ("predict", path, image) if number % 2 else ("eval", path)
        assert_one_line_error(fast_cli(*command, code=1), path)
        path.unlink()


def test_fuzz_random_flips_never_give_a_traceback(fast_cli, image: Path, tmp_path: Path) -> None:
    """A flip in tensor data or in a number of the config can leave a loadable model: then
    predict succeeds. Either way, never a traceback and never more than one error line."""
    rng = random.Random(1815)
    sources = {".pt": (FIXTURE / "checkpoints" / "last.pt").read_bytes(), ".safetensors": WEIGHTS}
    failures = 0
    for number in range(100):
        suffix = rng.choice(list(sources))
        path = tmp_path / f"flip-{number}{suffix}"
        path.write_bytes(_flipped(rng, sources[suffix]))
        result = fast_cli.runner.invoke(app, ["predict", str(path), str(image)], catch_exceptions=False)
        if result.exit_code == 0:
            assert len(result.stdout.splitlines()) == 2  # the header and the image's row
        else:
            failures += 1
            assert_one_line_error(result, path)
    assert failures > 0


@pytest.mark.parametrize(
    ("entries", "fault"),
    [
        ({"optimizer": {}}, "training state does not fit"),
        ({"progress": {"laps": 3}}, "training state does not fit"),
        ({"rng": {"python": 1}}, "training state does not fit"),
        ({"config": ...}, "not a full training state (no config)"),
        ({"scaler": [1]}, "'scaler' entry"),
    ],
)
def test_resume_from_a_malformed_checkpoint_is_one_line(cli, entries: dict, fault: str, tmp_path: Path) -> None:
    run = Path(shutil.copytree(FIXTURE, tmp_path / "run"))
    (run / "checkpoints" / "last.pt").write_bytes(checkpoint_with(**entries))
    result = cli("train", "--resume", run, "--epochs", "3", code=1)
    assert_one_line_error(result, run / "checkpoints" / "last.pt", fault)


def test_resume_from_a_damaged_last_checkpoint_says_what_to_do_instead(cli, tmp_path: Path) -> None:
    """It said only "not a readable dltool checkpoint": no next step."""
    run = Path(shutil.copytree(FIXTURE, tmp_path / "run"))
    last = run / "checkpoints" / "last.pt"
    good = last.read_bytes()
    last.write_bytes(good[: len(good) // 2])  # truncated
    result = cli("train", "--resume", run, "--epochs", "3", code=1)
    assert_one_line_error(result, last, "truncated or damaged")
    assert "its best weights (model.safetensors) still serve eval, predict and export" in result.stderr
    assert f"to train again, start a new run from its config: dltool train {run / 'config.yaml'}" in result.stderr
    # Kept epochs: the latest is a hard link of last.pt (train.keep_checkpoints), damaged with it.
    (run / "checkpoints" / "epoch-0001.pt").write_bytes(good)
    os.link(last, run / "checkpoints" / "epoch-0002.pt")
    result = cli("train", "--resume", run, "--epochs", "3", code=1)
    earlier = run / "checkpoints" / "epoch-0001.pt"
    step = f"start a new run from epoch 1's weights: dltool train {run / 'config.yaml'} --init-from {earlier}"
    assert step in result.stderr
    new = cli("train", run / "config.yaml", "--init-from", earlier, "--epochs", "1", "--runs-dir", tmp_path, "-q")
    assert json.loads((Path(new.stdout.strip()) / "summary.json").read_text())["status"] == "completed"


def test_a_runs_damaged_best_weights_name_the_checkpoint_that_stands_in(cli, tmp_path: Path) -> None:
    """eval, predict and export stopped at "not readable safetensors weights", no next step."""
    run = Path(shutil.copytree(FIXTURE, tmp_path / "run"))
    (run / "model.safetensors").write_bytes(WEIGHTS[:500])
    last = run / "checkpoints" / "last.pt"
    image = tmp_path / "digit.png"
    Image.new("L", (8, 8), 90).save(image)
    commands = [["eval", run], ["predict", run, image], ["export", run, "--output", tmp_path / "m.onnx"]]
    commands += [["stats", run], ["stats", run / "model.safetensors"]]  # stats too gave no next step
    for args in commands:
        result = cli(*args, code=1)
        assert_one_line_error(result, run / "model.safetensors", "not readable safetensors weights")
        assert result.stderr.rstrip().endswith(f"; the run's last epoch can stand in for its best: give {last} instead")
    assert json.loads(cli("eval", last, "--json").stdout)["n"] > 0
