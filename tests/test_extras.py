"""Optional dependencies live in extras: the base install needs neither a compiler nor libpq,
and a feature whose extra is missing stops with exit 2 and the line that installs it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

from dltool.errors import UsageError

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
# Makes `import NAME` fail in a dltool process, as when its extra is not installed.
BLOCK = "import sys; sys.modules.update(dict.fromkeys({names!r})); from dltool.cli import main; sys.argv[0] = 'dltool'; main()"


def blocked(*names: str) -> list[str]:
    return ["-c", BLOCK.format(names=list(names))]


def test_the_base_install_has_no_database_driver_or_cma_es() -> None:
    base = " ".join(PYPROJECT["project"]["dependencies"]).lower()
    assert not any(name in base for name in ("psycopg", "cmaes"))
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert extras["postgres"] == ["psycopg[binary]>=3.2"] and extras["cmaes"] == ["cmaes>=0.11"]
    assert {"postgres", "cmaes"} <= set(extras["dev"][0].split("[")[1].rstrip("]").split(","))


def test_a_postgresql_storage_without_a_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from dltool.tuning.storage import check_storage

    monkeypatch.setitem(sys.modules, "psycopg", None)
    # The older driver is enough when it is installed (CI installs only psycopg 3: an empty module stands in).
    monkeypatch.setitem(sys.modules, "psycopg2", sys.modules.get("psycopg2") or types.ModuleType("psycopg2"))
    assert check_storage("postgresql://me@db/studies", 1).startswith("postgresql+psycopg2://")
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(UsageError) as error:
        check_storage("postgresql://me:secret@db/studies", 1)
    assert str(error.value) == (
        "storage='postgresql://me@db/studies': psycopg is not installed; pip install 'dltool[postgres]'"
    )


def test_tune_with_cmaes_missing_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text("optimizer.lr: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    args = ["tune", "digits-mlp", "--space", "space.yaml", "--sampler", "cmaes", "--trials", "1", "--epochs", "1"]
    result = subprocess.run(
        [sys.executable, *blocked("cmaes"), *args], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 2, result.stderr
    assert "--sampler cmaes: cmaes is not installed; pip install 'dltool[cmaes]'" in result.stderr


def test_a_heic_photo_is_read_with_pillow_heif_and_without_it_skipped_naming_the_extra(
    tmp_path: Path, digits_run: Path
) -> None:
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()  # for the test to write one; each dltool process registers its own
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "IMG_0001.HEIC")
    command = ["predict", str(digits_run), str(tmp_path)]
    read = subprocess.run([sys.executable, "-m", "dltool", *command], capture_output=True, text=True)
    assert read.returncode == 0 and read.stderr == "" and "IMG_0001.HEIC" in read.stdout
    skipped = subprocess.run([sys.executable, *blocked("pillow_heif"), *command], capture_output=True, text=True)
    assert skipped.returncode == 0, skipped.stderr
    assert "IMG_0001.HEIC: a HEIC/HEIF photo: pip install 'dltool[heif]' to read it" in skipped.stderr
    assert skipped.stdout.count("\n") == 1 + 1  # the header and ok.png's row
