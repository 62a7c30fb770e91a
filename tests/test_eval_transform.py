"""The evaluation transform (``fit_image``, ``data.crop_pct``): its semantics, how a run
resolves and records it, and one tensor per file across val, eval, predict and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from dltool.config import load_config, validate_config
from dltool.config.schema import DataConfig
from dltool.data.images import decode_image, read_image
from dltool.data.mask_decode import decode_masks
from dltool.data.masks import index_masks
from dltool.data.prepare import prepare_data, with_crop_pct
from dltool.data.resize import fit_images, pre_crop_size, resize_images
from dltool.data.table_decode import load_table
from dltool.data.tables import index_table
from dltool.engine import train
from dltool.evaluation.evaluate import evaluate_split
from dltool.evaluation.predict import Decoder, Prediction, predict
from dltool.evaluation.trained import load_trained
from dltool.export.export import export_trained
from dltool.export.exported import load_exported
from dltool.rundir import create_run_dir


def photo(path: Path, width: int, height: int, seed: int) -> Path:
    """A smooth colour gradient with noise and a bright disc off-centre, saved as a JPEG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, np.full_like(x, rng.integers(0, 256))], -1).astype(float)
    disc = (x - width * rng.uniform(0.2, 0.8)) ** 2 + (y - height * rng.uniform(0.2, 0.8)) ** 2 < (height / 5) ** 2
    pixels[disc] = rng.integers(0, 256, 3)
    pixels += rng.normal(0, 8, pixels.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def test_the_short_side_goes_to_size_over_crop_pct_then_the_centre_is_cut() -> None:
    images = np.arange(2 * 3 * 40 * 60, dtype=np.int64).reshape(2, 3, 40, 60).astype(np.uint8)
    # 20 / 0.5 = 40: the short side is already there, so the result is the exact centre.
    assert np.array_equal(fit_images(images, 20, 0.5), images[..., 10:30, 20:40])
    assert pre_crop_size((1200, 1600), 224, 0.875) == (256, 341)  # 1600 · 256 / 1200 = 341.3
    assert pre_crop_size((1600, 1200), 224, 0.875) == (341, 256)  # portrait: the width limits
    assert pre_crop_size((30, 30), (12, 10), 1.0) == (12, 12)  # non-square size: covered, then cut
    tall = np.zeros((1, 1, 30, 10), np.uint8)
    tall[..., 10:20, :] = 255  # the middle third
    assert (fit_images(tall, 10, 1.0) == 255).all()  # 10 px wide already: the middle 10 rows
    square = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    assert np.array_equal(fit_images(square, 16, 1.0), resize_images(square, 16))  # 1.0: a plain resize
    assert fit_images(tall, 8, None).shape == (1, 1, 8, 8)  # None: stretched, as runs before crop_pct
    assert (fit_images(tall, 8, None)[..., 0, :] == 0).all()  # the black top kept


def test_jpegs_decode_at_reduced_scale_no_smaller_than_the_pre_crop_size(tmp_path: Path) -> None:
    path = photo(tmp_path / "big.jpg", 1600, 1200, 0)
    assert read_image(path, 224, 0.875)[0].shape == (3, 300, 400)  # 1/4 keeps the short side ≥ 256
    assert read_image(path, 224, 0.4)[0].shape == (3, 600, 800)  # ≥ 560: only 1/2
    assert read_image(path)[0].shape == (3, 1200, 1600)
    assert decode_image(path, size=224, crop_pct=0.875).shape == (3, 224, 224)


def test_keypoint_and_mask_folders_of_photos_fit_each_file_as_predict_decodes_it(tmp_path: Path) -> None:
    """Their JPEGs are drafted at reduced scale too (they were decoded whole, then fitted:
    other pixels than predict's, and a keypoint folder held every photo at full size)."""
    points, pairs = tmp_path / "points", tmp_path / "pairs"
    (pairs / "masks").mkdir(parents=True)
    (points / "train").mkdir(parents=True)
    for i in range(3):
        photo(points / "train" / "images" / f"p{i}.jpg", 640, 480, i)
        photo(pairs / "images" / f"p{i}.jpg", 640, 480, i)
        Image.fromarray(np.full((480, 640), i, np.uint8)).save(pairs / "masks" / f"p{i}.png")
    (points / "train" / "points.csv").write_text("file,x,y\n" + "".join(f"p{i}.jpg,320,{200 + i}\n" for i in range(3)))

    table = load_table(index_table(points), DataConfig(name=str(points), image_size=32, crop_pct=0.875))
    masks = decode_masks(index_masks(pairs), 32, 3)
    for arrays, root, crop_pct in ((table, points / "train" / "images", 0.875), (masks, pairs / "images", None)):
        files = arrays.source.files["train"]  # type: ignore[union-attr]
        for image, file in zip(arrays.splits["train"].images, files, strict=True):
            assert np.array_equal(image, decode_image(root / Path(file).name, size=32, crop_pct=crop_pct))
        assert len(files) == 3
    assert [int(mask[0, 0]) for mask in masks.splits["train"].labels] == [
        int(Path(f).stem[1:])
        for f in masks.source.files["train"]  # type: ignore[union-attr]
    ]  # each mask at its image's stored size, cut to 32 by nearest neighbour


def test_a_run_resolves_crop_pct_and_records_it(tmp_path: Path) -> None:
    folder = str(tmp_path)
    assert with_crop_pct(DataConfig(name=folder, image_size=32)).crop_pct == 0.875  # photos: the centre
    assert with_crop_pct(DataConfig(name=folder)).crop_pct == 1.0  # kept at their own size
    assert with_crop_pct(DataConfig(name="digits", image_size=16)).crop_pct == 1.0  # fixed-size
    assert with_crop_pct(DataConfig(name=folder, image_size=32, crop_pct=0.5)).crop_pct == 0.5
    assert DataConfig().crop_pct is None  # loading an old config.yaml leaves it unresolved
    # Pretrained zoo weights bring their own: timm's pretrained_cfg, torchvision's resize/crop sizes.
    timm = validate_config({"model": {"name": "timm:resnet18", "pretrained": True}})
    assert timm.data.crop_pct == 0.95
    vision = validate_config({"model": {"name": "torchvision:resnet18", "pretrained": True}})
    assert vision.data.crop_pct == 0.875 and vision.data.image_size == 224
    assert validate_config({"model": {"name": "timm:resnet18"}}).data.crop_pct is None  # no weights


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch run on a train/val folder of non-square JPEG photos at image_size 24."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(24):
        split = "val" if i % 6 < 2 else "train"  # both classes in val
        photo(root / split / ("ab"[i % 2]) / f"{i}.jpg", 96 + 8 * i, 64 + 4 * (i % 5), i)
    overrides = [f"data.name={root}", "data.image_size=24", "data.channels=3", "train.epochs=1"]
    return train(load_config("digits-mlp", overrides), create_run_dir(tmp_path_factory.mktemp("runs"), "p")).run_dir


def test_one_file_is_one_tensor_in_val_eval_predict_and_export(photo_run: Path, tmp_path: Path) -> None:
    recorded = yaml.safe_load((photo_run / "config.yaml").read_text())["data"]
    assert recorded["crop_pct"] == 0.875
    trained = load_trained(photo_run)
    prepared = prepare_data(trained.config.data)  # the memory cache training read its val split from
    source = Path(trained.config.data.name)
    files = [str(source / "val" / f) for f in sorted(_val_files(source))]
    cached = prepared.splits["val"].images
    evaluation = evaluate_split(trained, split="val")
    exported = load_exported(export_trained(trained, "onnx", tmp_path / "model.onnx").path)
    assert exported.crop_pct == 0.875 and exported.mean == trained.mean and exported.std == trained.std
    for decode in (Decoder.of(trained), Decoder.of(exported)):
        assert np.array_equal(np.stack([decode(f) for f in files]), cached)
    assert np.array_equal(evaluation.samples.images, cached)
    # predict scores those tensors: its probabilities are eval's, file by file.
    rows = [r for r in predict(trained, files, top_k=2, batch_size=3) if isinstance(r, Prediction)]
    assert np.allclose([r.score for r in rows], evaluation.probs.max(1), atol=1e-6)


def _val_files(source: Path) -> list[str]:
    """The val files in the row order of the folder loader (class, then path)."""
    return [p.relative_to(source / "val").as_posix() for p in sorted((source / "val").rglob("*.jpg"))]
