"""Keypoint and regression folders: reading, bad rows, and points that move with their images."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dltool.config.augment import AugmentConfig
from dltool.config.schema import DataConfig
from dltool.config.validate import validate_config
from dltool.data.augment import Augmenter
from dltool.data.keypoints import flip_order, move_points
from dltool.data.prepare import prepare_data
from dltool.errors import ConfigError, DatasetError
from pointdata import points_folder

SIZE, POINTS, BATCH = 40, 6, 32


def coordinate_images() -> torch.Tensor:
    """Images whose pixels say where they are: channel 0 the column, 1 the row, 2 a constant
    200 that tells the image from the black fill."""
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    image = np.stack([columns, rows, np.full_like(rows, 200)]).astype(np.uint8)
    return torch.from_numpy(np.repeat(image[None], BATCH, 0))


def sampled(images: torch.Tensor, points: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The pixel under each point that is not missing, and the point's row in the batch and index."""
    found = np.argwhere(~points.isnan().any(-1).numpy())
    where = np.floor(points.numpy()[found[:, 0], found[:, 1]] * SIZE).astype(int)
    return images.numpy()[found[:, 0], :, where[:, 1], where[:, 0]].astype(float), found


@pytest.mark.parametrize(
    "augment, exact",
    [
        ({"flip": True, "vflip": True, "crop_padding": 6}, True),
        ({"random_resized_crop": {"scale": [0.3, 0.9]}, "flip": True}, False),
        ({"affine": {"degrees": 30, "translate": 0.1, "scale": [1.0, 1.4], "shear": 10}, "crop_padding": 3}, False),
    ],
    ids=["flips-padded-crop", "resized-crop", "affine"],
)
def test_points_land_on_the_pixels_that_held_them(augment: dict, exact: bool) -> None:
    rng = np.random.default_rng(1)
    cells = rng.integers(0, SIZE, (BATCH, POINTS, 2))
    points = torch.from_numpy((cells + 0.5) / SIZE).float()  # pixel centres
    order = torch.tensor([1, 0, 3, 2, 4, 5])  # points 0/1 and 2/3 swap sides in a flip
    augmenter = Augmenter(AugmentConfig.model_validate(augment), seed=3)
    indices = np.arange(BATCH) + 100
    images = augmenter(coordinate_images(), 2, indices)
    moved = move_points(augmenter, points, 2, indices, (SIZE, SIZE), order if "flip" in augment else None)
    pixels, found = sampled(images, moved)
    flipped = augmenter.draws("flip", 2, indices, 1)[:, 0] < 0.5 if "flip" in augment else np.zeros(BATCH, bool)
    source = np.where(flipped[found[:, 0]], order.numpy()[found[:, 1]], found[:, 1])
    expected = cells[found[:, 0], source]  # (column, row) the pixel came from
    inside = pixels[:, 2] == 200  # resampled pixels at the border blend with the black fill
    assert len(found) > BATCH * POINTS // 3 and inside.mean() > 0.8
    error = np.abs(pixels[inside, :2] - expected[inside])
    assert error.max() == 0 if exact else error.max() <= 1.3
    assert moved.isnan().any() or exact  # crops and affine maps push some points out


def test_points_outside_after_padding_are_missing_and_extra_rows_stay() -> None:
    augmenter = Augmenter(AugmentConfig(crop_padding=8), seed=0)
    corner = torch.full((64, 1, 2), 0.5 / SIZE)  # the top-left pixel's centre
    moved = move_points(augmenter, corner, 0, np.arange(64), (SIZE, SIZE))
    assert moved.isnan().any() and (~moved.isnan()).any()


def test_flip_pairs_name_points_of_the_dataset() -> None:
    assert flip_order([("left", "right")], ["nose", "left", "right"]) == [0, 2, 1]
    assert flip_order([], ["a"]) is None
    with pytest.raises(ConfigError, match="data.flip_pairs: 'lft' is not a point; the points are nose, left"):
        flip_order([("lft", "right")], ["nose", "left", "right"])


def test_a_points_folder_is_read_and_fitted_to_the_image_size(tmp_path: Path) -> None:
    root = points_folder(tmp_path / "pts", {"train": 12, "val": 4}, size=16, scale=2)
    config = validate_config({"data": {"name": str(root), "image_size": 16, "crop_pct": 1.0}}).data
    data = prepare_data(config)
    labels = data.splits["train"].labels
    assert data.classes == ["1", "2"] and labels.shape == (12, 4, 2) and data.in_shape == (3, 16, 16)
    stored = np.loadtxt(root / "train" / "points.csv", delimiter=",", skiprows=1, usecols=range(1, 5))
    np.testing.assert_allclose(labels[:, :2].reshape(12, 4), stored / 32, rtol=1e-6)  # shares of the width
    np.testing.assert_allclose(labels[:, 2], 32.0)  # stored px per unit: the whole stored width
    assert labels[0, 3, 1] == pytest.approx(0.05 * labels[0, 3, 0]) and labels[0, 3, 0] == pytest.approx(32 * 2**0.5)


def test_a_points_folder_is_decoded_once_then_read_from_the_cache_until_it_changes(tmp_path: Path) -> None:
    root = points_folder(tmp_path / "pts", {"train": 6, "val": 2}, size=16, scale=2)
    config = validate_config({"data": {"name": str(root), "image_size": 16, "crop_pct": 1.0}}).data
    first, again = prepare_data(config), prepare_data(config)
    assert first.ready_line().endswith("decoded 8 images, cache written")
    assert again.ready_line().endswith("read from the cache")
    for name in ("train", "val"):
        assert np.array_equal(first.splits[name].images, again.splits[name].images)
        assert np.array_equal(first.splits[name].labels, again.splits[name].labels)  # float32 targets
    csv = root / "train" / "points.csv"
    lines = csv.read_text().splitlines()
    lines[1] = ",".join([lines[1].split(",")[0], "1", *lines[1].split(",")[2:]])  # one row's x1: 1 px
    csv.write_text("\n".join(lines) + "\n")
    edited = prepare_data(config)
    assert edited.ready_line().endswith("cache written") and edited.splits["train"].labels[0, 0, 0] == 1 / 32
    alpha = prepare_data(config.model_copy(update={"pck_alpha": 0.1}))  # another PCK threshold
    assert alpha.ready_line().endswith("cache written")
    assert alpha.splits["train"].labels[0, 3, 1] == pytest.approx(0.1 * alpha.splits["train"].labels[0, 3, 0])
    image = root / "train" / "images" / "train-0001.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(image)  # new pixels, size and mtime
    repainted = prepare_data(config)
    assert repainted.ready_line().endswith("cache written") and (repainted.splits["train"].images[1] == 200).all()


def test_bad_rows_are_named_and_skipped_and_nothing_usable_is_an_error(tmp_path: Path) -> None:
    root = points_folder(tmp_path / "pts", {"train": 6}, size=16)
    csv = root / "train" / "points.csv"
    good = csv.read_text().splitlines()
    bad = ["train-0000.png,1,2,3", "train-0001.png,1,two,3,4", "nowhere.png,1,2,3,4", "../x.png,1,2,3,4"]
    twice = "train-0002.png,1,2,3,4"  # a second answer for one image: it became a second sample
    csv.write_text("\n".join([*good, *bad, twice]) + "\n")
    data = prepare_data(validate_config({"data": {"name": str(root)}}).data)
    assert len(data.splits["train"]) + len(data.splits["val"]) == 6
    assert {Path(place).relative_to(root).as_posix(): reason for place, reason in data.skipped} == {
        "train/points.csv:8": "4 columns, the header has 5",
        "train/points.csv:9": "'two' is not a number",
        "train/points.csv:10": "no image 'nowhere.png' in images/",
        "train/points.csv:11": "'../x.png' is outside images/",
        "train/points.csv:12": "'train-0002.png' is listed already, on line 4",
    }
    csv.write_text("\n".join([good[0], *bad]) + "\n")
    with pytest.raises(DatasetError, match="no usable row in points.csv"):
        prepare_data(validate_config({"data": {"name": str(root)}}).data)


def test_a_file_written_from_the_csvs_folder_is_named_with_what_the_column_takes(tmp_path: Path) -> None:
    # "images/0001.png" (the path beside points.csv) was refused as "no image 'images/0001.png'
    # in images/", which reads as if the image were not there.
    root = points_folder(tmp_path / "pts", {"train": 4}, size=16)
    csv = root / "train" / "points.csv"
    header, *rows = csv.read_text().splitlines()
    csv.write_text("\n".join([header, *(f"images/{row}" for row in rows)]) + "\n")
    hint = "no image 'images/train-0000.png' in images/ (file is a path inside images/: 'train-0000.png')"
    with pytest.raises(DatasetError, match=re.escape(hint)):
        prepare_data(validate_config({"data": {"name": str(root)}}).data)


def test_empty_or_negative_coordinates_are_missing_points(tmp_path: Path) -> None:
    root = points_folder(tmp_path / "pts", {"train": 4, "val": 2}, size=16)
    csv = root / "train" / "points.csv"
    lines = csv.read_text().splitlines()
    cells = lines[1].split(",")
    lines[1] = ",".join([cells[0], "", "", "-1", cells[4]])
    csv.write_text("\n".join(lines) + "\n")
    labels = prepare_data(validate_config({"data": {"name": str(root)}}).data).splits["train"].labels
    assert np.isnan(labels[0, :2]).all() and not np.isnan(labels[1:, :2]).any()


@pytest.mark.parametrize("loader", ["memory", "stream"])
def test_points_beyond_the_image_and_nan_cells_are_missing_and_named(tmp_path: Path, loader: str) -> None:
    root = points_folder(tmp_path / "pts", {"train": 6, "val": 2}, size=16)
    csv = root / "train" / "points.csv"
    lines = csv.read_text().splitlines()
    cells = [line.split(",") for line in lines[1:4]]
    lines[1] = ",".join([cells[0][0], "160", *cells[0][2:]])  # x1 a typo: 10 times the 16-px width
    lines[2] = ",".join([*cells[1][:3], cells[1][3], "16.5"])  # y2 just past the bottom edge
    lines[3] = ",".join([cells[2][0], "nan", "NaN", *cells[2][3:]])
    csv.write_text("\n".join(lines) + "\n")
    config = validate_config({"data": {"name": str(root), "loader": loader, "crop_pct": 1.0}}).data
    data = prepare_data(config)
    labels = data.splits["train"].labels
    assert np.isnan(labels[0, 0]).all() and np.isnan(labels[1, 1]).all() and np.isnan(labels[2, 0]).all()
    assert not np.isnan(labels[0, 1]).any() and not np.isnan(labels[3:, :2]).any()
    beyond = "2 points beyond the image taken as missing (a typo?): train/images/train-0000.png: 1 at (160, "
    assert any(note.startswith(beyond) and "train-0001.png: 2 at (" in note for note in data.notes), data.notes
    assert "train/points.csv line 4: 'nan' is taken as a missing value (an empty cell says so; a typo?)" in data.notes


def test_a_targets_folder_holds_named_values(tmp_path: Path) -> None:
    root = points_folder(tmp_path / "vals", {"train": 5, "val": 2}, size=16)
    for split in ("train", "val"):
        lines = (root / split / "points.csv").read_text().splitlines()
        rows = ["file,age,size"] + [
            f"{ln.split(',')[0]},{i},{'' if i == 1 else i * 2}" for i, ln in enumerate(lines[1:])
        ]
        (root / split / "targets.csv").write_text("\n".join(rows) + "\n")
        (root / split / "points.csv").unlink()
    data = prepare_data(validate_config({"data": {"name": str(root)}}).data)
    assert data.classes == ["age", "size"]
    np.testing.assert_array_equal(data.splits["train"].labels, [[0, 0], [1, np.nan], [2, 4], [3, 6], [4, 8]])


def test_a_task_trains_only_on_the_data_it_is_for(tmp_path: Path, cli) -> None:
    root = points_folder(tmp_path / "pts", {"train": 8, "val": 4}, size=16)
    result = cli("train", "digits-mlp", "--dataset", root, "--epochs", "1", code=2)
    # "see model.head" left the user to find which head: it is named with the flag that sets it.
    trained_on = "trained on labels (--set model.head=keypoints trains it on points;"
    assert f"has points; model 'mlp' is a classification model, {trained_on}" in result.stderr
    result = cli("train", "digits-mlp", "--set", "model.head=keypoints", "--set", "loss.name=mse", code=2)
    assert "data.name: digits has labels; model 'mlp' is a keypoints model, trained on points" in result.stderr
    keypoints = ["--set", "model.head=keypoints", "--set", "loss.name=mse", "--dataset", root]
    result = cli("train", "digits-mlp", *keypoints, "--set", "train.tta=flip", code=2)
    assert (
        "train.tta: 'flip' averages a classifier's logits; model 'mlp' is a keypoints model (use none)" in result.stderr
    )
    result = cli("train", "digits-mlp", *keypoints, "--set", "data.augment.mixup=0.2", code=2)
    assert (
        "data.augment.mixup: moves or mixes the images without their values; model 'mlp' is a keypoints"
        in result.stderr
    )
    result = cli("train", "digits-mlp", *keypoints, "--set", "data.sampler=balanced", code=2)
    assert (
        "data.sampler: 'balanced' weighs images by their class; the keypoints task of model 'mlp' has points"
        in result.stderr
    )
    result = cli("train", "digits-mlp", *keypoints, "--set", "loss.name=cross_entropy", code=2)
    assert (
        "loss.name: 'cross_entropy' does not suit the keypoints task; use one of: mse, l1, smooth_l1" in result.stderr
    )


def test_stats_and_visualize_of_a_points_folder(tmp_path: Path, cli) -> None:
    root = points_folder(tmp_path / "pts", {"train": 8, "val": 4}, size=16)
    report = json.loads(cli("stats", root, "--json").stdout)
    assert report["classes"] == ["1", "2"] and report["targets"] == "points" and report["imbalance"] is None
    # Per point, the images holding it (it was "-" for each, under "N classes"): every image
    # of this folder holds both.
    train = report["splits"]["train"]
    assert train["per_class"] == {"1": train["n"], "2": train["n"]} and train["n"] > 0
    text = cli("stats", root).stderr
    assert "2 points, images" in text and "sizes: 16x16 ×12\n" in text  # no empty "; modes: " after it
    assert "1 image (data.test_fraction 0.1, by file name) held out" in text  # not "1 images"
    # visualize DATASET was refused for points ("holds points, not classes"), though README lists it.
    out = tmp_path / "viz"
    written = cli("visualize", root, "--out", out).stdout.split()
    assert sorted(Path(path).name for path in written) == ["report.html", "samples.png"]  # no class balance
    page = (out / "report.html").read_text()
    assert "2 points" in page and "Images where each point is present" in page
    from dltool.figures.points import points_samples_figure

    train = prepare_data(DataConfig(name=str(root))).splits["train"]
    circles = points_samples_figure(train, 2).axes[0].collections[0].get_offsets()
    points = np.asarray(train.labels)[0, :2] * train.image(0).shape[:0:-1] - 0.5  # pixel centres at .0
    assert np.allclose(circles, points[~np.isnan(points).any(1)]) and len(circles) > 0


def test_bad_rows_are_named_and_counted_and_nothing_usable_is_exit_1(tmp_path: Path, cli) -> None:
    root = points_folder(tmp_path / "pts", {"train": 8, "val": 4}, size=16)
    csv = root / "train" / "points.csv"
    good = csv.read_text().splitlines()
    bad = ["train-0000.png,1,2,3", "train-0001.png,1,two,3,4", "nowhere.png,1,2,3,4"]
    csv.write_text("\n".join([*good, *bad]) + "\n")
    keypoints = ["--set", "model.head=keypoints", "--set", "loss.name=mse", "--dataset", root, "--epochs", "1"]
    trained = cli("train", "digits-mlp", *keypoints, "--runs-dir", tmp_path / "runs").stderr
    reasons = [(10, "4 columns, the header has 5"), (11, "'two' is not a number"), (12, "no image 'nowhere.png'")]
    for line, reason in reasons:
        assert f"train/points.csv:{line}: {reason}" in trained
    unreadable = json.loads(cli("stats", root, "--json").stdout)["unreadable"]
    assert len(unreadable) == 3 and unreadable[2]["reason"] == "no image 'nowhere.png' in images/"
    csv.write_text("\n".join([good[0], *bad]) + "\n")
    failed = cli("train", "digits-mlp", *keypoints, "--runs-dir", tmp_path / "runs", code=1).stderr
    assert "no usable row in its train split" in failed


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("file,age,age", "target 'age' is named twice in the header"),
        ("file,age,", "a target column has no name in the header"),
        ("file,path,age", "a target named 'path' would hide predict's column of each image's path"),
        ("file,x1,y1,x1,y1", "point '1' is named twice in the header"),
    ],
)
def test_a_header_naming_a_column_twice_or_path_is_refused(tmp_path: Path, header: str, error: str) -> None:
    # Two targets of one name trained a model whose rows lost one (JSON) or repeated it (CSV);
    # a target named "path" wrote predict rows with two "path" columns (Parquet: a traceback).
    table = "points.csv" if header.startswith("file,x") else "targets.csv"
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    (tmp_path / table).write_text(f"{header}\na.png,{','.join('1' * (header.count(',')))}\n")
    with pytest.raises(DatasetError, match=re.escape(error)):
        prepare_data(DataConfig(name=str(tmp_path)))
