"""The stream loader (data.loader: stream): the loader choice, the same weights as the memory
loader, exact resume, sharding under torchrun, unreadable files and crashed workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import dltool_command, run_dltool
from dltool.config import load_config
from dltool.config.augment import AugmentConfig
from dltool.data.augment import Augmenter
from dltool.data.files import FileSplit
from dltool.data.images import read_image, read_resized_crop
from dltool.data.prepare import prepare_data
from dltool.data.splits import for_new_run
from dltool.data.stream_samples import train_image
from dltool.engine import resume, train
from dltool.engine.checkpoint import load_checkpoint
from dltool.engine.observer import Observer
from dltool.rundir import create_run_dir

CLASSES, PER_CLASS, SIZE = 3, 24, 10
TRAIN = ["train.batch_size=8", "model.width=32"]


def photo_folder(root: Path, per_class: int = PER_CLASS, size: int = SIZE) -> Path:
    """Class folders of small distinct images, PNGs and JPEGs mixed."""
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        for i in range(per_class):
            pixels = (rng.integers(0, 90, (size, size, 3)) + 70 * c).astype(np.uint8)
            suffix = ".jpg" if i % 3 == 0 else ".png"
            path = root / f"class{c}" / f"{i:03d}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    return root


def config(folder: Path, *overrides: str, epochs: int = 3):
    return load_config("digits-mlp", [f"data.name={folder}", f"train.epochs={epochs}", *TRAIN, *overrides])


def weights(run: Path) -> dict[str, torch.Tensor]:
    """The tensors of a run's model.safetensors (its metadata holds the config, loader included)."""
    return load_file(run / "model.safetensors")


def same_weights(a: Path, b: Path) -> bool:
    first, second = weights(a), weights(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def trained(tmp_path: Path, name: str, folder: Path, *overrides: str, epochs: int = 3) -> Path:
    run = train(config(folder, *overrides, epochs=epochs), create_run_dir(tmp_path / "runs", name)).run_dir
    assert run is not None
    return run


# --- the loader choice -------------------------------------------------------------------------


def test_a_folder_smaller_than_the_header_sample_has_every_file_sampled(tmp_path: Path) -> None:
    from dltool.data.budget import HEADER_SAMPLE, sample_headers

    folder = photo_folder(tmp_path / "photos", per_class=4)  # 12 files, fewer than the sample
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.*"))
    assert len(files) < HEADER_SAMPLE
    assert len(sample_headers(folder, files)) == len(files)
    assert len(sample_headers(folder, files, count=5)) == 5  # spread over the folder, none twice


def test_auto_holds_a_folder_that_fits_and_streams_one_that_does_not(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    fits = prepare_data(config(folder).data)
    assert not hasattr(fits.splits["train"], "files")
    (line,) = [n for n in fits.notes if n.startswith("data.loader auto")]
    assert "→ memory" in line and "fits" in line and "half of this machine's RAM" in line
    assert f"{CLASSES * PER_CLASS} images of 3x{SIZE}x{SIZE}" in line

    streamed = prepare_data(config(folder, "data.memory_budget=10K").data)
    (line,) = [n for n in streamed.notes if n.startswith("data.loader auto")]
    assert "→ stream" in line and "exceeds data.memory_budget" in line
    assert streamed.in_shape == fits.in_shape == (3, SIZE, SIZE)
    assert len(streamed.splits["train"]) == len(fits.splits["train"])
    assert np.array_equal(streamed.splits["val"].labels, fits.splits["val"].labels)  # the same val draw
    assert np.allclose(streamed.mean, fits.mean) and np.allclose(streamed.std, fits.std)
    rows = np.array([0, 5])
    assert np.array_equal(streamed.splits["val"].images[rows], fits.splits["val"].images[rows])


def test_memory_asked_for_a_folder_over_the_budget_exits_1_naming_the_size(cli, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    result = cli(
        "train",
        "digits-mlp",
        "--dataset",
        folder,
        "--set",
        "data.loader=memory",
        "--set",
        "data.memory_budget=10K",
        code=1,
    )
    (line,) = result.stderr.strip().splitlines()
    assert "decoded dataset ≈" in line and "data.loader=stream" in line and "10K" not in line


def test_stream_is_refused_for_array_datasets_and_mixed_sizes_without_image_size(cli, tmp_path: Path) -> None:
    result = cli("train", "digits-mlp", "--set", "data.loader=stream", code=2)
    assert "array dataset" in result.stderr and "data.loader=auto or memory" in result.stderr
    folder = photo_folder(tmp_path / "photos")
    Image.new("RGB", (16, 12)).save(folder / "class0" / "wide.png")
    result = cli("train", "digits-mlp", "--dataset", folder, "--set", "data.loader=stream", code=2)
    assert "data.image_size" in result.stderr and "16x12" in result.stderr


# --- same results --------------------------------------------------------------------------------


def test_stream_trains_the_weights_memory_trains(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    memory = trained(tmp_path, "memory", folder, "data.loader=memory")
    stream = trained(tmp_path, "stream", folder, "data.loader=stream", "data.workers=0")
    assert same_weights(memory, stream)
    assert (
        json.loads((memory / "summary.json").read_text())["test"]
        == json.loads((stream / "summary.json").read_text())["test"]
    )


def test_the_worker_count_does_not_change_the_weights(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    augment = [
        "data.image_size=8",
        "data.augment.random_resized_crop=true",
        "data.augment.crop_padding=2",
        "data.augment.flip=true",
        "data.augment.color_jitter=true",
        "data.augment.mixup=0.2",
    ]
    none = trained(tmp_path, "w0", folder, "data.loader=stream", "data.workers=0", *augment)
    two = trained(tmp_path, "w2", folder, "data.loader=stream", "data.workers=2", *augment)
    assert same_weights(none, two)
    plain = trained(tmp_path, "plain", folder, "data.loader=stream", "data.workers=0", "data.image_size=8")
    assert not same_weights(none, plain)  # the augmentation did run


def test_a_streamed_random_crop_is_cut_from_the_photo_at_the_resolution_it_needs(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((1600, 1200)).save(path, quality=95)
    split = FileSplit(str(tmp_path), ("photo.jpg",), np.zeros(1, np.int64), (3, 32, 32))
    augmenter = Augmenter(AugmentConfig.model_validate({"random_resized_crop": {"scale": [0.05, 0.05]}}), 0)
    top, left, rows, columns = augmenter.crop_box(3, 0, 1200, 1600)
    with Image.open(path) as photo:  # decoded whole, cropped, resized: what the drafted decode stands for
        whole = photo.convert("RGB").resize(
            (32, 32), Image.Resampling.BILINEAR, box=(left, top, left + columns, top + rows)
        )
    streamed, stored = train_image(split, augmenter, 3, 0)
    assert stored == (1200, 1600)
    assert streamed.shape == (3, 32, 32)
    assert np.abs(streamed.astype(int) - np.asarray(whole).transpose(2, 0, 1)).mean() < 2
    assert not np.array_equal(streamed, split.image(0))  # not the evaluation transform


def test_an_unreadable_file_is_named_once_and_left_out(cli, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    (folder / "class1" / "broken.png").write_bytes(b"not a png at all")
    settings = ["--set", "data.loader=stream", "--set", "data.workers=1"]
    result = cli("train", "digits-mlp", "--dataset", folder, *settings, "--epochs", "3")
    named = [line for line in result.stderr.splitlines() if "broken.png" in line]
    assert len(named) == 1 and named[0].startswith(f"skipped {folder / 'class1' / 'broken.png'}")
    assert "data.loader stream: 1 worker process decodes the files (data.workers)" in result.stderr

    run = Path(result.stdout.strip())
    document = json.loads(cli("eval", run, "--split", "val", "--json").stdout)
    val = prepare_data(for_new_run(config(folder, "data.loader=stream").data)).splits["val"]  # the run's val
    assert document["n"] + len(document.get("skipped", [])) == len(val)


def test_more_workers_than_cores_is_said_once_in_the_log_without_torch_s_warning(tmp_path: Path) -> None:
    # torch warned twice, with its source lines, as a UserWarning on the run's log.
    folder, workers = photo_folder(tmp_path / "photos"), len(os.sched_getaffinity(0)) + 1
    sets = [arg for item in [*TRAIN, "data.loader=stream", f"data.workers={workers}"] for arg in ("--set", item)]
    result = run_dltool("train", "digits-mlp", "--dataset", folder, *sets, "--epochs", "1", "--runs-dir", tmp_path)
    assert "UserWarning" not in result.stderr and "worker processes in total" not in result.stderr
    said = f"{workers} worker processes decode the files (data.workers; more than the {workers - 1} core"
    assert said in result.stderr


class StopAfter(Observer):
    """Sets ``stop`` after ``steps`` optimizer steps: the run ends mid-epoch, as on SIGINT."""

    def __init__(self, stop: threading.Event, steps: int):
        self.stop, self.steps = stop, steps

    def on_step(self, epoch: int, batch: int, batches: int, running_loss: Callable[[], float]) -> None:
        self.steps -= 1
        if self.steps == 0:
            self.stop.set()


def test_a_run_stopped_mid_epoch_resumes_from_that_batch_to_the_same_weights(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    settings = ["data.loader=stream", "data.workers=2", "data.augment.flip=true"]
    reference = trained(tmp_path, "reference", folder, *settings)
    stop = threading.Event()
    run = create_run_dir(tmp_path / "runs", "stopped")
    stopped = train(config(folder, *settings), run, observer=StopAfter(stop, 11), stop=stop)
    assert stopped.status == "interrupted"
    assert load_checkpoint(run.last_checkpoint)["progress"]["batch"] == 3  # 11 steps: the 8 batches of epoch 1, then 3
    assert resume(run).status == "completed"
    assert (run.path / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


# --- exact resume, torchrun, crashed workers (real processes) ------------------------------------


@pytest.mark.slow
def test_a_killed_streamed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    settings = ["data.loader=stream", "data.workers=2"]
    reference = trained(tmp_path, "reference", folder, *settings, epochs=8)
    args = ["train", "digits-mlp", "--dataset", folder, "--epochs", 8, "--runs-dir", tmp_path, "--name", "run"]
    sets = [arg for item in [*TRAIN, *settings] for arg in ("--set", item)]
    process = subprocess.Popen(dltool_command(*args, *sets), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["progress"]["epoch"] < 8

    run_dltool("train", "--resume", tmp_path / "run", "-q")
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


SHARD_SCRIPT = """
import json, sys
import numpy as np, torch, torch.distributed as dist
from dltool.data.files import FileSplit
from dltool.data.images import read_image, read_resized_crop
from dltool.data.stream import DecodePool, StreamLoader
folder, out = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
files = tuple(f"c/{i:03d}.png" for i in range({count}))
split = FileSplit(folder, files, np.zeros({count}, np.int64), (1, 4, 4))
pool = DecodePool([split], 1, torch.device("cpu"), mean=[0.0], std=[1 / 255])
loader = StreamLoader(pool, 0, batch_size=4, shuffle=True, seed=3, shard=(rank, world))
seen = torch.stack([torch.cat([images[:, 0, 0, 0] for images, _ in loader.batches(epoch)]) for epoch in range(2)])
everyone = [torch.zeros_like(seen) for _ in range(world)]
dist.all_gather(everyone, seen)
if rank == 0:
    open(out, "w").write(json.dumps([shard.round().long().tolist() for shard in everyone]))
loader.pool.close()
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_under_torchrun_each_rank_reads_its_own_shard(tmp_path: Path) -> None:
    count = 41  # odd: the epoch is cut to 40, an equal share per rank
    for i in range(count):
        path = tmp_path / "data" / "c" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(path)
    script = tmp_path / "shards.py"
    script.write_text(SHARD_SCRIPT.replace("{count}", str(count)))
    out = tmp_path / "seen.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", script]
    result = subprocess.run([*map(str, command), tmp_path / "data", out], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    ranks = json.loads(out.read_text())
    for epoch in range(2):
        shards = [ranks[r][epoch] for r in range(2)]
        assert len(shards[0]) == len(shards[1]) == 20
        everything = shards[0] + shards[1]
        assert len(set(everything)) == 40 and set(everything) <= set(range(count))  # each sample once
    assert ranks[0][0] != ranks[0][1]  # a new order each epoch


@pytest.mark.slow
def test_under_torchrun_every_rank_names_the_unreadable_files_of_its_shard(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    broken = [folder / f"class{c}" / f"broken{i}.png" for c in range(CLASSES) for i in range(2)]
    for path in broken:
        path.write_bytes(b"not a png at all")
    args = ["train", "digits-mlp", "--dataset", folder, "--epochs", 1, "--runs-dir", tmp_path / "runs"]
    sets = [arg for item in [*TRAIN, "data.loader=stream", "data.workers=0"] for arg in ("--set", item)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "dltool"]
    result = subprocess.run([*map(str, command + args + sets)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    named = [line for line in result.stderr.splitlines() if "broken" in line]
    # each file is met by one rank, in one split, once: named exactly once, by the rank that met it
    assert sorted(line.split("skipped ")[1].split(":")[0] for line in named) == sorted(map(str, broken))
    assert {line.startswith("rank 1: skipped ") for line in named} == {True, False}, named


CRASH_SCRIPT = """
import os, signal, sys
from pathlib import Path
import dltool.data.files as files
decode, checkpoint = files.decode_image, Path(sys.argv[1])
def crashing(path, **kwargs):
    if "poison" in str(path) and checkpoint.exists():  # a decoder that segfaults, once a checkpoint exists
        os.kill(os.getpid(), signal.SIGKILL)
    return decode(path, **kwargs)
files.decode_image = crashing
sys.argv = ["dltool", *sys.argv[2:]]
from dltool.cli import main
main()
"""


@pytest.mark.slow
def test_a_crashed_worker_exits_1_naming_the_file_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    Image.new("RGB", (SIZE, SIZE), (200, 10, 10)).save(folder / "class2" / "poison.png")
    run = tmp_path / "run"
    args = ["train", "digits-mlp", "--dataset", folder, "--epochs", 5, "--runs-dir", tmp_path, "--name", "run"]
    sets = ["--set", "data.loader=stream", "--set", "data.workers=2"]
    script = [sys.executable, "-c", CRASH_SCRIPT, run / "checkpoints" / "last.pt", *args, *sets]
    result = subprocess.run(list(map(str, script)), capture_output=True, text=True, timeout=240, env=os.environ)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "poison.png" in line]
    assert "data.workers" in line and str(folder / "class2" / "poison.png") in line
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["epoch"] >= 1
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


def special_images(folder: Path) -> list[Path]:
    """One file of each mode the decoder converts on its own (see dltool.data.images)."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    colour = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (12, 16, 1), dtype=np.uint8)
    pictures = {
        "rgba.png": Image.fromarray(np.concatenate([colour, alpha], axis=2), "RGBA"),
        "grey16.png": Image.fromarray(rng.integers(0, 65536, (12, 16), dtype=np.uint16)),
        "palette.png": Image.fromarray(colour).convert("P", palette=Image.Palette.ADAPTIVE),
        "cmyk.jpg": Image.fromarray(colour).convert("CMYK"),
        "grey.jpg": Image.fromarray(colour).convert("L"),
    }
    paths = []
    for name, picture in pictures.items():
        picture.save(folder / name)
        paths.append(folder / name)
    return paths


@pytest.mark.parametrize("box", [(0, 0, 12, 16), (2, 3, 7, 9)])
def test_a_training_crop_is_the_natural_image_cut_and_resized(tmp_path: Path, box: tuple[int, int, int, int]) -> None:
    # The Pillow-only path and the array path (16-bit, alpha) crop what read_image decodes;
    # the output is too large for a reduced-scale JPEG decode (a draft would change pixels).
    top, left, rows, columns = box
    for path in special_images(tmp_path):
        natural, _, _ = read_image(path)
        picture = Image.fromarray(natural[0] if len(natural) == 1 else natural.transpose(1, 2, 0))
        where = (left, top, left + columns, top + rows)
        expected = np.asarray(picture.resize((10, 7), Image.Resampling.BILINEAR, box=where))
        crop = read_resized_crop(path, lambda height, width: box, (7, 10))
        assert crop.shape == (len(natural), 7, 10), path.name
        assert np.array_equal(crop, expected[None] if expected.ndim == 2 else expected.transpose(2, 0, 1)), path.name
