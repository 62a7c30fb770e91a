"""Shared fixtures: no test touches user state; CLI and subprocess helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dltool.cli import app

REPO = Path(__file__).resolve().parent.parent

# Runs compared for identical weights need one thread count, in this process (torch reads it
# when first used) and in every dltool subprocess, and `threads: auto` may time both settings
# and choose by the machine's load, which xdist's other worker changes. With this set auto
# takes torch's count and times nothing; the tests of auto itself remove it (monkeypatch).
os.environ["OMP_NUM_THREADS"] = "1"


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
    # Pretrained weights: the libraries' caches in tmp_path, and never the network.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("DLTOOL_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
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


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A one-epoch digits-mlp run, trained once for the test module that asks for it."""
    from dltool.config import load_config
    from dltool.engine import train
    from dltool.rundir import create_run_dir

    os.environ["DLTOOL_DATA"] = str(data_dir)
    config = load_config("digits-mlp", ["train.epochs=1"])
    return train(config, create_run_dir(tmp_path_factory.mktemp("runs"), "digits")).run_dir


def dltool_command(*args: str) -> list[str]:
    """A real ``dltool`` process: the interpreter running the tests, ``-m dltool``."""
    return [sys.executable, "-m", "dltool", *map(str, args)]


def run_dltool(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, **kwargs.pop("env", {})}
    result = subprocess.run(dltool_command(*args), capture_output=True, text=True, env=env, **kwargs)
    if check:
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    return result


def make_autoencoder_run(
    run_dir: Path, in_shape: tuple[int, ...], *, model: dict | None = None, metadata_shape: bool = True
) -> Path:
    """A finished-looking autoencoder run: ``config.yaml`` and ``model.safetensors`` (random weights).

    ``model`` replaces the model section (another model, other widths); the weights are saved
    from the model it names, with ``in_shape`` in their metadata as ``dltool train`` writes it.
    """
    import torch

    from dltool._io import atomic_write_text
    from dltool._yaml import dump_yaml
    from dltool.config import validate_config
    from dltool.engine.checkpoint import save_weights
    from dltool.models.build import build_model

    section = model or {"name": "autoencoder", "latent_dim": 6, "widths": [4, 8]}
    loss = "mse" if section["name"] == "autoencoder" else "cross_entropy"
    config = validate_config({"model": section, "loss": {"name": loss}})
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(config.to_dict()))
    torch.manual_seed(1)
    network = build_model(config.model, in_shape=in_shape, num_classes=10)
    for buffer in network.buffers():  # non-default BN statistics, to see that they are loaded
        if buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    metadata = {"in_shape": ",".join(map(str, in_shape))} if metadata_shape else {}
    save_weights(run_dir / "model.safetensors", network, metadata)
    return run_dir


@pytest.fixture(scope="session")
def required_params(tmp_path_factory: pytest.TempPathFactory):
    """``required_params(entry, in_shape)``: values for the parameters an entry has no default for.

    Keyed by parameter name, so a new entry with such a parameter fails here until it gets
    an example value.
    """
    runs: dict[tuple[int, ...], str] = {}

    def encoder_run(in_shape: tuple[int, ...]) -> str:
        if in_shape not in runs:
            runs[in_shape] = str(make_autoencoder_run(tmp_path_factory.mktemp("autoencoder-run"), in_shape))
        return runs[in_shape]

    makers = {"encoder_run": encoder_run}

    def values(entry, in_shape: tuple[int, ...]) -> dict:
        fields = entry.params.model_fields
        return {k: makers[k](in_shape) for k, f in fields.items() if f.is_required() and k != "name"}

    return values


def write_digit_images(folder: Path, count: int, grow: int = 3) -> Path:
    """``count`` digits as PNGs of growing sizes (8 + ``grow``·i px), grey and RGB in turn:
    other sizes and modes than training's 8×8 grey."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    for i, pixels in enumerate(load_digits().images[:count]):
        image = Image.fromarray((pixels * 255 / 16).astype(np.uint8)).resize((8 + grow * i,) * 2)
        image.convert("RGB" if i % 2 else "L").save(folder / f"{i:02d}.png")
    return folder


def folder_with_val(root: Path) -> Path:
    """An image folder with train/ and val/ splits of two classes, four 8×8 images each."""
    import numpy as np
    from PIL import Image

    for split in ("train", "val"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(4):
                pixels = np.full((8, 8), 40 * i + (100 if label == "b" else 0), np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    return root


class StopAfter:
    """A ``stop`` for ``engine.train`` that fires after ``checks`` checks (one per optimizer step
    and one per validation batch)."""

    def __init__(self, checks: int) -> None:
        self.checks = checks

    def is_set(self) -> bool:
        self.checks -= 1
        return self.checks < 0


def metrics_without_times(run: Path) -> list[dict]:
    """A run's metrics.jsonl records, less the wall-clock fields (which never repeat)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in {"epoch_time_s", "samples_per_s"}} for line in lines]


@pytest.fixture
def small_fs(tmp_path: Path):
    """A fresh 4 MiB tmpfs (a filesystem a test can fill), or a skip saying why there is none:
    mounting needs root (CI runs as root) and a kernel that allows it."""
    import shutil

    mount = tmp_path / "small-fs"
    mount.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command to make a small filesystem")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if made.returncode:
        pytest.skip(f"cannot mount a small tmpfs: {made.stderr.strip() or made.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def as_user(tmp_path: Path) -> list[str]:
    """A command prefix under which permission bits bite: none for a user who is not root;
    for root (CI), setpriv dropping the capabilities that override them, or a skip."""
    import shutil

    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    shut = tmp_path / "as-user-probe"
    shut.mkdir(mode=0o555)
    dropped = shutil.which("setpriv") and subprocess.run([*prefix, "touch", shut / "x"], capture_output=True).returncode
    if not dropped:
        pytest.skip("cannot drop root's permission override (no setpriv, or it is not allowed)")
    return prefix


@pytest.fixture
def read_only_fs(small_fs: Path) -> Path:
    """``small_fs`` remounted read-only (EROFS for every write, root's included), or a skip."""
    made = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot remount a tmpfs read-only: {made.stderr.strip() or made.returncode}")
    return small_fs
