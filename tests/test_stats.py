"""`dltool stats` on datasets (registered and folders), run directories and checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from dltool.config import load_config
from dltool.config.schema import DataConfig
from dltool.data.prepare import prepare_data
from dltool.data.splits import for_new_run
from dltool.models.build import build_model
from shapes import shapes_dataset


def noise(path: Path, seed: int, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_digits_mean_and_std_are_what_train_normalises_with(cli) -> None:
    result = cli("stats", "digits", "--json")
    report = json.loads(result.stdout)
    train = prepare_data(DataConfig()).splits["train"].images.astype(np.float64) / 255
    assert np.allclose(report["mean"], train.mean(axis=(0, 2, 3)), atol=1e-4, rtol=0)
    assert np.allclose(report["std"], train.std(axis=(0, 2, 3)), atol=1e-4, rtol=0)
    assert report["mean"] == report["splits"]["train"]["mean"]
    assert sum(s["n"] for s in report["splits"].values()) == 1797
    assert report["image_shape"] == [1, 8, 8] and report["classes"] == [str(i) for i in range(10)]
    counts = report["splits"]["train"]["per_class"].values()
    assert report["imbalance"] == max(counts) / min(counts)
    assert report["sizes"] is None and report["unreadable"] == []
    assert set(report["duplicates"]["across"]) == {"train/val", "train/test", "val/test"}  # val is drawn


def test_a_folder_report_finds_leaks_duplicates_and_bad_files(cli, tmp_path: Path) -> None:
    root = tmp_path / "leaky"
    for i in range(4):
        noise(root / "train" / "a" / f"{i}.png", i)
        noise(root / "train" / "b" / f"{i}.png", 10 + i)
    noise(root / "train" / "b" / "wide.png", 20, size=(16, 8))
    noise(root / "test" / "a" / "t0.png", 30)
    shutil.copy(root / "train" / "a" / "1.png", root / "test" / "a" / "leak.png")  # train/test leak
    # The same pixels in another format is still the same decoded image.
    Image.open(root / "train" / "b" / "2.png").save(root / "train" / "a" / "copy.bmp")
    (root / "test" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n nothing more")

    report = json.loads(cli("stats", root, "--json").stdout)
    assert report["classes"] == ["a", "b"]
    assert {name: s["n"] for name, s in report["splits"].items()} == {"train": 8, "val": 2, "test": 2}
    assert report["sizes"] == {"8x8": 11, "16x8": 1} and report["modes"] == {"RGB": 12}
    # copy.bmp and b/2.png were drawn apart: one trains, the other validates.
    assert report["duplicates"]["across"] == {"train/val": 1, "train/test": 1, "val/test": 0}
    assert report["duplicates"]["within"] == {"train": 0, "val": 0, "test": 0}
    assert sorted(map(sorted, report["duplicates"]["examples"])) == sorted(
        [
            sorted([str(root / "train/a/copy.bmp"), str(root / "train/b/2.png")]),
            sorted([str(root / "train/a/1.png"), str(root / "test/a/leak.png")]),
        ]
    )
    # copy.bmp is b/2.png filed under a: one photo, two labels, which training would learn both of.
    duplicates = report["duplicates"]
    assert duplicates["conflicting"] == 1
    classes = dict(zip(map(tuple, map(sorted, duplicates["examples"])), duplicates["example_classes"], strict=True))
    assert classes[tuple(sorted([str(root / "train/a/copy.bmp"), str(root / "train/b/2.png")]))] == ["a", "b"]
    assert classes[tuple(sorted([str(root / "train/a/1.png"), str(root / "test/a/leak.png")]))] == ["a"]
    assert [u["path"] for u in report["unreadable"]] == [str(root / "test/a/broken.png")]
    assert report["splits"]["test"]["imbalance"] is None  # class b has no test image

    only = json.loads(cli("stats", root, "--split", "test", "--json").stdout)
    assert list(only["splits"]) == ["test"] and only["mean"] == report["mean"]
    assert "has splits train, val, test" in cli("stats", root, "--split", "tset", code=2).stderr

    table = cli("stats", root)
    assert table.stdout == ""
    assert "train/val 1, train/test 1" in table.stderr and "broken.png" in table.stderr and "16x8 ×1" in table.stderr
    assert "; in more than one class: 1" in table.stderr and "  same image in classes a, b: " in table.stderr


def test_a_folder_of_many_sizes_names_the_commonest_and_counts_the_rest(cli, tmp_path: Path) -> None:
    # Web photos can have as many sizes as files: the line listed each of them.
    for i in range(9):
        noise(tmp_path / "many" / "a" / f"{i}.png", i, size=(8 + i, 8))
    noise(tmp_path / "many" / "a" / "9.png", 9, size=(16, 8))
    sizes = next(line for line in cli("stats", tmp_path / "many").stderr.splitlines() if line.startswith("sizes: "))
    assert sizes.startswith("sizes: 16x8 ×2, ") and sizes.count("×") == 6 + 1  # the modes' count too
    assert " and 3 more (--json lists all 9); modes: RGB ×10" in sizes
    assert len(json.loads(cli("stats", tmp_path / "many", "--json").stdout)["sizes"]) == 9


def test_a_folder_without_splits_is_searched_for_leaks_across_the_splits_train_draws(cli, tmp_path: Path) -> None:
    # One folder per class, as photos come: train draws the val and test splits from it, and
    # a photo saved twice under two names may land in train and in test (they go by name).
    root = tmp_path / "photos"
    for i in range(20):
        for label, seed in (("cat", i), ("dog", 100 + i)):
            noise(root / label / f"{i}.png", seed)
            shutil.copy(root / label / f"{i}.png", root / label / f"copy-{i}.png")
    report = json.loads(cli("stats", root, "--json").stdout)
    duplicates = report["duplicates"]
    assert set(duplicates["across"]) == {"train/val", "train/test", "val/test"}
    assert duplicates["groups"] == 40
    assert sum(duplicates["across"].values()) + sum(duplicates["within"].values()) == 40
    assert duplicates["across"]["train/test"] > 0  # the leak a held-out test score hides
    assert "train/test" in cli("stats", root).stderr


def test_a_run_and_its_checkpoints(cli, tmp_path: Path) -> None:
    run = Path(cli("train", "digits-mlp", "--epochs", "2", "-q").stdout.strip())
    config = load_config("digits-mlp")
    model = build_model(config.model, in_shape=(1, 8, 8), num_classes=10)
    parameters = sum(p.numel() for p in model.parameters())

    report = json.loads(cli("stats", run, "--json").stdout)
    summary = json.loads((run / "summary.json").read_text())
    assert report["kind"] == "run" and report["status"] == "completed" and report["epochs_run"] == 2
    assert report["best"] == summary["best"] and report["test"] == summary["test"]
    assert report["device"] == "cpu" and report["wall_time_s"] == summary["wall_time_s"]
    assert report["model"] == "mlp" and report["dataset"] == "digits" and report["parameters"] == parameters

    last = json.loads(cli("stats", run / "checkpoints" / "last.pt", "--json").stdout)
    assert last["kind"] == "checkpoint" and last["parameters"] == parameters and last["epoch"] == 2
    assert last["classes"] == [str(i) for i in range(10)] and last["config"]["model"]["name"] == "mlp"
    weights = json.loads(cli("stats", run / "model.safetensors", "--json").stdout)
    assert weights["parameters"] == parameters and weights["in_shape"] == "1,8,8" and weights["model"] == "mlp"
    assert "parameters" in cli("stats", run).stderr

    shutil.copy(run / "model.safetensors", tmp_path / "alone.safetensors")
    assert "no config.yaml beside it" in cli("stats", tmp_path / "alone.safetensors", code=1).stderr
    assert "--split applies to datasets" in cli("stats", run, "--split", "test", code=2).stderr
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert "not a readable dltool checkpoint" in cli("stats", tmp_path / "junk.pt", code=1).stderr
    assert "did you mean 'digits'" in cli("stats", "digts", code=2).stderr


def test_a_folder_streams_through_its_cache_with_plain_progress_lines(cli, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for i in range(12):
        noise(root / ("a" if i % 3 else "b") / f"{i}.png", i, size=(9, 7))
    first = cli("stats", root, "--json")
    assert "decoding 12 image files" in first.stderr and "hashing 12 images" in first.stderr
    assert "\x1b[" not in first.stderr  # not a terminal: plain lines, no live bar
    again = cli("stats", root, "--json")
    assert "decoding" not in again.stderr  # the cache (the one train reads) has the pixels
    report = json.loads(first.stdout)
    assert json.loads(again.stdout) == report
    data = prepare_data(for_new_run(DataConfig(name=str(root))))  # as stats splits it
    for name, split in data.splits.items():  # the chunked, indexed passes give the exact figures
        pixels = split.images.astype(np.float64) / 255
        assert np.allclose(report["splits"][name]["mean"], pixels.mean(axis=(0, 2, 3)), atol=1e-12, rtol=0)
        assert np.allclose(report["splits"][name]["std"], pixels.std(axis=(0, 2, 3)), atol=1e-12, rtol=0)
    assert report["mean"] == report["splits"]["train"]["mean"] and report["image_shape"] == [3, 7, 9]


def test_a_segmentation_folders_table_says_its_class_rows_count_pixels(cli, tmp_path: Path) -> None:
    root = shapes_dataset(tmp_path / "shapes", train=6, val=3, test=2)
    lines = cli("stats", root).stderr.splitlines()
    header = next(line for line in lines if line.startswith("class"))
    assert header.split()[:3] == ["class", "(pixels)", "train"]  # was "class": pixels read as images
    assert next(line for line in lines if line.startswith("images")).split() == ["images", "6", "3", "2"]
    # Three splits of RGB means on an 80-column stderr were cut short: "0.1787 0.1665 0.16…".
    assert "…" not in "\n".join(lines)
    means = [line for line in lines if line.startswith("mean")][0].split()[1:]
    assert means[:2] == [
        f"{m:.4f}" for m in json.loads(cli("stats", root, "--json").stdout)["splits"]["train"]["mean"][:2]
    ]


def test_a_segmentation_folders_unusable_pairs_are_skipped_files_not_images(cli, tmp_path: Path) -> None:
    """Images without a mask, or with one of another size, were listed as "unreadable files"."""
    root = shapes_dataset(tmp_path / "shapes", train=6, val=3, test=2)
    masks = sorted((root / "train" / "masks").iterdir())
    masks[0].unlink()
    Image.new("L", (5, 5)).save(masks[1])
    lines = cli("stats", root).stderr.splitlines()
    assert next(line for line in lines if line.startswith("images")).split() == ["images", "4", "3", "2"]
    skipped = lines.index("skipped files: 2")
    assert sorted(lines[skipped + 1 : skipped + 3]) == [
        f"  {root / 'train' / 'images' / masks[0].name}: no mask {masks[0].stem}.* in masks/",
        f"  {root / 'train' / 'images' / masks[1].name}: mask train/masks/{masks[1].name} is 5x5, the image 32x32",
    ]
    assert not [line for line in lines if "unreadable" in line]


def test_a_dataset_under_another_root(cli, tmp_path: Path) -> None:
    # `dltool download mnist --root data` then `dltool stats mnist` could not reach data/:
    # stats alone of the dataset commands had no --root.
    root = tmp_path / "elsewhere"
    report = json.loads(cli("stats", "digits", "--root", root, "--json").stdout)
    assert report["image_shape"] == [1, 8, 8] and (root / "digits").is_dir()  # prepared there
    run = Path(cli("train", "digits-mlp", "--epochs", "1", "-q").stdout.strip())
    assert "--root applies to datasets, not to a run directory" in cli("stats", run, "--root", root, code=2).stderr
