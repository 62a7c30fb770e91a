"""Segmentation end to end: a tiny U-Net learns generated shapes; eval, predict, export,
visualize, tune and the Python API agree with each other and with NumPy."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import dltool
from dltool.errors import UsageError
from events import events, logs_every_epoch, scalars
from shapes import CLASSES, shapes_dataset

CONFIG = {
    "data": {"augment": {"flip": True}},
    "model": {"name": "unet", "depth": 2, "width": 8},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 8, "batch_size": 16, "monitor": {"metric": "val_miou"}, "tensorboard": True},
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shapes_dataset(tmp_path_factory.mktemp("seg") / "shapes", train=48, val=12, test=12)


@pytest.fixture(scope="module")
def recipe(shapes: Path) -> Path:
    path = shapes.parent / "seg.yaml"
    config = {**CONFIG, "data": {**CONFIG["data"], "name": str(shapes)}}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def run(recipe: Path, shapes: Path, data_dir: Path) -> Path:
    os.environ["DLTOOL_DATA"] = str(data_dir)
    return dltool.train(recipe, runs_dir=shapes.parent / "runs").run_dir


def _miou_from_files(predicted: list[Path], truth: list[Path], classes: int) -> tuple[float, np.ndarray]:
    """mIoU (classes in truth or prediction) and per-class IoU recomputed from mask files."""
    confusion = np.zeros((classes, classes), np.int64)
    for mine, true in zip(predicted, truth, strict=True):
        p, t = np.asarray(Image.open(mine)).ravel(), np.asarray(Image.open(true)).ravel()
        keep = t != 255
        np.add.at(confusion, (t[keep], p[keep]), 1)
    hits = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - hits
    iou = hits[union > 0] / union[union > 0]
    return float(iou.mean()), iou


def test_a_tiny_unet_learns_the_shapes(run: Path) -> None:
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["best"]["metric"] == "val_miou"
    assert summary["test"]["miou"] > 0.6 and summary["test"]["pixel_accuracy"] > 0.85
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"val_miou", "val_pixel_acc"} <= records[-1].keys() and records[-1]["val_miou"] > records[0]["val_miou"]
    assert json.loads((run / "classes.json").read_text()) in (
        CLASSES,
        dict(enumerate(CLASSES)),
        {str(k): c for k, c in enumerate(CLASSES)},
    )
    assert logs_every_epoch(run)  # val_miou and val_pixel_acc too, read back by TensorBoard's reader
    logged = scalars(events(run))
    assert logged["test_miou"] == [(records[-1]["epoch"], pytest.approx(summary["test"]["miou"]))]


def test_eval_miou_is_numpy_s_from_the_masks_predict_wrote(cli, run: Path, shapes: Path, tmp_path: Path) -> None:
    document = json.loads(cli("eval", run, "--json").stdout)
    assert document["n"] == 12 and document["absent_classes"] == []
    assert list(document["per_class"]) == CLASSES and len(document["confusion_matrix"]) == 3
    table = cli("eval", run).stderr
    assert "iou" in table and "disc" in table and "miou" in table
    out = tmp_path / "masks"
    rows = cli("predict", run, shapes / "test" / "images", "--out", out).stdout.splitlines()
    assert rows[0] == "path,mask,overlay,classes" and len(rows) == 13
    truth = sorted((shapes / "test" / "masks").iterdir())
    miou, iou = _miou_from_files([out / path.name for path in truth], truth, 3)
    assert document["miou"] == pytest.approx(miou, abs=1e-12)
    np.testing.assert_allclose([document["per_class"][c]["iou"] for c in CLASSES], iou, atol=1e-12)
    assert dltool.evaluate(run).document["miou"] == document["miou"]


def test_a_mask_row_without_an_overlay_has_none_in_every_format(cli, run: Path, shapes: Path, tmp_path: Path) -> None:
    # jsonl and Parquet said "" (a path that is no file) where no overlay was asked for.
    image = sorted((shapes / "test" / "images").iterdir())[0]
    row = json.loads(cli("predict", run, image, "--out", tmp_path / "m", "--format", "jsonl").stdout)
    assert row["overlay"] is None and Path(row["mask"]).is_file()
    cli("predict", run, image, "--out", tmp_path / "m", "--output", tmp_path / "rows.parquet")
    assert pd.read_parquet(tmp_path / "rows.parquet")["overlay"].isna().all()
    csv_row = cli("predict", run, image, "--out", tmp_path / "m").stdout.splitlines()[1]
    assert csv_row.split(",")[2] == ""


def test_predict_writes_each_mask_at_its_image_s_size_with_overlays(
    cli, run: Path, shapes: Path, tmp_path: Path
) -> None:
    big = tmp_path / "in" / "big.jpg"
    big.parent.mkdir()
    Image.open(shapes / "test" / "images" / "s2_000.png").resize((48, 40)).save(big)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    result = cli("predict", run, tmp_path / "in", "--out", tmp_path / "out", "--overlay", "--format", "jsonl")
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["path"] == str(big) and row["classes"] == CLASSES
    mask = Image.open(row["mask"])
    assert mask.size == (48, 40) and mask.mode == "P" and set(np.unique(mask)) <= {0, 1, 2}
    assert Image.open(row["overlay"]).size == (48, 40) and Path(row["overlay"]).parent.name == "overlays"
    assert "skipped" in result.stderr and "broken.png" in result.stderr
    cli("predict", run, tmp_path / "in", "--out", tmp_path / "out", "--strict", code=1)
    api = dltool.segment(run, [big], tmp_path / "api")
    assert [r.mask for r in api.rows] == [str(tmp_path / "api" / "big.png")] and not api.unreadable
    # dltool.predict said "predict has no rows ... (score it with dltool eval)": no word of segment().
    with pytest.raises(UsageError, match=r"predicts mask images, written by dltool\.segment\("):
        dltool.predict(run, [big])


def test_predict_replaces_its_own_masks_but_no_ground_truth_mask_or_input_without_force(
    cli, run: Path, shapes: Path, tmp_path: Path
) -> None:
    pool = shutil.copytree(shapes / "test", tmp_path / "pool")
    image, truth = pool / "images" / "s2_000.png", pool / "masks" / "s2_000.png"
    before = truth.read_bytes()
    refused = cli("predict", run, image, "--out", pool / "masks", code=2).stderr
    assert "masks/s2_000.png already exists (and is not a dltool predict output)" in refused
    assert "or choose another --out folder" in refused  # not "another file": --out names a folder
    assert truth.read_bytes() == before
    assert "is an input of dltool predict" in cli("predict", run, image, "--out", pool / "images", code=2).stderr
    assert "is a file" in cli("predict", run, image, "--out", truth, code=2).stderr
    for _ in range(2):  # a second run replaces the masks and overlays the first wrote
        cli("predict", run, image, "--out", tmp_path / "mine", "--overlay")
    cli("predict", run, image, "--out", pool / "masks", "--force")
    assert truth.read_bytes() != before


def test_predict_output_gets_the_rows_of_the_masks_in_the_format_of_its_suffix(
    cli, run: Path, shapes: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    images = shapes / "test" / "images"
    on_stdout = cli("predict", run, images, "--out", tmp_path / "masks").stdout.splitlines()
    for name in ("rows.csv", "rows.parquet"):
        result = cli("predict", run, images, "--out", tmp_path / "masks", "--output", tmp_path / name)
        assert result.stdout == ""
    assert (tmp_path / "rows.csv").read_text().splitlines() == on_stdout
    table = pq.read_table(tmp_path / "rows.parquet").to_pylist()
    from_csv = pd.read_csv(tmp_path / "rows.csv", keep_default_na=False).to_dict("records")
    for row in from_csv:
        row["overlay"], row["classes"] = row["overlay"] or None, json.loads(row["classes"])  # null: no overlay
    assert table == from_csv


def test_mask_rows_keep_class_names_with_spaces_apart_in_every_format(cli, tmp_path: Path) -> None:
    # The classes cell was the names joined by spaces: "open sky blue square" read as 4 names.
    spaced = ["open sky", "red, disc", 'blue "square"']
    shapes = shapes_dataset(tmp_path / "spaced", train=8, val=4, test=4)
    (shapes / "classes.txt").write_text("\n".join(spaced) + "\n")
    config = {**CONFIG, "data": {"name": str(shapes)}, "train": {"epochs": 1, "batch_size": 8}}
    (tmp_path / "seg.yaml").write_text(yaml.safe_dump(config))
    run = dltool.train(tmp_path / "seg.yaml", runs_dir=tmp_path / "runs").run_dir
    images, out = shapes / "test" / "images", tmp_path / "masks"
    shown = [row.classes for row in dltool.segment(run, images, out).rows]
    assert shown and all(set(names) <= set(spaced) for names in shown)
    jsonl = cli("predict", run, images, "--out", out, "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["classes"] for line in jsonl] == shown
    cli("predict", run, images, "--out", out, "--output", tmp_path / "rows.csv")
    assert [json.loads(cell) for cell in pd.read_csv(tmp_path / "rows.csv")["classes"]] == shown
    cli("predict", run, images, "--out", out, "--output", tmp_path / "rows.parquet")
    assert [list(cell) for cell in pd.read_parquet(tmp_path / "rows.parquet")["classes"]] == shown


@pytest.mark.parametrize("loader", ["memory", "stream"])
def test_augmentations_grid_draws_each_mask_moved_with_its_image(
    cli, recipe: Path, loader: str, tmp_path: Path
) -> None:
    # The grid showed the augmented images alone: nothing showed the masks following them.
    from dltool.config import load_config
    from dltool.viz import augmentations

    augment = "data.augment={flip: true, vflip: true, affine: {degrees: 30}}"
    config = load_config(str(recipe), [augment, f"data.loader={loader}", "data.image_size=32"])
    draws = augmentations.draw_rows(config, 4, 2)
    for images, masks in zip(draws.rows, draws.targets, strict=True):
        red = images[:, 0] > 150  # discs are (230, 60, 40), squares (40, 200, 230), the rest below 60
        assert masks.shape == (4, 32, 32) and ((masks == 1) == red).mean() > 0.97
    drawn = augmentations.augmentations_figure(config, draws)
    assert all(len(ax.images) == 2 for ax in drawn.axes if ax.images)  # each image under its mask
    (tmp_path / "aug.yaml").write_text(yaml.safe_dump({"base": str(recipe), "data": {"loader": loader}}))
    result = cli("visualize", tmp_path / "aug.yaml", "--augmentations", "--out", tmp_path / "grid")
    assert result.stdout.split() == [str(tmp_path / "grid" / "augmentations.png")] and "not drawn" not in result.stderr


def test_binary_masks_saved_as_0_and_255_are_refused_with_the_reason(cli, tmp_path: Path) -> None:
    for folder in ("images", "masks"):
        (tmp_path / "binary" / folder).mkdir(parents=True)
    for k in range(6):
        mask = np.zeros((16, 16), np.uint8)
        mask[4:12, 4:12] = 255  # the foreground, as many tools save it; 255 is "ignore" here
        Image.fromarray(mask).save(tmp_path / "binary" / "masks" / f"{k}.png")
        Image.fromarray(mask).convert("RGB").save(tmp_path / "binary" / "images" / f"{k}.png")
    result = cli("train", "shapes-unet", "--dataset", tmp_path / "binary", "--dry-run", code=1)
    assert "1 class (0)" in result.stderr and "save a 0/255 mask's foreground as 1" in result.stderr
    assert "a folder per class" not in result.stderr


def test_options_that_do_not_fit_segmentation_are_usage_errors(cli, run: Path, recipe: Path, shapes: Path) -> None:
    image = shapes / "test" / "images" / "s2_000.png"
    assert "--out DIR" in cli("predict", run, image, code=2).stderr
    assert "--top-k" in cli("predict", run, image, "--out", "o", "--top-k", "2", code=2).stderr
    assert "add --output FILE.parquet" in cli("predict", run, image, "--out", "o", "--format", "parquet", code=2).stderr
    runs = shapes.parent / "refused"
    for extra, said in [
        (("--set", "train.tta=flip"), "train.tta"),
        (("--set", "data.augment.mixup=0.2"), "data.augment.mixup"),
        (("--set", "data.augment.auto=trivial"), "data.augment.auto"),
        (("--set", "train.monitor.metric=val_acc"), "val_acc"),
        (("--model", "cnn", "--set", "train.monitor.metric=val_loss"), "has masks; model 'cnn' is a classification"),
        (("--set", "data.train_per_class=3"), "data.train_per_class"),
        (("--set", "loss.name=bce_with_logits"), "does not suit the segmentation task"),
    ]:
        assert said in cli("train", recipe, "--runs-dir", runs, *extra, code=2).stderr
    assert "segmentation model" in cli("train", "digits-mlp", "--model", "unet", "--runs-dir", runs, code=2).stderr


def test_onnx_export_is_verified_and_predicts_the_same_masks(cli, run: Path, shapes: Path, tmp_path: Path) -> None:
    result = cli("export", run, "--format", "onnx", "--output", tmp_path / "seg.onnx")
    assert "verified with onnxruntime" in result.stderr
    sidecar = json.loads((tmp_path / "seg.onnx.json").read_text())
    assert sidecar["task"] == "segmentation" and sidecar["output"]["shape"] == ["batch", 3, 32, 32]
    images = shapes / "test" / "images"
    cli("predict", tmp_path / "seg.onnx", images, "--out", tmp_path / "onnx")
    cli("predict", run, images, "--out", tmp_path / "torch")
    for path in sorted((tmp_path / "torch").glob("*.png")):
        np.testing.assert_array_equal(
            np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / "onnx" / path.name))
        )


def test_an_int8_export_is_held_to_the_runs_miou(cli, run: Path, shapes: Path, tmp_path: Path) -> None:
    # The U-Net's graph is one that onnxruntime's symbolic shape inference gives up on.
    result = cli("export", run, "--int8", "--max-drop", "0.05", "--output", tmp_path / "seg.int8.onnx")
    check = json.loads((tmp_path / "seg.int8.onnx.json").read_text())["verification"]["int8"]
    assert check["score"] == "miou" and check["images"] == 12
    assert check["float"] == json.loads(cli("eval", run, "--json").stdout)["miou"]
    assert check["int8"] >= check["float"] * 0.95 and "miou" in result.stderr
    cli("predict", tmp_path / "seg.int8.onnx", shapes / "test" / "images", "--out", tmp_path / "masks")
    assert len(list((tmp_path / "masks").glob("*.png"))) == 12


def test_visualize_draws_the_worst_images_first(cli, run: Path, tmp_path: Path) -> None:
    from dltool.tasks.segmentation import worst_rows

    cli("visualize", run, "--out", tmp_path / "plots")
    drawn = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"worst.png", "per_class_iou.png", "confusion_normalised.png", "report.html"} <= drawn
    assert "iou" in (tmp_path / "plots" / "report.html").read_text()
    assert worst_rows(np.array([0.9, np.nan, 0.2, 0.5]), 3).tolist() == [2, 3, 0]


def test_mask_pictures_name_the_colour_of_each_class(cli, shapes: Path, tmp_path: Path) -> None:
    from dltool.figures.masks import triptych_figure
    from dltool.figures.palette import colours

    masks, images = np.zeros((1, 8, 8), np.uint8), np.zeros((1, 3, 8, 8), np.uint8)
    (legend,) = triptych_figure(images, masks, masks, np.array([0.5]), CLASSES).legends  # had none
    assert [text.get_text() for text in legend.get_texts()] == CLASSES
    swatches = [tuple(round(c * 255) for c in patch.get_facecolor()[:3]) for patch in legend.get_patches()]
    assert swatches == [tuple(colour) for colour in colours(len(CLASSES))]
    cli("visualize", shapes, "--out", tmp_path / "svg", "--image-format", "svg")
    samples = (tmp_path / "svg" / "samples.svg").read_text()
    assert all(f">{name}<" in samples or f" {name}<" in samples for name in CLASSES)


def test_tune_maximises_val_miou(cli, recipe: Path, shapes: Path, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("optimizer.lr: [0.01, 0.003]\n")
    study = cli("tune", recipe, "--space", space, "--trials", "2", "--epochs", "1", "--runs-dir", tmp_path).stdout
    document = json.loads((Path(study.strip()) / "study.json").read_text())
    assert document["metric"] == "val_miou" and document["direction"] == "maximize"


def test_stats_and_dataset_plots_count_pixels_per_class(cli, shapes: Path, tmp_path: Path) -> None:
    document = json.loads(cli("stats", shapes, "--json").stdout)
    per_class = document["splits"]["train"]["per_class"]
    assert list(per_class) == CLASSES and sum(per_class.values()) == 48 * 32 * 32 and per_class["square"] > 0
    cli("visualize", shapes, "--out", tmp_path / "dataset")
    assert {"samples.png", "balance.png", "report.html"} <= {p.name for p in (tmp_path / "dataset").iterdir()}


def test_nothing_usable_is_exit_1_and_a_crop_is_refused(cli, tmp_path: Path) -> None:
    from shapes import write_pairs

    root = write_pairs(tmp_path / "bad", 3)
    for mask in (root / "masks").iterdir():
        Image.fromarray(np.full((32, 32), 9, np.uint8)).save(mask)
    (root / "classes.txt").write_text("\n".join(CLASSES))
    result = cli("train", "digits-mlp", "--dataset", root, "--model", "unet", "--runs-dir", tmp_path / "r", code=1)
    assert "none of its 3 image/mask pairs is usable" in result.stderr and "label 9 is not a class" in result.stderr
    good = shapes_dataset(tmp_path / "good", train=4, val=2, test=2)
    crop = cli("train", "digits-mlp", "--dataset", good, "--model", "unet", "--set", "data.crop_pct=0.9", code=2)
    assert "data.crop_pct" in crop.stderr and "resized whole" in crop.stderr


def test_shapes_seg_is_made_offline_the_same_every_time(cli, tmp_path: Path) -> None:
    from dltool.data.shapes import COUNTS, load_shapes_seg

    # train makes it when it is missing (here a dry run: one batch), as `dltool download` does
    made = cli(
        "train", "digits-mlp", "--dataset", "shapes-seg", "--model", "unet", "--root", tmp_path / "a", "--dry-run"
    )
    assert f"shapes-seg is not in {tmp_path / 'a'} yet: making it" in made.stderr
    folder = tmp_path / "a" / "shapes-seg"
    again = Path(cli("download", "shapes-seg", "--root", tmp_path / "b").stdout.strip())
    for split, count in COUNTS.items():
        files = sorted((folder / split / "masks").iterdir())
        assert len(files) == count and files[7].read_bytes() == (again / split / "masks" / files[7].name).read_bytes()
    arrays = load_shapes_seg(tmp_path / "a")
    assert arrays.classes == ["background", "circle", "square", "triangle"]
    assert set(np.unique(arrays.splits["train"].labels)) == {0, 1, 2, 3}
    assert arrays.splits["test"].images.shape == (100, 3, 48, 48)
