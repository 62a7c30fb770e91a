"""``dltool predict MODEL.onnx``: every predicting task's rows without importing torch, equal
to the rows of the run the export came from, unreadable files named and counted.

The torch-free runs are real ``dltool`` processes started through a probe that prints the
heavy modules in ``sys.modules`` after the command, under ``-X importtime`` (which reports
every import of every process, the forked decoding processes' too); the same probe on the
run dir itself sees torch, so the check can fail."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltool import api
from pointdata import points_folder, read_points
from shapes import shapes_dataset

HEAVY = ("torch", "torchvision", "timm")
PROBE = f"""
import json, sys
from dltool.cli import main
code = 0
try:
    main()
except SystemExit as done:
    code = done.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print("HEAVY MODULES " + json.dumps(heavy), file=sys.stderr)
sys.exit(code)
"""
IMPORTED = re.compile(r"^import time:.*\|\s*(torch|torchvision|timm)(\.\S*)?\s*$", re.MULTILINE)
SMALL = {"train.epochs": 1, "train.batch_size": 8, "train.device": "cpu"}


def probe(*args: object) -> tuple[subprocess.CompletedProcess, list[str], list[str]]:
    """``dltool ARGS`` in a fresh process: its result, the heavy modules it had loaded at the
    end, and the heavy imports ``-X importtime`` saw in it and its children."""
    command = [sys.executable, "-X", "importtime", "-c", PROBE, *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    marker = re.search(r"^HEAVY MODULES (.*)$", result.stderr, re.MULTILINE)
    assert marker is not None, result.stderr[-2000:]
    return result, json.loads(marker.group(1)), [m.group(1) for m in IMPORTED.finditer(result.stderr)]


def photos(folder: Path, count: int) -> Path:
    """Two classes of non-square JPEG photos (a bright corner for one class), of varied sizes."""
    rng = np.random.default_rng(0)
    for i in range(count):
        width, height = 40 + 4 * (i % 5), 28 + 2 * (i % 3)
        pixels = rng.integers(0, 120, (height, width, 3)).astype(np.uint8)
        label = "ab"[i % 2]
        if label == "b":
            pixels[: height // 2, : width // 2] = 230
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / label / f"{i:02d}.jpg", quality=90)
    return folder


def values_folder(dots: Path, root: Path) -> Path:
    """The dots' red point as named regression targets (``targets.csv``)."""
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / split / "images").symlink_to(dots / split / "images")
        points = read_points(dots / split / "points.csv")
        rows = [f"{name},{p[0, 0]:g},{p[0, 1]:g}" for name, p in points.items()]
        (root / split / "targets.csv").write_text("file,red_x,red_y\n" + "\n".join(rows) + "\n")
    return root


def _train(overrides: dict, runs: Path, recipe: str = "digits-mlp") -> Path:
    return api.train(recipe, overrides={**SMALL, **overrides}, runs_dir=runs).run_dir


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[Path]]]:
    """Per predicting task: a one-epoch run and the image files to predict."""
    work = tmp_path_factory.mktemp("onnx-predict")
    folder = photos(work / "photos", 16)
    dots = points_folder(work / "dots", {"train": 32, "val": 8}, scale=2)
    points = {"model.head": "keypoints", "loss.name": "mse", "data.image_size": 16, "data.crop_pct": 1.0}
    regression = {**points, "model.head": "regression", "data.name": str(values_folder(dots, work / "values"))}
    dot_files = sorted((dots / "val" / "images").glob("*.png"))
    return {
        "classification": (
            _train({"data.name": str(folder), "data.image_size": 12, "data.channels": 3}, work / "runs"),
            sorted(folder.rglob("*.jpg")),
        ),
        "keypoints": (_train({**points, "data.name": str(dots)}, work / "runs"), dot_files),
        "regression": (_train(regression, work / "runs"), dot_files),
    }


def _exported(run: Path, cli) -> Path:
    path = run / "export" / "model.onnx"
    if not path.exists():
        cli("export", run, "--to", "onnx", "--output", path)
    return path


def _with_bad_files(files: list[Path], tmp_path: Path) -> list[str]:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return [*map(str, files[:5]), str(tmp_path / "broken.png"), str(tmp_path / "missing.jpg"), *map(str, files[5:])]


@pytest.mark.parametrize("task", ["classification", "keypoints", "regression"])
def test_an_onnx_export_gives_the_run_s_rows_without_importing_torch(task, cases, cli, tmp_path: Path) -> None:
    run, files = cases[task]
    inputs = _with_bad_files(files, tmp_path)
    options = ["--format", "jsonl", "--batch-size", "3", *(["--top-k", "5"] if task == "classification" else [])]
    result, modules, imported = probe("predict", _exported(run, cli), *inputs, *options)
    assert result.returncode == 0, result.stderr[-2000:]
    assert modules == [] and imported == []
    assert "2 inputs could not be read" in result.stderr
    assert f"skipped {tmp_path / 'broken.png'}" in result.stderr and "missing.jpg" in result.stderr
    ours = [json.loads(line) for line in result.stdout.splitlines()]
    theirs = [json.loads(line) for line in cli("predict", run, *inputs, *options).stdout.splitlines()]
    assert [row["path"] for row in ours] == [row["path"] for row in theirs] == list(map(str, files))
    for mine, torch_row in zip(ours, theirs):
        assert mine.keys() == torch_row.keys()
        np.testing.assert_allclose(_numbers(mine), _numbers(torch_row), atol=1e-4 if task == "classification" else 1e-3)


def _numbers(row: dict) -> list[float]:
    """A row's numbers in a fixed order: scores by label, points by name, values by name."""
    if "top_k" in row:
        return [score for _, score in sorted((t["label"], t["score"]) for t in row["top_k"])]
    if "points" in row:
        return [v for name in sorted(row["points"]) for v in (row["points"][name]["x"], row["points"][name]["y"])]
    return [row["values"][name] for name in sorted(row["values"])]


def test_the_probe_sees_torch_where_the_run_itself_predicts(cases, tmp_path: Path) -> None:
    run, files = cases["classification"]
    result, modules, imported = probe("predict", run, *files[:2], "--format", "csv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "torch" in modules and "torch" in imported


def test_segmentation_masks_and_overlays_without_torch(cli, tmp_path: Path) -> None:
    shapes = shapes_dataset(tmp_path / "shapes", train=16, val=4, test=6)
    overrides = {"data.name": str(shapes), "model.name": "unet", "model.depth": 2, "model.width": 8}
    run = _train(overrides, tmp_path / "runs")
    images = sorted(map(str, (shapes / "test" / "images").glob("*.png")))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    inputs = [*images[:3], str(tmp_path / "broken.png"), *images[3:]]
    options = ["--overlay", "--batch-size", "2"]
    result, modules, imported = probe("predict", _exported(run, cli), *inputs, "--out", tmp_path / "onnx", *options)
    assert result.returncode == 0, result.stderr[-2000:]
    assert modules == [] and imported == []
    assert "1 input could not be read" in result.stderr
    theirs = cli("predict", run, *inputs, "--out", tmp_path / "torch", *options).stdout
    assert result.stdout.replace("/onnx/", "/torch/") == theirs
    written = sorted(p.relative_to(tmp_path / "torch") for p in (tmp_path / "torch").rglob("*.png"))
    assert len(written) == 2 * len(images)
    for name in written:
        mask, theirs_mask = (np.asarray(Image.open(tmp_path / side / name)) for side in ("onnx", "torch"))
        assert np.mean(mask == theirs_mask) > 0.999, name
