"""Image decoding and image-folder datasets: every mode, bad files, layouts, the cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors.numpy import load_file

from dltool.config import load_config
from dltool.data import folder_decode, folders
from dltool.data.folders import load_folder
from dltool.data.images import ImageDecodeError, decode_image, read_image
from dltool.data.prepare import prepare_data
from dltool.errors import DatasetError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def solid(path: Path, colour=RED, size=(12, 12), mode: str = "RGB", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, **save)
    return path


def noise(path: Path, seed: int, size=(12, 12), mode: str = "RGB") -> Path:
    """A distinct image per seed (so no two test images are duplicates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def truncated_png(path: Path) -> Path:
    noise(path, 99, size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def exif_rotated_jpeg(path: Path) -> Path:
    """Stored 40 wide × 20 high, red block in the stored top-left; EXIF orientation 6 says
    'rotate 90° clockwise to display'."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:8, :8] = RED
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    return path


def class_folder(root: Path, name: str, count: int, seed: int = 0, **kwargs) -> None:
    for i in range(count):
        noise(root / name / f"{i}.png", seed * 1000 + i, **kwargs)


# --- decoding one image -------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = decode_image(exif_rotated_jpeg(tmp_path / "rotated.jpg"))
    assert image.shape == (3, 40, 20)  # displayed upright: 20 wide, 40 high
    # 90° clockwise moves the stored top-left corner to the top-right.
    assert image[0, :6, -6:].mean() > 200 and image[0, :6, :6].mean() < 50


def test_modes_convert_consistently(tmp_path: Path) -> None:
    cmyk = decode_image(solid(tmp_path / "cmyk.jpg", (0, 255, 255, 0), mode="CMYK", quality=100))
    assert cmyk.shape == (3, 12, 12) and np.abs(cmyk[:, 0, 0].astype(int) - RED).max() <= 2

    sixteen = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "deep.png")
    image, mode, _ = read_image(tmp_path / "deep.png")
    assert mode == "I;16" and image.tolist() == [[[0, 1, 128, 255]]]  # scaled, not clipped

    # Float images hold light in [0, 1]: clipped to 0..255 as stored, they came out black.
    Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], np.float32)).save(tmp_path / "unit.tif")
    image, mode, _ = read_image(tmp_path / "unit.tif")
    assert mode == "F" and image.tolist() == [[[0, 128, 255, 0]]]
    Image.fromarray(np.array([[-3.0, 12.4, 300.0]], np.float32)).save(tmp_path / "wide.tif")
    assert read_image(tmp_path / "wide.tif")[0].tolist() == [[[0, 12, 255]]]  # another range: clipped as stored

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque
    rgba[0, 1] = (200, 100, 50, 0)  # transparent: black, whatever colour it hides
    rgba[1, 0] = (200, 100, 50, 128)  # half: half the colour
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    image = decode_image(tmp_path / "alpha.png")
    assert image[:, 0, 0].tolist() == [200, 100, 50] and image[:, 0, 1].tolist() == [0, 0, 0]
    assert image[:, 1, 0].tolist() == [100, 50, 25]

    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([*RED, *GREEN] + [0] * 762)
    palette.save(tmp_path / "palette.gif")
    image, mode, _ = read_image(tmp_path / "palette.gif")
    assert mode == "P" and image[:, 0, 0].tolist() == list(GREEN)

    solid(tmp_path / "grey.gif", 100, mode="L")  # Pillow reads it back as a grey palette
    assert read_image(tmp_path / "grey.gif")[0].shape == (1, 12, 12)


def test_channels_and_size_on_request(tmp_path: Path) -> None:
    path = solid(tmp_path / "red.png", RED, size=(30, 10))
    assert decode_image(path, channels=1).tolist() == [[[76] * 30] * 10]  # Pillow's luma of red
    assert decode_image(path, size=8).shape == (3, 8, 8)
    assert decode_image(path, size=(5, 15), channels=1).shape == (1, 5, 15)
    grey = solid(tmp_path / "grey.png", 90, mode="L")
    assert decode_image(grey, channels=3).tolist() == [[[90] * 12] * 12] * 3


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (truncated_png, "truncated or corrupt (image file is truncated)"),
        (lambda p: (p.write_text("not a picture"), p)[1], "not an image"),
    ],
)
def test_bad_files_raise_with_their_reason(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path / "bad.png")
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path)
    assert error.value.path == str(path) and error.value.reason.startswith(reason)


def test_decompression_bombs_are_refused_and_large_photos_read(tmp_path: Path, monkeypatch) -> None:
    # Scaled down: at Pillow's 89.5 MP, the warning range held 100 MP cameras' photos, refused.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(solid(tmp_path / "bomb.png", size=(20, 20)))  # 400 px: over twice the limit
    assert decode_image(solid(tmp_path / "large.png", size=(12, 12))).shape == (3, 12, 12)  # 144 px: read


# --- folders ------------------------------------------------------------------------------


def messy_folder(root: Path) -> dict[str, str]:
    """Two classes of readable images in every mode, plus two bad files; returns the bad ones."""
    class_folder(root, "cat", 6, seed=1)
    class_folder(root, "dog", 6, seed=2)
    solid(root / "cat" / "cmyk.JPG", (0, 255, 255, 0), mode="CMYK")
    Image.fromarray(np.full((12, 12), 40000, np.uint16)).save(root / "cat" / "deep.png")
    solid(root / "dog" / "alpha.png", (10, 20, 30, 128), mode="RGBA")
    palette = Image.new("P", (12, 12), 1)
    palette.putpalette([*RED, *GREEN] + [0] * 762)
    palette.save(root / "dog" / "palette.gif")
    exif_rotated_jpeg(root / "dog" / "rotated.jpeg")
    truncated_png(root / "cat" / "truncated.png")
    (root / "dog" / "notes.jpg").write_text("this is text")
    (root / "dog" / "readme.txt").write_text("ignored: not an image extension")
    return {"cat/truncated.png": "truncated", "dog/notes.jpg": "not an image"}


def test_train_on_a_messy_folder_names_each_bad_file_once(cli, tmp_path: Path) -> None:
    root = tmp_path / "pets"
    bad = messy_folder(root)
    result = cli("train", "digits-mlp", "--dataset", root, "--set", "data.image_size=16", "--epochs", "1")
    run = Path(result.stdout.strip())
    for path, reason in bad.items():
        lines = [line for line in result.stderr.splitlines() if path in line]
        assert len(lines) == 1 and reason in lines[0] and str(root / path) in lines[0]
    assert "2 images (data.test_fraction 0.1, by file name, stratified) held out as the test split" in result.stderr
    assert json.loads((run / "classes.json").read_text()) == ["cat", "dog"]
    data = prepare_data(load_config("digits-mlp", [f"data.name={root}", "data.image_size=16"]).data)
    assert data.in_shape == (3, 16, 16)
    assert sum(len(data.splits[s]) for s in ("train", "val")) == 6 + 6 + 5  # every readable image
    assert sorted(path for path, _ in data.skipped) == sorted(str(root / p) for p in bad)


@pytest.mark.parametrize("sets", [[], ["--set", "data.classes=[cat]"]])
def test_a_classifier_on_one_class_is_refused_before_a_run_dir(cli, tmp_path: Path, sets: list[str]) -> None:
    # It trained: a loss of 0 from the first step, "as expected" beside ln(1), test accuracy 1.
    root = tmp_path / "photos"
    class_folder(root, "cat", 6)
    if sets:
        class_folder(root, "dog", 6, seed=1)
    result = cli("train", "digits-mlp", "--dataset", root, "--runs-dir", tmp_path / "r", *sets, code=1)
    assert f"{root}: 1 class (cat); a classification model needs 2 or more" in result.stderr
    assert result.stdout == "" and not (tmp_path / "r").exists()  # the runs folder it made, left empty, removed


def test_a_class_folder_none_of_whose_files_can_be_read_is_refused_naming_one(tmp_path: Path) -> None:
    # It trained as a class the model was built for and never saw: 3 outputs, "ln(3)", and a
    # macro F1 pulled down by a class with no images.
    root = tmp_path / "photos"
    class_folder(root, "cat", 4)
    class_folder(root, "dog", 4, seed=1)
    (root / "bird").mkdir()
    for name in ("a.jpg", "b.jpg"):
        (root / "bird" / name).write_bytes(b"not a jpeg")
    truncated_png(root / "dog" / "broken.png")  # one bad file in a class with good ones: skipped
    with pytest.raises(DatasetError) as raised:
        load_folder(root, cache_root=tmp_path / "cache")
    assert str(raised.value) == (
        "class folder 'bird': none of its image files could be read (first: bird/a.jpg: not an image "
        "(Pillow cannot identify the format)): fix or convert them, or move the folder out of the dataset"
    )
    assert not list((tmp_path / "cache").rglob("*.safetensors"))  # no cache written for it


def test_split_folders_and_the_classes_they_share(tmp_path: Path) -> None:
    root = tmp_path / "split"
    for split, count in [("train", 5), ("val", 2), ("test", 3)]:
        class_folder(root / split, "a", count, seed=hash(split) % 100)
        class_folder(root / split, "b", count, seed=hash(split) % 100 + 50)
    class_folder(root / "train", "c", 4, seed=7)  # c is missing from val and test: fine
    arrays = load_folder(root)
    assert arrays.classes == ["a", "b", "c"]
    assert {s: len(split) for s, split in arrays.splits.items()} == {"train": 14, "val": 4, "test": 6}
    assert arrays.splits["test"].labels.tolist() == [0, 0, 0, 1, 1, 1]
    data = prepare_data(load_config("digits-mlp", [f"data.name={root}"]).data)
    assert not data.test_is_val and len(data.splits["val"]) == 4

    class_folder(root / "val", "zebra", 1, seed=9)
    with pytest.raises(DatasetError, match="class 'zebra' of the val split is not a class of"):
        load_folder(root)


def test_a_split_folder_copied_through_a_mac_keeps_its_classes(tmp_path: Path) -> None:
    # val/ spelled "Bären" decomposed (a, U+0308), as macOS and its zips do, train/ as typed:
    # "class 'Bären' of the val split is not a class of train (classes: Bären, cat)".
    root = tmp_path / "split"
    for split, bear in (("train", "Bären"), ("val", "Ba\u0308ren"), ("test", "Ba\u0308ren")):
        class_folder(root / split, bear, 3, seed=len(split))
        class_folder(root / split, "cat", 3, seed=len(split) + 10)
    arrays = load_folder(root)
    assert arrays.classes == ["Bären", "cat"]
    assert [split.labels.tolist() for split in arrays.splits.values()] == [[0, 0, 0, 1, 1, 1]] * 3


def test_train_and_test_without_val_draws_val(tmp_path: Path) -> None:
    root = tmp_path / "tt"
    class_folder(root / "train", "a", 10, seed=1)
    class_folder(root / "train", "b", 10, seed=2)
    class_folder(root / "test", "b", 3, seed=3)
    data = prepare_data(load_config("digits-mlp", [f"data.name={root}", "data.val_fraction=0.2"]).data)
    assert {s: len(split) for s, split in data.splits.items()} == {"train": 16, "val": 4, "test": 3}
    assert data.splits["test"].labels.tolist() == [1, 1, 1] and not data.test_is_val


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda r: r.mkdir(), "no class folders"),
        (lambda r: (r / "a").mkdir(parents=True), "no image files"),
        (lambda r: (class_folder(r / "train", "a", 2), class_folder(r, "b", 2)), "beside other folders (b)"),
        (lambda r: (r / "a").mkdir(parents=True) or (r / "a" / "x.png").write_text("no"), "none of its 1 image files"),
    ],
)
def test_folders_that_are_not_datasets(tmp_path: Path, build, message: str) -> None:
    build(tmp_path / "d")
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_folder(tmp_path / "d")


def test_extensions_are_case_insensitive_and_hidden_files_ignored(tmp_path: Path) -> None:
    root = tmp_path / "ext"
    for i, name in enumerate(["a.PNG", "b.JpEg", "c.bmp", "d.TIFF", "e.webp", "f.gif", "g.tif", "h.jpg"]):
        noise(root / "x" / name, i) if not name.endswith("gif") else solid(root / "x" / name)
    noise(root / "x" / "nested" / "deeper.png", 20)
    noise(root / "x" / ".hidden.png", 21)
    noise(root / ".cache" / "y.png", 22)
    arrays = load_folder(root)
    assert arrays.classes == ["x"] and len(arrays.splits["train"]) == 9
    assert "x/nested/deeper.png" in arrays.source.files["train"]


def test_the_folders_nas_and_systems_keep_beside_photos_are_neither_classes_nor_photos(tmp_path: Path) -> None:
    # A Synology share: @eaDir beside every photo folder holds thumbnails of its photos, which
    # were trained on as more photos of the class (and @eaDir at the top as a class), as were
    # the recycle bins' deleted photos.
    root = tmp_path / "nas"
    for name in ("cats", "dogs"):
        class_folder(root, name, 3)
        for i in range(3):
            noise(root / name / "@eaDir" / f"{i}.png" / "SYNOPHOTO_THUMB_S.jpg", i, size=(4, 4))
    for system in ("@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "System Volume Information", "lost+found"):
        noise(root / system / "photo.png", 9)
    noise(root / "cats" / "#recycle" / "deleted.png", 10)
    arrays = load_folder(root)
    assert arrays.classes == ["cats", "dogs"] and len(arrays.splits["train"]) == 6
    assert not [path for path in arrays.source.files["train"] if "@eaDir" in path or "#recycle" in path]


def test_heic_and_avif_photos_are_read_as_the_same_pixels_a_png_holds(tmp_path: Path) -> None:
    # iPhones write HEIC, Android and the web AVIF: both were left out of a folder ("no image
    # files") though Pillow reads AVIF and pillow-heif (the heif extra) HEIC.
    import pillow_heif

    pillow_heif.register_heif_opener()  # for the test to write one
    pixels = np.repeat(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], 12, axis=0).repeat(3, axis=2)
    for name in ("a/0.png", "a/1.HEIC", "b/0.png", "b/1.avif"):
        (tmp_path / "p" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels if name.startswith("a") else 255 - pixels).save(tmp_path / "p" / name, quality=100)
    arrays = load_folder(tmp_path / "p")
    files, images = arrays.source.files["train"], arrays.splits["train"].images
    assert sorted(files) == ["a/0.png", "a/1.HEIC", "b/0.png", "b/1.avif"] and not arrays.source.skipped
    for lossy, exact in (("a/1.HEIC", "a/0.png"), ("b/1.avif", "b/0.png")):
        difference = images[files.index(lossy)].astype(int) - images[files.index(exact)]
        assert np.abs(difference).mean() < 8  # lossy, but the same picture


def test_mixed_sizes_default_to_the_most_common(tmp_path: Path) -> None:
    root = tmp_path / "sizes"
    class_folder(root, "a", 3, size=(10, 6))
    class_folder(root, "b", 1, seed=5, size=(20, 20))
    arrays = load_folder(root)
    assert arrays.splits["train"].images.shape == (4, 3, 6, 10)
    assert arrays.source.sizes == {"10x6": 3, "20x20": 1}
    assert "resized to 10x6, the most common (3 of 4); set data.image_size" in arrays.source.notes[0]
    # The resized row equals what decode_image (prediction's path) makes of the same file.
    row = arrays.source.files["train"].index("b/0.png")
    assert np.array_equal(arrays.splits["train"].images[row], decode_image(root / "b" / "0.png", size=(6, 10)))


def test_sizes_no_one_of_which_half_share_default_to_their_median(tmp_path: Path) -> None:
    # The most common size of all-distinct sizes is a tie, won by the largest: two 3000x2000
    # photos among thumbnails had every image upscaled to 3000x2000 (143 GMACs a digits-cnn input).
    root = tmp_path / "sizes"
    for i, (width, height) in enumerate([(12, 8), (14, 9), (16, 10), (18, 11), (90, 60), (90, 60)]):
        noise(root / "ab"[i % 2] / f"{i}.png", i, size=(width, height))
    arrays = load_folder(root)
    assert arrays.splits["train"].images.shape == (6, 3, 10, 16)  # heights 8 9 10 11 60 60, widths 12 .. 90
    assert (
        "the images have 5 sizes: all resized to 16x10, their median height and width (no size is shared by "
        "half of the 6); set data.image_size to choose another"
    ) in arrays.source.notes


def test_channels_follow_the_images_unless_set(tmp_path: Path) -> None:
    root = tmp_path / "grey"
    class_folder(root, "a", 3, mode="L")
    solid(root / "b" / "grey.gif", 80, mode="L")
    assert load_folder(root).splits["train"].images.shape[1] == 1
    assert load_folder(root, channels=3).splits["train"].images.shape[1] == 3
    noise(root / "b" / "colour.png", 9)
    arrays = load_folder(root)
    assert arrays.splits["train"].images.shape[1] == 3 and arrays.source.modes == {"L": 3, "P": 1, "RGB": 1}
    forced = load_folder(root, channels=1, image_size=8)
    row = forced.source.files["train"].index("b/colour.png")
    assert np.array_equal(
        forced.splits["train"].images[row], decode_image(root / "b" / "colour.png", channels=1, size=8)
    )


def test_the_cache_is_reused_then_rebuilt_when_a_file_changes(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "cached"
    class_folder(root, "a", 4)
    class_folder(root, "b", 4, seed=1)
    calls = []
    real = folder_decode.read_image
    monkeypatch.setattr(folder_decode, "read_image", lambda path, *args: calls.append(path) or real(path, *args))

    first = load_folder(root, image_size=8)
    cache = folders.cache_path(root, None, 8, None)
    assert len(calls) == 8 and cache.is_file()
    stamp = cache.stat().st_mtime_ns

    calls.clear()
    second = load_folder(root, image_size=8)
    assert calls == [] and cache.stat().st_mtime_ns == stamp  # nothing decoded, nothing written
    assert isinstance(second.splits["train"].images, np.memmap)  # read memory-mapped
    assert np.array_equal(first.splits["train"].images, second.splits["train"].images)
    assert second.source == first.source

    noise(root / "a" / "0.png", 77)  # rewritten: new bytes, new mtime
    os.utime(root / "a" / "0.png", ns=(stamp + 10**9, stamp + 10**9))
    third = load_folder(root, image_size=8)
    assert len(calls) == 8 and cache.stat().st_mtime_ns != stamp
    assert not np.array_equal(third.splits["train"].images, first.splits["train"].images)

    calls.clear()
    load_folder(root, image_size=4)  # another size: its own cache file
    assert len(calls) == 8 and folders.cache_path(root, None, 4, None).is_file()


def test_a_folder_whose_names_are_not_utf8_trains_and_is_scored(cli, tmp_path: Path) -> None:
    # Names of a Windows zip unpacked on Linux: Latin-1 bytes, which Python holds as surrogates.
    # The split by file name, the cache's folder name, the eval document and the report failed on them.
    root = tmp_path / os.fsdecode(b"r\xe9sum\xe9")
    class_folder(root, "cat", 6)
    class_folder(root, "dog", 6, seed=1)
    noise(root / "cat" / os.fsdecode(b"caf\xe9.png"), 99)
    cli("stats", root)
    cli("visualize", root, "--out", tmp_path / "plots")
    assert "r\\udce9sum\\udce9" in (tmp_path / "plots" / "report.html").read_text()
    trained = cli("train", "digits-mlp", "--dataset", root, "--set", "data.image_size=16", "--epochs", "1")
    run = Path(trained.stdout.strip())
    cli("eval", run, "--data", root)
    (document,) = run.glob("eval-*-all.json")
    assert json.loads(document.read_text())["dataset"] == str(root)


def test_a_class_folder_whose_name_is_not_utf8_is_refused_before_a_run_dir(cli, tmp_path: Path) -> None:
    # It trained, and per-class tables and figures then failed (internal errors); before JSON
    # escaped such names it stopped at classes.json, leaving a run dir of a config.yaml alone.
    root = tmp_path / "photos"
    class_folder(root, "cat", 4)
    class_folder(root, os.fsdecode(b"b\xe4r"), 4, seed=1)
    result = cli("train", "digits-mlp", "--dataset", root, "--runs-dir", tmp_path / "r", code=1)
    assert "class folder 'b\\udce4r': its name is not UTF-8 text" in result.stderr
    assert f"convmv -f latin1 -t utf8 -r --notest {root}" in result.stderr
    assert result.stdout == "" and not (tmp_path / "r").exists()


def test_bad_folder_names_are_usage_errors(cli, tmp_path: Path) -> None:
    result = cli("train", "digits-mlp", "--dataset", "./no/such/folder", code=2)
    assert "data.name: no such folder: ./no/such/folder" in result.stderr
    (tmp_path / "file.png").write_text("x")
    assert "is a file" in cli("train", "digits-mlp", "--dataset", tmp_path / "file.png", code=2).stderr
    root = tmp_path / "s"
    class_folder(root / "train", "a", 2)
    class_folder(root / "val", "q", 2)
    assert "class 'q' of the val split" in cli("train", "digits-mlp", "--dataset", root, code=1).stderr


def test_resume_notes_a_folder_that_grew_and_refuses_one_with_other_classes(cli, tmp_path: Path) -> None:
    root = tmp_path / "pets"
    class_folder(root, "cat", 8, seed=1)
    class_folder(root, "dog", 8, seed=2)
    run = Path(
        cli("train", "digits-mlp", "--dataset", root, "--set", "data.image_size=8", "--epochs", "1").stdout.strip()
    )

    class_folder(root, "cat", 12, seed=3)  # four more cats (and four cats redrawn)
    grown = cli("train", "--resume", run, "--epochs", "2")
    assert "the data changed since the checkpoint (train" in grown.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"

    class_folder(root, "bird", 8, seed=4)
    summary_before = (run / "summary.json").read_bytes()
    refused = cli("train", "--resume", run, "--epochs", "3", code=1)
    assert "checkpointed with 2 classes" in refused.stderr and "now has 3 classes" in refused.stderr
    assert (run / "summary.json").read_bytes() == summary_before  # the run is left as it was


def test_a_run_whose_folder_moved_resumes_with_dataset_as_it_would_have_in_place(cli, tmp_path: Path) -> None:
    # Resume refused any --dataset ("cannot change data.name"), and without it failed on
    # "no such folder": a folder moved to another disk ended its runs.
    root = tmp_path / "pets"
    class_folder(root, "cat", 8, seed=1)
    class_folder(root, "dog", 8, seed=2)
    run = Path(cli("train", "digits-mlp", "--dataset", root, "--epochs", "1").stdout.strip())
    moved_run = tmp_path / "moved-run"
    shutil.copytree(run, moved_run)
    cli("train", "--resume", run, "--epochs", "2")  # in place: the reference

    root.rename(tmp_path / "disk2")
    gone = cli("train", "--resume", moved_run, "--epochs", "2", code=1)
    assert f"{root}: the run's image folder is gone (moved or deleted); resume with --dataset NEW_PATH" in gone.stderr
    other = cli("train", "--resume", moved_run, "--epochs", "2", "--dataset", "digits", code=2)
    assert f"data.name digits: the run trains on {root}, a folder: --dataset names where it is now" in other.stderr
    digits_run = Path(cli("train", "digits-mlp", "--epochs", "1", "--set", "train.batch_size=512").stdout.strip())
    refused = cli("train", "--resume", digits_run, "--epochs", "2", "--dataset", tmp_path / "disk2", code=2).stderr
    assert "the run trains on digits, a registered dataset, found by its name; start a new run" in refused
    cli("train", "--resume", moved_run, "--epochs", "2", "--dataset", tmp_path / "disk2")
    moved, in_place = (load_file(r / "model.safetensors") for r in (moved_run, run))  # the metadata names the folder
    assert moved.keys() == in_place.keys() and all(np.array_equal(moved[k], in_place[k]) for k in moved)
    assert yaml.safe_load((moved_run / "config.yaml").read_text())["data"]["name"] == str(tmp_path / "disk2")


def test_a_run_resumes_on_a_copy_of_its_folder_made_through_a_mac(cli, tmp_path: Path) -> None:
    # The copy spells "Bären" decomposed (a, U+0308): "the data no longer matches this run: it
    # was checkpointed with 2 classes of 3x12x12 images, the data now has 2 classes of 3x12x12".
    root = tmp_path / "pets"
    class_folder(root, "Bären", 8, seed=1)
    class_folder(root, "cat", 8, seed=2)
    run = Path(cli("train", "digits-mlp", "--dataset", root, "--epochs", "1").stdout.strip())
    copy = tmp_path / "from-mac"
    shutil.copytree(root / "cat", copy / "cat")
    shutil.copytree(root / "Bären", copy / "Ba\u0308ren")
    shutil.rmtree(root)
    resumed = cli("train", "--resume", run, "--epochs", "2", "--dataset", copy)
    assert "completed after 2 epochs" in resumed.stderr


def test_a_channel_with_one_value_in_every_training_image_is_divided_by_1(tmp_path: Path) -> None:
    # Blue is 90 everywhere: measured std 0, and every normalised input was NaN (the run
    # failed at its first step, blaming the learning rate).
    for label, green in (("cat", 200), ("dog", 0)):
        for i in range(6):
            solid(tmp_path / "photos" / label / f"{i}.png", colour=(40 * i, green, 90))
    config = load_config("digits-mlp", [f"data.name={tmp_path / 'photos'}", f"data.root={tmp_path / 'cache'}"])
    prepared = prepare_data(config.data)
    assert prepared.std[2] == 1.0 and 0 < prepared.std[0] < 1 and prepared.mean[2] == pytest.approx(90 / 255)
    assert (
        "data.std: channel 2 holds one value in every training image (std 0); it is divided by 1 instead"
        in prepared.notes
    )
