"""A run dir as release 0.1.0 wrote it (tests/fixtures/runs/digits-mlp-0.1.0: a 2-epoch MLP on
digits) keeps working: eval scores it as 0.1.0 did, predict and export read it, --resume
continues it. The format may evolve; users' runs must not be stranded by it."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURE = Path(__file__).parent / "fixtures" / "runs" / "digits-mlp-0.1.0"
SAVED_EVAL = FIXTURE.with_name(FIXTURE.name + ".eval-test.json")


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A copy of the fixture: the commands write into the run dir."""
    return Path(shutil.copytree(FIXTURE, tmp_path / FIXTURE.name))


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    paths = []
    for i in range(6):
        path = tmp_path / "images" / f"digit{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def test_eval_scores_it_as_release_0_1_0_did(cli, run: Path) -> None:
    document = json.loads(cli("eval", run, "--json").stdout)
    saved = json.loads(SAVED_EVAL.read_text())
    assert Path(document.pop("checkpoint")) == run / "model.safetensors"
    saved.pop("checkpoint")
    # Counts and accuracy exactly; float scores to 1e-6: their sums' rounding depends on the
    # CPU's vector width and thread count, not on anything the run dir format decides.
    # Metrics added since (ROC AUC, average precision) are extra keys; the saved ones are unchanged.
    document = {key: document[key] for key in saved}
    document["per_class"] = {
        c: {k: scores[k] for k in saved["per_class"][c]} for c, scores in document["per_class"].items()
    }
    floats = {key for key, value in saved.items() if isinstance(value, float)}
    assert {k: document[k] for k in floats} == pytest.approx({k: saved[k] for k in floats}, rel=1e-6)
    assert {k: v for k, v in document.items() if k not in floats} == {k: v for k, v in saved.items() if k not in floats}
    assert json.loads((run / "eval-test.json").read_text())["accuracy"] == saved["accuracy"]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_and_export_read_it(cli, run: Path, images: list[Path]) -> None:
    rows = _rows(cli("predict", run, *images, "--format", "csv").stdout)
    classes = json.loads((run / "classes.json").read_text())
    assert [Path(row["path"]).name for row in rows] == [path.name for path in images]
    assert {row["label"] for row in rows} <= set(classes)
    exported = Path(cli("export", run, "--to", "torchscript").stdout.strip())
    assert exported.is_file() and exported.is_relative_to(run)
    from_export = _rows(cli("predict", exported, *images, "--format", "csv").stdout)
    assert [row["label"] for row in from_export] == [row["label"] for row in rows]


def test_resume_continues_it(cli, run: Path) -> None:
    assert cli("train", "--resume", run, "--epochs", "3", "-q").stdout.strip() == str(run)
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["epochs_run"]) == ("completed", 3)
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
