"""shapes-keypoints: made offline by `dltool download`, the same every time, its points on the
shapes' centre and corners under their names, read as a keypoints dataset by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import dltool.data.shape_points as shape_points
from dltool.config.validate import validate_config
from dltool.data.keypoints import flip_order
from dltool.data.prepare import prepare_data
from dltool.data.shape_points import FLIP_PAIRS, POINTS, shapes_points
from pointdata import read_points

RECIPE = Path(__file__).parents[1] / "configs" / "shapes-keypoints.yaml"


def test_each_point_is_where_its_name_says() -> None:
    for index in range(200):
        image, points = shapes_points(np.random.default_rng([5, index]))
        at = dict(zip(POINTS, points))
        assert image.shape == (48, 48, 3) and ((points > 0) & (points < 48)).all()
        for eye in ("circle_left", "circle_right"):
            x, y = (at[eye] - 0.5).round().astype(int)  # a pixel's centre is at +0.5
            disc = image[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3)
            assert (disc == disc[0]).all()  # one flat colour around the centre: the disc, not the noise
        assert at["circle_left"][0] < at["circle_right"][0]
        top, left, right = (at[f"triangle_{c}"] for c in ("top", "left", "right"))
        assert top[1] < min(left[1], right[1]) and left[0] < right[0]
        tl, tr, br, bl = (at[f"square_{c}"] for c in ("tl", "tr", "br", "bl"))
        assert tl[0] < tr[0] and bl[0] < br[0] and tl[1] < bl[1] and tr[1] < br[1]
        assert np.linalg.norm(tl - br) == pytest.approx(np.linalg.norm(tr - bl))  # a square's diagonals


def test_download_makes_it_offline_and_the_same_every_time(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(shape_points, "COUNTS", {"train": 12, "val": 4, "test": 4})
    # train makes it when it is missing (here a dry run: one batch), as `dltool download` does
    made = cli("train", "shapes-keypoints", "--root", tmp_path / "a", "--dry-run")
    assert f"shapes-keypoints is not in {tmp_path / 'a'} yet: making it" in made.stderr
    folder = tmp_path / "a" / "shapes-keypoints"
    again = Path(cli("download", "shapes-keypoints", "--root", tmp_path / "b").stdout.strip())
    for split in ("train", "val", "test"):
        assert (folder / split / "points.csv").read_bytes() == (again / split / "points.csv").read_bytes()
        assert (folder / split / "images" / "0003.png").read_bytes() == (
            again / split / "images" / "0003.png"
        ).read_bytes()
    truth = read_points(folder / "test" / "points.csv")
    assert len(truth) == 4 and truth["0001.png"].shape == (len(POINTS), 2)
    config = validate_config({"data": {"name": "shapes-keypoints", "root": str(tmp_path / "a")}}).data
    data = prepare_data(config)
    assert data.classes == POINTS and data.splits["train"].labels.shape == (12, len(POINTS) + 2, 2)
    np.testing.assert_allclose(data.splits["test"].labels[1, : len(POINTS)] * 48, truth["0001.png"], atol=1e-4)


def test_the_recipe_swaps_the_left_and_right_corners_in_a_flip() -> None:
    data = yaml.safe_load(RECIPE.read_text())["data"]
    assert data["name"] == "shapes-keypoints" and data["augment"]["flip"] is True
    assert [tuple(pair) for pair in data["flip_pairs"]] == FLIP_PAIRS
    order = flip_order(FLIP_PAIRS, POINTS)
    assert [POINTS[i] for i in order] == [
        "circle_right",
        "circle_left",
        "triangle_top",
        "triangle_right",
        "triangle_left",
        "square_tr",
        "square_tl",
        "square_bl",
        "square_br",
    ]
