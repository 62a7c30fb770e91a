"""Segmentation folders: pairing by stem, classes, splits, bad pairs skipped and named, the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltool.data.mask_decode import load_masks, read_mask, resize_mask
from dltool.data.masks import index_masks, is_mask_folder
from dltool.errors import DatasetError
from shapes import CLASSES, shapes_dataset, write_pairs


def test_split_folders_pair_by_stem_and_keep_every_label(tmp_path: Path) -> None:
    root = shapes_dataset(tmp_path / "shapes", train=6, val=3, test=2)
    assert is_mask_folder(root) and not is_mask_folder(tmp_path)
    index = index_masks(root)
    assert index.classes == CLASSES and {s: len(p) for s, p in index.pairs.items()} == {"train": 6, "val": 3, "test": 2}
    arrays = load_masks(index, cache_root=tmp_path / "data")
    train = arrays.splits["train"]
    assert train.images.shape == (6, 3, 32, 32) and train.labels.shape == (6, 32, 32)
    first = index.pairs["train"][0]
    np.testing.assert_array_equal(train.labels[0], np.asarray(Image.open(root / first[1])))
    np.testing.assert_array_equal(train.images[0], np.asarray(Image.open(root / first[0])).transpose(2, 0, 1))
    assert arrays.classes == CLASSES and arrays.load is not None and arrays.load.cache == "written"
    again = load_masks(index_masks(root), cache_root=tmp_path / "data")
    assert again.load is not None and again.load.cache == "read"
    np.testing.assert_array_equal(again.splits["test"].labels, arrays.splits["test"].labels)


def test_one_pool_is_the_train_split(tmp_path: Path) -> None:
    root = write_pairs(tmp_path / "pool", 20)
    index = index_masks(root)
    assert list(index.pairs) == ["train"] and len(index.pairs["train"]) == 20


def test_without_classes_txt_classes_are_numbered_up_to_the_largest_label(tmp_path: Path) -> None:
    root = write_pairs(tmp_path / "pool", 4)
    arrays = load_masks(index_masks(root), cache_root=tmp_path / "data")
    assert arrays.classes == ["0", "1", "2"]


def test_bad_pairs_are_skipped_with_their_reason(tmp_path: Path) -> None:
    root = shapes_dataset(tmp_path / "shapes", train=6, val=0, test=0)
    train = root / "train"
    (train / "masks" / "s0_000.png").unlink()  # an image without mask
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(train / "masks" / "orphan.png")  # a mask without image
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(train / "masks" / "s0_001.png")  # wrong size
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(train / "masks" / "s0_002.png")  # label 7 of 3 classes
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(train / "masks" / "s0_003.png")  # an RGB mask
    arrays = load_masks(index_masks(root), cache_root=tmp_path / "data")
    assert len(arrays.splits["train"]) == 2
    assert arrays.source is not None
    reasons = dict(arrays.source.skipped)
    assert set(reasons) == {
        "train/images/s0_000.png",
        "train/masks/orphan.png",
        "train/images/s0_001.png",
        "train/images/s0_002.png",
        "train/images/s0_003.png",
    }
    assert "no mask" in reasons["train/images/s0_000.png"] and "no image" in reasons["train/masks/orphan.png"]
    assert "16x16, the image 32x32" in reasons["train/images/s0_001.png"]
    assert "label 7 is not a class (0..2, 255 ignored)" in reasons["train/images/s0_002.png"]
    assert "not mode RGB" in reasons["train/images/s0_003.png"]


def test_nothing_usable_is_one_clear_error(tmp_path: Path) -> None:
    root = write_pairs(tmp_path / "pool", 3)
    for mask in (root / "masks").iterdir():
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(mask)
    with pytest.raises(DatasetError, match="none of its 3 image/mask pairs is usable"):
        load_masks(index_masks(root), cache_root=tmp_path / "data")
    for mask in (root / "masks").iterdir():
        mask.rename(mask.with_name("x" + mask.name))
    with pytest.raises(DatasetError, match="no image with a mask of the same stem"):
        index_masks(root)


def test_mixed_sizes_are_resized_and_masks_keep_only_their_labels(tmp_path: Path) -> None:
    root = write_pairs(tmp_path / "pool", 3, size=32)
    write_pairs(root, 1, seed=9, size=40)
    arrays = load_masks(index_masks(root), cache_root=tmp_path / "data")
    assert arrays.splits["train"].labels.shape[1:] == (32, 32)
    assert arrays.source is not None and any("2 sizes" in note for note in arrays.source.notes)
    sized = load_masks(index_masks(root), cache_root=tmp_path / "data", image_size=20, channels=1)
    assert sized.splits["train"].images.shape[1:] == (1, 20, 20)
    assert set(np.unique(sized.splits["train"].labels)) <= {0, 1, 2}


def test_masks_resize_by_nearest_and_read_palette_indices(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [2, 255]], np.uint8)
    np.testing.assert_array_equal(resize_mask(mask, (4, 4)), mask.repeat(2, 0).repeat(2, 1))
    palette = Image.fromarray(mask, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [9] * (3 * 253))
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), mask)


def test_pets_names_a_listed_photo_without_trimap_and_resizes_to_the_size_asked(tmp_path: Path) -> None:
    from dltool.data.archives import extract_members, extract_trees
    from dltool.data.pets import load_pets
    from fakedata import fake_pets

    folder = tmp_path / "oxford-pets"
    folder.mkdir()
    for name, data in fake_pets().published.items():
        (folder / name).write_bytes(data)
    extract_trees(folder / "images.tar.gz", ["images"], folder)
    extract_trees(folder / "annotations.tar.gz", ["annotations/trimaps"], folder)
    extract_members(folder / "annotations.tar.gz", ["annotations/trainval.txt", "annotations/test.txt"], folder)
    removed = sorted((folder / "trimaps").iterdir())[0]
    removed.unlink()
    arrays = load_pets(tmp_path, image_size=16, channels=1)
    assert arrays.classes == ["background", "pet", "border"]
    assert arrays.splits["train"].images.shape[1:] == (1, 16, 16) and arrays.splits["test"].labels.shape[1:] == (16, 16)
    assert arrays.source is not None
    assert arrays.source.skipped == [
        (f"images/{removed.stem}.jpg", f"listed in test.txt, but trimaps/{removed.name} is missing")
    ]


def test_prepare_draws_val_from_a_pool_in_both_loaders_and_refuses_class_picks(tmp_path: Path) -> None:
    from dltool.config.schema import DataConfig
    from dltool.data.prepare import prepare_data
    from dltool.errors import ConfigError

    root = write_pairs(tmp_path / "pool", 10)
    data = prepare_data(DataConfig(name=str(root), root=str(tmp_path / "data"), val_fraction=0.2, test_fraction=0.2))
    assert {name: len(split) for name, split in data.splits.items()} == {"train": 6, "val": 2, "test": 2}
    assert data.splits["val"].labels.shape == (2, 32, 32) and not data.test_is_val
    split_folders = shapes_dataset(tmp_path / "shapes", train=8, val=0, test=2)
    drawn = prepare_data(DataConfig(name=str(split_folders), root=str(tmp_path / "data"), val_fraction=0.25))
    assert len(drawn.splits["train"]) == 6 and len(drawn.splits["val"]) == 2  # drawn at random: no class per image
    with pytest.raises(ConfigError, match="data.classes and data.train_per_class"):
        prepare_data(DataConfig(name=str(root), root=str(tmp_path / "data"), train_per_class=2))
    streamed = prepare_data(
        DataConfig(name=str(root), root=str(tmp_path / "data"), loader="stream", val_fraction=0.2, test_fraction=0.2)
    )
    for name in ("train", "val", "test"):  # the same draws, whichever loader reads them
        assert np.array_equal(streamed.splits[name].targets, data.splits[name].labels)


@pytest.mark.parametrize("loader", ["memory", "stream"])
def test_masks_mostly_ignored_are_noted_with_the_fix(tmp_path: Path, loader: str) -> None:
    from dltool.config.schema import DataConfig
    from dltool.data.prepare import prepare_data

    root = write_pairs(tmp_path / "pool", 10)
    config = DataConfig(name=str(root), root=str(tmp_path / "data"), loader=loader)
    assert not any("255 (ignored)" in note for note in prepare_data(config).notes)  # 0..2 masks: nothing to say
    masks = sorted((root / "masks").iterdir())
    Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 4).save(masks[0])  # 16-bit, 0..3
    for path in masks[1:]:  # binary masks saved as 0/255: their foreground (the right half) is ignored
        Image.fromarray(np.where(np.arange(32) >= 16, 255, 0).astype(np.uint8)[None].repeat(32, 0)).save(path)
    data = prepare_data(config)
    assert data.classes == ["0", "1", "2", "3"]
    (note,) = [note for note in data.notes if "255 (ignored)" in note]
    where = "10 training masks" if loader == "memory" else "10 sampled training masks"
    assert note.startswith(f"255 (ignored) covers 45% of the pixels of {where}, 9 of them hold only 0 and 255: ")
    assert "save a 0/255 mask's foreground as 1" in note
    for path in masks[1:]:  # a small foreground (a 4x4 square) saved as 255: under the share, named all the same
        Image.fromarray(np.pad(np.full((4, 4), 255, np.uint8), 14)).save(path)
    (note,) = [note for note in prepare_data(config).notes if "255 (ignored)" in note]
    assert note.startswith(f"255 (ignored) covers 1% of the pixels of {where}, 9 of them hold only 0 and 255: ")


@pytest.mark.parametrize("loader", ["memory", "stream"])
def test_one_stray_label_that_makes_most_classes_is_noted(tmp_path: Path, loader: str) -> None:
    from dltool.config.schema import DataConfig
    from dltool.data.prepare import prepare_data

    root = write_pairs(tmp_path / "pool", 6)
    config = DataConfig(name=str(root), root=str(tmp_path / "data"), loader=loader, image_size=32)
    assert not any("appear in no mask" in line for line in prepare_data(config).messages())
    mask = sorted((root / "masks").iterdir())[0]
    Image.fromarray(np.where(np.asarray(Image.open(mask)) == 2, 200, np.asarray(Image.open(mask)))).save(mask)
    data = prepare_data(config)
    assert len(data.classes) == 201
    assert (
        "labels 3-199 appear in no mask: 201 classes from the largest label 200; a classes.txt names the classes"
        " (is 200 a typo?)" in data.messages()
    )
