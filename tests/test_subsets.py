"""data.classes and data.train_per_class: class subsets and few-shot training splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltool.config.schema import DataConfig
from dltool.data.prepare import prepare_data
from dltool.errors import ConfigError


def _sizes(data) -> dict[str, int]:
    return {name: len(split) for name, split in data.splits.items()}


def test_a_class_subset_keeps_those_classes_numbered_in_the_order_given() -> None:
    full = prepare_data(DataConfig(name="digits"))
    subset = prepare_data(DataConfig(name="digits", classes=[7, 5, 6]))  # numbers name the digits' classes
    assert subset.classes == ["7", "5", "6"]
    for split in ("train", "val"):
        labels = full.splits[split].labels
        assert np.bincount(subset.splits[split].labels).tolist() == [int((labels == d).sum()) for d in (7, 5, 6)]
    assert _rows(subset, ("7", "5", "6")) == _rows(full, ("7", "5", "6"))  # the same images, all of them


def _rows(data, classes: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """(class name, image bytes) of every train and val image of ``classes``, sorted."""
    return sorted(
        (data.classes[label], image.tobytes())
        for split in ("train", "val")
        for image, label in zip(data.splits[split].images, data.splits[split].labels)
        if data.classes[label] in classes
    )


def test_train_per_class_reduces_train_only_and_follows_the_split_seed() -> None:
    whole = prepare_data(DataConfig(name="digits", classes=["5", "6", "7", "8", "9"]))
    few = prepare_data(DataConfig(name="digits", classes=["5", "6", "7", "8", "9"], train_per_class=10))
    assert np.bincount(few.splits["train"].labels).tolist() == [10] * 5
    assert _sizes(few)["val"] == _sizes(whole)["val"] and _sizes(few)["test"] == _sizes(whole)["test"]
    again = prepare_data(DataConfig(name="digits", classes=["5", "6", "7", "8", "9"], train_per_class=10))
    other = prepare_data(DataConfig(name="digits", classes=["5", "6", "7", "8", "9"], train_per_class=10, split_seed=1))
    assert np.array_equal(few.splits["train"].images, again.splits["train"].images)
    assert not np.array_equal(few.splits["train"].images, other.splits["train"].images)
    assert any("data.train_per_class 10: 50 training images kept" in note for note in few.notes)


def test_an_unknown_class_is_a_usage_error_listing_the_valid_ones(cli) -> None:
    with pytest.raises(ConfigError, match=r"data.classes: '11' not a class of the dataset \(its classes: 0, 1, 2"):
        prepare_data(DataConfig(name="digits", classes=[3, 11]))
    result = cli("train", "digits-mlp", "--set", "data.classes=[3,eleven]", code=2)
    assert "data.classes: 'eleven' not a class of the dataset (its classes: 0, 1, 2, 3" in result.stderr


def test_a_folder_dataset_keeps_the_named_classes(cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "fox"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(
                tmp_path / "photos" / name / f"{i}.png"
            )
    run = cli(
        "train", "digits-mlp", "--dataset", tmp_path / "photos", "--set", "data.classes=[fox,cat]",
        "--set", "data.train_per_class=4", "--epochs", "1", "-q",
    ).stdout.strip()  # fmt: skip
    assert json.loads((Path(run) / "classes.json").read_text()) == ["fox", "cat"]
    data = prepare_data(DataConfig(name=str(tmp_path / "photos"), classes=["fox", "cat"], train_per_class=4))
    assert np.bincount(data.splits["train"].labels).tolist() == [4, 4] and len(data.splits["val"]) == 2
    typo = cli("train", "digits-mlp", "--dataset", tmp_path / "photos", "--set", "data.classes=[fox,dgo]", code=2)
    assert typo.stderr.rstrip().endswith("(its classes: cat, dog, fox); did you mean 'dog'?")


def test_a_class_named_as_typed_picks_the_folder_a_mac_spelled_decomposed(tmp_path: Path) -> None:
    # "Bären" typed (ä, composed) was "not a class of the dataset (its classes: Bären, cat)".
    bear = "Ba\u0308ren"  # as macOS file systems and zips spell it
    for name in (bear, "cat", "dog"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (6, 6), (40 * i, len(name), 9)).save(tmp_path / "photos" / name / f"{i}.png")
    data = prepare_data(DataConfig(name=str(tmp_path / "photos"), classes=["Bären", "cat"]))
    assert data.classes == ["Bären", "cat"] and len(data.splits["train"]) + len(data.splits["val"]) == 12
