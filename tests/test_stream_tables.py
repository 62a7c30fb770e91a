"""Keypoint and regression folders streamed (data.loader: stream): the memory loader's batches
and targets without a random-resized crop, points that follow the crop cut from the file, the
same weights whatever the worker count, eval's scores as in memory, unreadable files named
once and left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dltool.config import load_config
from dltool.config.augment import AugmentConfig
from dltool.config.schema import DataConfig
from dltool.data.augment import Augmenter
from dltool.data.files import FileSplit
from dltool.data.loader import BatchLoader
from dltool.data.prepare import PreparedData, prepare_data
from dltool.data.stream import BatchDecoder, DecodePool, StreamLoader
from dltool.engine import train
from dltool.evaluation.evaluate import evaluate_trained
from dltool.evaluation.trained import load_trained
from dltool.rundir import create_run_dir
from pointdata import points_folder, values_folder
from test_stream import same_weights

CPU = torch.device("cpu")
SIZE = 16  # px the model sees; the images are stored at 4x (64 px)
# A small keypoint model, a few steps: enough to tell weights apart, quick on a CPU.
RUN = [
    "model.head=keypoints",
    "model.width=32",
    "loss.name=mse",
    "optimizer.lr=3e-3",
    "train.epochs=2",
    "train.batch_size=8",
    "train.monitor.metric=val_pck",
    f"data.image_size={SIZE}",
    "data.pck_alpha=0.1",
    "train.device=cpu",
]
AUGMENT = {"flip": True, "vflip": True, "crop_padding": 2, "affine": {"degrees": 20, "scale": [0.8, 1.1]}}


@pytest.fixture
def dots(tmp_path: Path) -> Path:
    return points_folder(tmp_path / "dots", {"train": 24, "val": 8, "test": 8}, scale=4)


def missing_point(dots: Path) -> Path:
    """``dots`` with the second point of the second training row missing."""
    table = dots / "train" / "points.csv"
    lines = table.read_text().splitlines()
    table.write_text("\n".join([*lines[:2], lines[2].rsplit(",", 2)[0] + ",,", *lines[3:]]) + "\n")
    return dots


def prepared(root: Path, loader: str, **data: object) -> PreparedData:
    fields = {"name": str(root), "loader": loader, "image_size": SIZE, "crop_pct": 0.875, **data}
    return prepare_data(DataConfig.model_validate(fields))


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN (a missing point) where the other has NaN."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.nan_to_num(-9.0), b.nan_to_num(-9.0))


def loaders(memory: PreparedData, stream: PreparedData, order: list[int] | None) -> tuple[list, list]:
    """Train (augmented, shuffled) and val batches of each loader."""
    augment = AugmentConfig.model_validate(AUGMENT)
    common = {"batch_size": 4, "mean": memory.mean, "std": memory.std, "device": CPU}
    held = [
        BatchLoader(memory.splits["train"], shuffle=True, augment=augment, flip_order=order, **common),
        BatchLoader(memory.splits["val"], **common),
    ]
    splits = [stream.splits["train"], stream.splits["val"]]
    pool = DecodePool(splits, 0, CPU, stream.mean, stream.std, [Augmenter(augment, 0), None], order)
    streamed = [StreamLoader(pool, 0, batch_size=4, shuffle=True), StreamLoader(pool, 1, batch_size=4)]
    return held, streamed


@pytest.mark.parametrize("kind", ["points", "values"])
def test_a_streamed_batch_is_the_memory_batch_without_a_random_crop(dots: Path, tmp_path: Path, kind: str) -> None:
    root = missing_point(dots) if kind == "points" else values_folder(dots, tmp_path / "values")
    memory, stream = prepared(root, "memory"), prepared(root, "stream")
    train = stream.splits["train"]
    assert isinstance(train, FileSplit) and not isinstance(memory.splits["train"], FileSplit)
    assert stream.classes == memory.classes and stream.mean == memory.mean and stream.std == memory.std
    for name in ("train", "val", "test"):
        assert same(torch.from_numpy(stream.splits[name].labels), torch.from_numpy(memory.splits[name].labels))
    assert np.isnan(train.labels).any()  # a missing point, missing values
    held, streamed = loaders(memory, stream, [1, 0] if kind == "points" else None)
    for memory_loader, stream_loader in zip(held, streamed, strict=True):
        pairs = list(zip(memory_loader.batches(1), stream_loader.batches(1), strict=True))
        assert len(pairs) >= 2
        for (images, targets), (images_s, targets_s) in pairs:
            assert torch.equal(images, images_s) and same(targets, targets_s)
    moved = [targets for (_, targets), _ in zip(held[0].batches(1), range(9))]
    assert not same(torch.cat(moved), torch.from_numpy(memory.splits["train"].labels[: len(torch.cat(moved))]))


def dot_centre(image: np.ndarray, channel: int) -> np.ndarray | None:
    """The (x, y) centre, in pixels, of the dot of ``channel`` (0 red, 1 green) in an RGB
    image (3, H, W); None when none of it is in the image."""
    pixels = image.astype(int)
    others = np.delete(pixels, channel, axis=0).max(0)
    weight = np.clip(pixels[channel] - others - 80, 0, None).astype(float)
    if weight.sum() < 60:
        return None
    rows, columns = np.indices(weight.shape) + 0.5  # a pixel's centre
    return np.array([(weight * columns).sum(), (weight * rows).sum()]) / weight.sum()


def test_the_points_follow_the_random_crop_cut_from_the_file(dots: Path) -> None:
    train = prepared(dots, "stream", crop_pct=1.0).splits["train"]
    assert isinstance(train, FileSplit) and train.stored_points is not None
    augment = {"random_resized_crop": {"scale": [0.25, 1.0]}, "flip": True, "affine": {"degrees": 15}}
    augmenter = Augmenter(AugmentConfig.model_validate(augment), 3)
    slots = torch.full((1, 3), -1, dtype=torch.int64)
    draws = np.arange(6 * len(train))  # each image, with 6 different draws
    images, targets, skipped = BatchDecoder([train], [augmenter], slots)[(0, 1, draws)]
    assert skipped == [] and images.shape == (len(draws), 3, SIZE, SIZE) and targets.dtype == torch.float32
    points, errors = targets[:, :2].numpy() * SIZE, []
    for image, row in zip(images.numpy(), points, strict=True):
        for k, point in enumerate(row):
            centre = dot_centre(image, k)
            if centre is not None and not np.isnan(point).any() and ((point > 1.5) & (point < SIZE - 1.5)).all():
                errors.append(np.abs(centre - point).max())
    # Most dots are found where their points say; a few cut by the crop's edge measure off-centre.
    assert len(errors) > len(draws) and max(errors) < 1.5 and np.mean(errors) < 0.2
    assert np.isnan(points).any()  # some were cut off by a crop
    uncropped = torch.from_numpy(train.labels[draws % len(train), :2])
    assert not same(targets[:, :2], uncropped)


def run_config(root: Path, tmp_path: Path, *sets: str):
    return load_config("digits-mlp", [f"data.name={root}", f"data.root={tmp_path / 'data'}", *RUN, *sets])


def trained_run(tmp_path: Path, name: str, root: Path, *sets: str) -> Path:
    run = train(run_config(root, tmp_path, *sets), create_run_dir(tmp_path / "runs", name)).run_dir
    assert run is not None
    return run


def test_the_worker_count_does_not_change_the_weights(tmp_path: Path, dots: Path) -> None:
    augment = ["data.augment.random_resized_crop=true", "data.augment.flip=true", "data.flip_pairs=[[1, 2]]"]
    none = trained_run(tmp_path, "w0", dots, "data.loader=stream", "data.workers=0", *augment)
    two = trained_run(tmp_path, "w2", dots, "data.loader=stream", "data.workers=2", *augment)
    assert same_weights(none, two)
    plain = trained_run(tmp_path, "plain", dots, "data.loader=stream", "data.workers=0")
    assert not same_weights(none, plain)  # the augmentation did run


@pytest.mark.parametrize("kind", ["points", "values"])
def test_stream_trains_and_scores_what_memory_does(tmp_path: Path, dots: Path, kind: str) -> None:
    root, sets = dots, ["data.augment.flip=true", "data.augment.affine.degrees=10"]
    if kind == "values":
        root = values_folder(dots, tmp_path / "values")
        sets = ["model.head=regression", "train.monitor.metric=val_r2", "data.augment.color_jitter=true"]
    else:
        sets.append("data.flip_pairs=[[1, 2]]")
    memory = trained_run(tmp_path, "memory", root, "data.loader=memory", *sets)
    stream = trained_run(tmp_path, "stream", root, "data.loader=stream", *sets)
    assert same_weights(memory, stream)
    documents = [evaluate_trained(load_trained(run, device="cpu")) for run in (memory, stream)]
    assert [document.pop("checkpoint") for document in documents] == [
        str(run / "model.safetensors") for run in (memory, stream)
    ]
    assert documents[0] == documents[1]  # the same weights: the same scores, each split read by its own loader
    assert documents[0]["n"] == 8 and ("pck" in documents[0] if kind == "points" else "r2" in documents[0])


def test_an_unreadable_image_is_named_once_and_left_out(cli, tmp_path: Path, dots: Path) -> None:
    images = dots / "train" / "images"
    (images / "train-0004.png").write_bytes(b"not a png")  # its header cannot be read: named when indexed
    whole = (images / "train-0007.png").read_bytes()
    (images / "train-0007.png").write_bytes(whole[: len(whole) // 2])  # its pixels cannot: named by a worker
    sets = [f"data.name={dots}", "data.loader=stream", *RUN, "train.epochs=3"]
    result = cli("train", "digits-mlp", *[a for item in sets for a in ("--set", item)], "--runs-dir", tmp_path / "runs")
    for stem in ("train-0004", "train-0007"):
        named = [line for line in result.stderr.splitlines() if f"{stem}.png" in line]
        assert len(named) == 1 and named[0].startswith(f"skipped {images / stem}.png"), result.stderr
