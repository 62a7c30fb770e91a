"""Segmentation folders streamed (data.loader: stream): the memory loader's batches without a
random-resized crop, one box for an image and its mask, the same weights whatever the worker
count, unusable pairs named and left out, and eval's mIoU as in memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dltool.config import load_config
from dltool.config.augment import AugmentConfig
from dltool.config.schema import DataConfig
from dltool.data.augment import Augmenter
from dltool.data.files import FileSplit
from dltool.data.loader import BatchLoader
from dltool.data.prepare import PreparedData, prepare_data
from dltool.data.stream import BatchDecoder, DecodePool, StreamLoader
from dltool.engine import train
from dltool.errors import ConfigError
from dltool.evaluation.evaluate import evaluate_trained
from dltool.evaluation.trained import load_trained
from dltool.rundir import create_run_dir
from dltool.tasks.pixels import IGNORE
from shapes import CLASSES, shapes_dataset
from test_stream import same_weights

CPU = torch.device("cpu")
# Unet on 16-px shapes, a few steps: enough to tell weights apart, quick on a CPU.
RUN = {
    "model": {"name": "unet", "depth": 2, "width": 4},
    "optimizer": {"name": "adam", "lr": 0.01},
    "loss": {"name": "cross_entropy"},
    "train": {"epochs": 2, "batch_size": 4, "monitor": {"metric": "val_miou"}},
}


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    root = shapes_dataset(tmp_path / "shapes", train=12, val=4, test=4, size=16)
    mask = np.asarray(Image.open(root / "train" / "masks" / "s0_000.png")).copy()
    mask[:3] = IGNORE  # ignored pixels travel too
    Image.fromarray(mask).save(root / "train" / "masks" / "s0_000.png")
    return root


def prepared(root: Path, loader: str, **data: object) -> PreparedData:
    return prepare_data(DataConfig.model_validate({"name": str(root), "loader": loader, **data}))


def test_a_streamed_batch_is_the_memory_batch_without_a_random_crop(shapes: Path) -> None:
    memory, stream = prepared(shapes, "memory"), prepared(shapes, "stream")
    assert isinstance(stream.splits["train"], FileSplit) and not isinstance(memory.splits["train"], FileSplit)
    assert stream.classes == memory.classes == CLASSES and stream.mean == memory.mean and stream.std == memory.std
    augment = AugmentConfig.model_validate({"flip": True, "vflip": True, "affine": {"degrees": 30, "scale": [0.8, 1]}})
    held = BatchLoader(
        memory.splits["train"],
        batch_size=4,
        mean=memory.mean,
        std=memory.std,
        device=CPU,
        shuffle=True,
        augment=augment,
    )
    splits, augmenters = [stream.splits["train"], stream.splits["val"]], [Augmenter(augment, 0), None]
    pool = DecodePool(splits, 0, CPU, stream.mean, stream.std, augmenters)
    streamed = StreamLoader(pool, 0, batch_size=4, shuffle=True)
    pairs = list(zip(held.batches(1), streamed.batches(1), strict=True))
    assert len(pairs) == 3
    for (images, masks), (images_s, masks_s) in pairs:
        assert torch.equal(images, images_s) and torch.equal(masks, masks_s) and masks_s.dtype == torch.int64
    assert any((masks == IGNORE).any() for (_, masks), _ in pairs)
    val = BatchLoader(memory.splits["val"], batch_size=3, mean=memory.mean, std=memory.std, device=CPU)
    for (images, masks), (images_s, masks_s) in zip(val.batches(), StreamLoader(pool, 1, batch_size=3).batches()):
        assert torch.equal(images, images_s) and torch.equal(masks, masks_s)


PALETTE = np.array([(250, 250, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)  # classes 0..3


def colour_coded(root: Path, count: int = 6) -> Path:
    """Images of 6-px blocks whose colour is their class (PALETTE), white for ignored
    blocks, 90×70 px as stored; masks of the blocks' classes (255 for the white ones)."""
    rng = np.random.default_rng(5)
    for k in range(count):
        blocks = rng.choice([0, 1, 2, 3, IGNORE], size=(15, 12), p=[0.22, 0.22, 0.22, 0.22, 0.12])
        mask = blocks.repeat(6, 0).repeat(6, 1)[:, :70].astype(np.uint8)  # 90 × 70
        colours = np.concatenate([PALETTE, np.full((256 - len(PALETTE), 3), 255, np.uint8)])
        for folder, pixels in (("images", colours[mask]), ("masks", mask)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / folder / f"{k}.png")
    return root


def test_the_classes_counted_from_streamed_masks_are_remembered_until_a_mask_changes(tmp_path: Path) -> None:
    root = colour_coded(tmp_path / "coded")
    cache = tmp_path / "cache"
    stream = {"image_size": 24, "val_fraction": 0.2, "test_fraction": 0.0}

    def prepared(folder: Path, loader: str, **data: object) -> PreparedData:  # its caches in tmp_path
        return prepare_data(
            DataConfig.model_validate({"name": str(folder), "loader": loader, "root": str(cache), **data})
        )

    first = prepared(root, "stream", **stream)
    assert first.classes == ["0", "1", "2", "3"]
    (remembered,) = cache.glob("folders/*/labels-found.json")
    document = json.loads(remembered.read_text())
    document["labels"] = [0, 1, 2, 3, 5]  # what an earlier pass would have said: taken as it is, no mask read
    remembered.write_text(json.dumps(document))
    again = prepared(root, "stream", **stream)
    lines = again.messages()
    assert again.classes == [str(k) for k in range(6)]
    assert any("masks (counted before, files unchanged)" in line for line in lines)
    mask = next((root / "masks").iterdir())
    Image.fromarray(np.full((90, 70), 4, np.uint8)).save(mask)  # a new label: the file's size and mtime change
    assert prepared(root, "stream", **stream).classes == ["0", "1", "2", "3", "4"]  # counted again
    remembered.write_text("{not json")
    assert prepared(root, "stream", **stream).classes == ["0", "1", "2", "3", "4"]  # damaged: counted again


def test_the_random_crop_cuts_one_box_from_an_image_and_its_mask(tmp_path: Path) -> None:
    root = colour_coded(tmp_path / "coded")
    data = prepared(root, "stream", image_size=24, val_fraction=0.2, test_fraction=0.0)
    train = data.splits["train"]
    assert isinstance(train, FileSplit) and data.classes == ["0", "1", "2", "3"]  # numbered from the masks
    augment = {"random_resized_crop": {"scale": [0.08, 0.5]}, "flip": True, "vflip": True, "affine": {"degrees": 15}}
    augmenter = Augmenter(AugmentConfig.model_validate(augment), 7)
    slots = torch.full((1, 3), -1, dtype=torch.int64)
    draws = np.arange(8 * len(train))  # each image, with 8 different draws
    images, masks, skipped = BatchDecoder([train], [augmenter], slots)[(0, 2, draws)]
    assert skipped == [] and images.shape == (len(draws), 3, 24, 24) and masks.dtype == torch.uint8
    pixels, labels = images.permute(0, 2, 3, 1).numpy().astype(int), masks.numpy()
    distance = np.abs(pixels[..., None, :] - PALETTE.astype(int)).max(-1)  # (..., class)
    pure = distance.min(-1) <= 2  # a pixel all of one class (not blended at a block's edge)
    assert pure.mean() > 0.15
    assert np.array_equal(labels[pure], distance.argmin(-1)[pure])
    dark_or_white = (pixels.max(-1) <= 2) | (pixels.min(-1) >= 253)  # affine fill, ignored blocks
    assert (labels[dark_or_white] == IGNORE).all() and (labels[dark_or_white] == IGNORE).any()
    assert set(np.unique(labels)) <= {0, 1, 2, 3, IGNORE}
    whole = BatchDecoder([train], [None], slots)[(0, 2, np.arange(len(train)))][1]
    assert not any(torch.equal(masks[k], whole[k % len(train)]) for k in range(len(draws)))  # cropped


def run_config(tmp_path: Path, root: Path, *sets: str):
    path = tmp_path / "seg.yaml"
    path.write_text(yaml.safe_dump({**RUN, "data": {"name": str(root)}}))
    return load_config(str(path), [f"data.root={tmp_path / 'data'}", *sets])


def trained_run(tmp_path: Path, name: str, root: Path, *sets: str) -> Path:
    run = train(run_config(tmp_path, root, *sets), create_run_dir(tmp_path / "runs", name)).run_dir
    assert run is not None
    return run


def test_the_worker_count_does_not_change_the_weights(tmp_path: Path, shapes: Path) -> None:
    augment = ["data.augment.random_resized_crop=true", "data.augment.flip=true", "data.augment.color_jitter=true"]
    none = trained_run(tmp_path, "w0", shapes, "data.loader=stream", "data.workers=0", *augment)
    two = trained_run(tmp_path, "w2", shapes, "data.loader=stream", "data.workers=2", *augment)
    assert same_weights(none, two)
    plain = trained_run(tmp_path, "plain", shapes, "data.loader=stream", "data.workers=0")
    assert not same_weights(none, plain)  # the augmentation did run


def test_stream_trains_and_scores_what_memory_does(tmp_path: Path, shapes: Path) -> None:
    memory = trained_run(tmp_path, "memory", shapes, "data.loader=memory", "data.augment.flip=true")
    stream = trained_run(tmp_path, "stream", shapes, "data.loader=stream", "data.augment.flip=true")
    assert same_weights(memory, stream)
    assert json.loads((memory / "summary.json").read_text())["test"]["miou"] > 0
    documents = [evaluate_trained(load_trained(run, device="cpu")) for run in (memory, stream)]
    assert [document.pop("checkpoint") for document in documents] == [
        str(run / "model.safetensors") for run in (memory, stream)
    ]
    assert documents[0] == documents[1]  # the same weights: the same mIoU, each split read by its own loader
    other = reordered(shapes, tmp_path / "reordered")
    on_other = [evaluate_trained(load_trained(run, device="cpu"), data=str(other)) for run in (memory, stream)]
    assert on_other[0]["split"] == "all" and on_other[0]["n"] == 8
    assert [document.pop("checkpoint") for document in on_other] and on_other[0] == on_other[1]


def reordered(shapes: Path, root: Path) -> Path:
    """The val and test pairs of ``shapes`` as one pool whose classes.txt lists the classes
    backwards (its masks renumbered to match): eval renumbers them into the model's order."""
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    backwards = np.array([2, 1, 0, *range(3, 256)], np.uint8)
    for split in ("val", "test"):
        for image in sorted((shapes / split / "images").iterdir()):
            (root / "images" / image.name).write_bytes(image.read_bytes())
            mask = np.asarray(Image.open(shapes / split / "masks" / image.name))
            Image.fromarray(backwards[mask]).save(root / "masks" / image.name)
    (root / "classes.txt").write_text("\n".join(reversed(CLASSES)) + "\n")
    return root


def test_an_unusable_mask_is_named_once_and_left_out(cli, tmp_path: Path, shapes: Path) -> None:
    (shapes / "train" / "masks" / "s0_004.png").write_bytes(b"not a png")
    Image.new("L", (5, 5)).save(shapes / "train" / "masks" / "s0_007.png")  # not the image's size
    recipe = tmp_path / "seg.yaml"
    recipe.write_text(yaml.safe_dump({**RUN, "data": {"name": str(shapes), "loader": "stream"}}))
    result = cli("train", recipe, "--runs-dir", tmp_path / "runs", "--epochs", "3")
    for stem, reason in (
        ("s0_004", "not a readable image"),
        ("s0_007", "mask train/masks/s0_007.png is 5x5, the image 16x16"),
    ):
        named = [line for line in result.stderr.splitlines() if f"{stem}.png" in line]
        assert len(named) == 1 and named[0].startswith(f"skipped {shapes / 'train' / 'images' / stem}.png")
        assert reason in named[0]
    cli("visualize", result.stdout.strip(), "--out", tmp_path / "plots")  # the worst images' masks read from files
    assert (tmp_path / "plots" / "worst.png").is_file()


def test_balanced_class_weights_are_refused_for_streamed_masks(tmp_path: Path, shapes: Path) -> None:
    balanced = run_config(tmp_path, shapes, "data.loader=stream", "loss.class_weights=balanced")
    with pytest.raises(ConfigError, match=r"streamed masks \(data.loader stream\)"):  # their pixels are never counted
        train(balanced, create_run_dir(tmp_path / "runs", "balanced"))


def test_the_loader_s_size_estimate_counts_the_pairs_that_will_train(tmp_path: Path, shapes: Path) -> None:
    # It counted every paired file, an RGB mask and a mask of another size among them,
    # though decoding drops those pairs: 22 images estimated, 20 decoded.
    from dltool.data.mask_stream import streamed_masks

    Image.new("RGB", (16, 16)).save(shapes / "train" / "images" / "rgb.png")
    Image.new("RGB", (16, 16)).save(shapes / "train" / "masks" / "rgb.png")
    Image.new("RGB", (16, 16)).save(shapes / "train" / "images" / "small.png")
    Image.new("L", (8, 8)).save(shapes / "train" / "masks" / "small.png")
    config = DataConfig.model_validate({"name": str(shapes), "loader": "auto"})
    _, lines = streamed_masks(config, shapes)
    assert "(20 images of 3x16x16 and their masks)" in lines[0]
    held = prepared(shapes, "memory")
    assert sum(len(split) for split in held.splits.values()) == 20


def test_the_ignored_pixels_note_counts_only_the_pairs_that_will_train(tmp_path: Path, shapes: Path) -> None:
    # A mask of another size than its image (all 255 here) is left out of training, yet its
    # pixels were counted: "255 (ignored) covers 58% of the pixels of 13 sampled training masks".
    from dltool.data.mask_stream import streamed_masks

    Image.new("RGB", (16, 16)).save(shapes / "train" / "images" / "big.png")
    Image.new("L", (64, 64), IGNORE).save(shapes / "train" / "masks" / "big.png")
    arrays, _ = streamed_masks(DataConfig.model_validate({"name": str(shapes), "loader": "stream"}), shapes)
    assert arrays is not None and arrays.source is not None
    assert not [note for note in arrays.source.notes if "255 (ignored)" in note], arrays.source.notes
