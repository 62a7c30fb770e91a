"""Honest splits: a dataset without a test split gets a held-out, stratified test split
(data.test_fraction) that no training batch and no val batch ever holds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dltool.config import load_config
from dltool.config.schema import DataConfig
from dltool.data.files import FileSplit
from dltool.data.prepare import prepare_data
from dltool.data.splits import DEFAULT_TEST_FRACTION, Draw, for_new_run
from dltool.data.tables import index_table
from dltool.engine.device import resolve_precision
from dltool.engine.distributed import World
from dltool.engine.setup import build_components
from pointdata import points_folder

CLASSES, PER_CLASS = 3, 20


def numbered_folder(root: Path, per_class: int = PER_CLASS) -> Path:
    """Class folders of 6×6 images whose top-left red pixel is the image's number (0..59)."""
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        for i in range(per_class):
            pixels = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
            pixels[0, 0, 0] = c * per_class + i
            path = root / f"class{c}" / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    return root


def add_images(root: Path, numbers: range) -> None:
    """More of ``numbered_folder``'s images, numbered on, in class folder ``number % CLASSES``."""
    rng = np.random.default_rng(numbers.start)
    for number in numbers:
        pixels = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
        pixels[0, 0, 0] = number
        Image.fromarray(pixels).save(root / f"class{number % CLASSES}" / f"new{number}.png")


def split_numbers(config) -> dict[str, set[int]]:
    """The image numbers in each split ``config`` prepares, read from pixels or from the files."""
    numbers = {}
    for name, split in prepare_data(config).splits.items():
        if isinstance(split, FileSplit):
            numbers[name] = {int(np.asarray(Image.open(Path(split.root) / file))[0, 0, 0]) for file in split.files}
        else:
            numbers[name] = set(split.images[:, 0, 0, 0].tolist())
    return numbers


def numbers_seen(loader, mean: list[float], std: list[float], epochs: int = 1) -> list[int]:
    """The image numbers of every batch ``loader`` yields over ``epochs``, read back through the
    normalisation."""
    seen = []
    for epoch in range(epochs):
        for images, _ in loader.batches(epoch):
            red = images[:, 0, 0, 0].double() * std[0] + mean[0]
            seen += torch.round(red * 255).long().tolist()
    return seen


@pytest.mark.parametrize(("loader", "split_by"), [("memory", "name"), ("stream", "name"), ("memory", "shuffle")])
def test_no_test_image_is_trained_or_validated_on(tmp_path: Path, loader: str, split_by: str) -> None:
    folder = numbered_folder(tmp_path / "numbered")
    overrides = [f"data.name={folder}", f"data.loader={loader}", "data.workers=0", "train.batch_size=4"]
    config = load_config("digits-mlp", [*overrides, "train.device=cpu", f"data.split_by={split_by}"])
    device = torch.device("cpu")
    parts = build_components(config, device, resolve_precision("off", device), World())
    assert parts.config.data.test_fraction == DEFAULT_TEST_FRACTION and not parts.data.test_is_val
    mean, std = parts.data.mean, parts.data.std
    trained = numbers_seen(parts.train_batches, mean, std, epochs=3)
    validated = numbers_seen(parts.val_batches, mean, std)
    tested = numbers_seen(parts.test_batches, mean, std)
    parts.close()
    per_class = [sum(n // PER_CLASS == c for n in tested) for c in range(CLASSES)]
    assert len(tested) == len(set(tested)) and min(per_class) >= 1  # every class holds some out
    if split_by == "shuffle":  # exact shares; by name, each file's own draw
        assert per_class == [round(DEFAULT_TEST_FRACTION * PER_CLASS)] * CLASSES
    assert not set(tested) & (set(trained) | set(validated))
    assert set(tested) | set(validated) | set(trained) == set(range(CLASSES * PER_CLASS))


def test_train_reports_a_held_out_test_figure_and_eval_scores_the_same_images(cli, tmp_path: Path) -> None:
    folder = numbered_folder(tmp_path / "numbered")
    result = cli("train", "digits-mlp", "--dataset", folder, "--epochs", "2")
    run = Path(result.stdout.strip())
    assert "9 images (data.test_fraction 0.1, by file name, stratified) held out as the test split" in result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_is_val"] is False and summary["test"]["n"] == 9
    recorded = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert recorded["test_fraction"] == DEFAULT_TEST_FRACTION and recorded["split_by"] == "name"
    evaluated = json.loads(cli("eval", run, "--json").stdout)
    assert evaluated["n"] == 9 and evaluated["accuracy"] == pytest.approx(summary["test"]["accuracy"])


def test_test_fraction_0_keeps_val_as_test_and_says_so(cli, tmp_path: Path) -> None:
    folder = numbered_folder(tmp_path / "numbered")
    result = cli("train", "digits-mlp", "--dataset", folder, "--epochs", "1", "--set", "data.test_fraction=0")
    summary = json.loads((Path(result.stdout.strip()) / "summary.json").read_text())
    assert summary["test_is_val"] is True and summary["test"]["n"] == 3  # the val split: 10% up to chance
    assert "val split doubles as the test split (test_is_val)" in result.stderr
    assert "test (= val: no held-out test split) accuracy" in result.stderr


@pytest.mark.parametrize("loader", ["memory", "stream"])
def test_photos_added_to_a_folder_move_no_other_between_splits(tmp_path: Path, loader: str) -> None:
    # The splits were a shuffle of the files: with photos added, every split was drawn again,
    # so a run's test images could land in the next run's train split (and an old run's eval
    # scored images it had trained on).
    folder = numbered_folder(tmp_path / "numbered")
    overrides = [f"data.name={folder}", f"data.loader={loader}", "data.workers=0", "data.val_fraction=0.25"]
    config = for_new_run(load_config("digits-mlp", overrides).data)  # a share each class draws some of by chance
    assert config.split_by == "name"
    before = split_numbers(config)
    add_images(folder, range(60, 90))
    after = split_numbers(config)
    assert all(before[name] <= after[name] for name in before)
    assert set().union(*after.values()) == set(range(90)) and len(after["test"]) >= CLASSES
    shuffled = config.model_copy(update={"split_by": "shuffle"})
    assert split_numbers(shuffled)["test"] != after["test"]  # drawn by a shuffle, they would move


def test_a_keypoint_pool_keeps_each_rows_split_when_rows_are_removed(tmp_path: Path) -> None:
    pool = points_folder(tmp_path / "points", {"train": 40}, size=8) / "train"
    draw = Draw(val_fraction=0.2, test_fraction=0.2, seed=3, by_name=True)
    before = {name: {row[0] for row in rows} for name, rows in index_table(pool, draw).rows.items()}
    lines = (pool / "points.csv").read_text().splitlines()
    (pool / "points.csv").write_text("\n".join(lines[:1] + lines[11:]) + "\n")  # the first ten rows gone
    after = {name: {row[0] for row in rows} for name, rows in index_table(pool, draw).rows.items()}
    assert {name: before[name] - {f"images/train-{i:04d}.png" for i in range(10)} for name in before} == after
    assert all(after.values()) and sum(map(len, after.values())) == 30


def test_a_run_recorded_without_test_fraction_keeps_its_splits(tmp_path: Path) -> None:
    folder = numbered_folder(tmp_path / "numbered")
    recorded = load_config("digits-mlp", [f"data.name={folder}", "train.device=cpu"])
    assert recorded.data.test_fraction is None  # as in a config.yaml written before it existed
    assert prepare_data(recorded.data).test_is_val
    device = torch.device("cpu")
    resumed = build_components(recorded, device, resolve_precision("off", device), World(), fresh=False)
    assert resumed.config.data.test_fraction is None and resumed.data.test_is_val
    assert resumed.config.data.split_by is None  # read as shuffle: the splits it was recorded with
    assert for_new_run(recorded.data).test_fraction == DEFAULT_TEST_FRACTION


def test_a_given_val_split_stays_whole_and_test_comes_from_train(tmp_path: Path) -> None:
    numbered_folder(tmp_path / "split" / "train")
    numbered_folder(tmp_path / "split" / "val", per_class=3)
    data = prepare_data(for_new_run(load_config("digits-mlp", [f"data.name={tmp_path / 'split'}"]).data))
    assert {name: len(split) for name, split in data.splits.items()} == {"train": 51, "val": 9, "test": 9}


def test_a_registered_test_split_is_kept(tmp_path: Path) -> None:
    digits = prepare_data(for_new_run(load_config("digits-mlp", []).data))
    assert len(digits.splits["test"]) == 359 and not digits.test_is_val  # the fixed 20%, not a draw
    assert len(digits.splits["train"]) + len(digits.splits["val"]) == 1797 - 359


@pytest.mark.parametrize("value", ["1", "-0.1", "true"])
def test_a_bad_test_fraction_is_a_usage_error_naming_the_field(cli, value: str) -> None:
    result = cli("train", "digits-mlp", "--set", f"data.test_fraction={value}", code=2)
    assert "data.test_fraction" in result.stderr


@pytest.mark.parametrize(("split_by", "how"), [("name", "by file name"), ("shuffle", "at random")])
def test_a_test_split_drawn_from_points_is_not_said_to_be_stratified(tmp_path: Path, split_by: str, how: str) -> None:
    # Masks and points have no classes to keep in proportion; the note said "stratified".
    root = points_folder(tmp_path / "points", {"train": 20}, size=16)
    config = load_config("digits-mlp", [f"data.name={root}", f"data.split_by={split_by}"])
    messages = prepare_data(for_new_run(config.data)).messages()
    assert any(f"(data.test_fraction 0.1, {how}) held out" in note for note in messages)


def test_a_class_too_small_to_hold_an_image_out_is_named(tmp_path: Path) -> None:
    # A class of one image stays in train: its val and test scores were empty, unsaid.
    folder = numbered_folder(tmp_path / "numbered")
    (folder / "single").mkdir()
    Image.new("RGB", (6, 6), (250, 0, 0)).save(folder / "single" / "only.png")
    messages = prepare_data(for_new_run(load_config("digits-mlp", [f"data.name={folder}"]).data)).messages()
    for split in ("val", "test"):
        assert f"the {split} split holds no image of single (too few images?): nothing scores them there" in messages
    assert not any("holds no image" in note for note in prepare_data(for_new_run(DataConfig())).messages())
