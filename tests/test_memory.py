"""The memory mode stays bounded: the folder cache is written row by row (and never left
half-written), splits index the memory map, statistics are read in chunks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dltool.config import load_config
from dltool.data import arrays as arrays_module
from dltool.data import folder_decode
from dltool.data import loader as loader_module
from dltool.data.arrays import Split
from dltool.data.folder_decode import Fit
from dltool.data.folders import cache_path, index_folder, load_folder
from dltool.data.images import decode_image
from dltool.data.loader import BatchLoader
from dltool.data.prepare import channel_stats, prepare_data


def picture(path: Path, seed: int, size=(10, 8), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)


def mixed_folder(root: Path) -> Path:
    """Colour, grey and palette images of two sizes over three splits, and a broken file."""
    for i in range(6):
        picture(root / "train" / "a" / f"{i}.png", i)
        picture(root / "train" / "b" / f"{i}.png", 10 + i, mode="L" if i % 2 else "RGB")
    picture(root / "train" / "b" / "wide.png", 30, size=(16, 8))
    picture(root / "train" / "a" / "palette.gif", 31, mode="P")
    picture(root / "val" / "a" / "v.png", 40)
    picture(root / "test" / "b" / "t.jpg", 50)
    (root / "train" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def expected(root: Path, arrays, image_size: int | None, channels: int | None, shape) -> dict[str, np.ndarray]:
    """What the in-memory decoder made: every readable file through decode_image, stacked."""
    size = image_size if image_size is not None else shape[1:]
    return {
        split: np.stack([decode_image(root / f, channels=shape[0], size=size) for f in files])
        for split, files in arrays.source.files.items()
    }


@pytest.mark.parametrize(("image_size", "channels"), [(None, None), (6, None), (None, 1), (6, 3)])
def test_the_streamed_cache_holds_what_decoding_in_memory_held(tmp_path: Path, image_size, channels) -> None:
    root = mixed_folder(tmp_path / "ds")
    cached = load_folder(root, cache_root=tmp_path / "c", image_size=image_size, channels=channels)
    assert isinstance(cached.splits["train"].pixels, np.memmap) and cached.load.cache == "written"
    in_memory = folder_decode.decode_folder(index_folder(root), Fit(image_size, channels), workers=1)
    assert in_memory.load.cache == "not written" and in_memory.source == cached.source
    shape = cached.splits["train"].image_shape
    for split, images in expected(root, cached, image_size, channels, shape).items():
        assert np.array_equal(cached.splits[split].pixels, images)
        assert np.array_equal(in_memory.splits[split].pixels, images)
        assert np.array_equal(cached.splits[split].labels, in_memory.splits[split].labels)
    assert cached.source.skipped == [("train/a/broken.png", cached.source.skipped[0][1])]
    again = load_folder(root, cache_root=tmp_path / "c", image_size=image_size, channels=channels)
    assert again.load.cache == "read" and again.source == cached.source


def test_grey_rows_written_as_rgb_are_narrowed_in_place_around_skipped_files(tmp_path: Path) -> None:
    root = tmp_path / "grey"
    for i in range(5):
        picture(root / "train" / "a" / f"{i}.png", i, mode="L")
        picture(root / "test" / "a" / f"{i}.png", 10 + i, mode="L")
    (root / "train" / "a" / "2b.png").write_bytes(b"not an image")  # a hole mid-split, moved over
    cached = load_folder(root, cache_root=tmp_path / "c")
    assert cached.splits["train"].image_shape == (1, 8, 10) and cached.load.cache == "written"
    for split, images in expected(root, cached, None, None, (1, 8, 10)).items():
        assert np.array_equal(cached.splits[split].pixels, images)
    assert cache_path(root, tmp_path / "c", None, None).stat().st_size < 10 * 80 + 4096  # truncated to its data


def test_a_write_that_fails_midway_leaves_no_cache_and_the_next_run_rebuilds(tmp_path: Path, monkeypatch) -> None:
    root = mixed_folder(tmp_path / "ds")
    real, calls = folder_decode.read_image, []

    def failing(path, *args):
        calls.append(path)
        if len(calls) == 5:
            raise RuntimeError("killed")
        return real(path, *args)

    monkeypatch.setattr(folder_decode, "read_image", failing)
    with pytest.raises(RuntimeError, match="killed"):
        load_folder(root, cache_root=tmp_path / "c", workers=1)
    folder = cache_path(root, tmp_path / "c", None, None).parent
    assert list(folder.iterdir()) == []  # neither a cache nor its temporary
    monkeypatch.setattr(folder_decode, "read_image", real)
    assert load_folder(root, cache_root=tmp_path / "c").load.cache == "written"


KILLED_WRITER = """
import os, signal, sys
from dltool.data import folder_decode
from dltool.data import loader as loader_module
from dltool.data.folders import load_folder
real, calls = folder_decode.read_image, []
def dying(path, *args):
    calls.append(path)
    if len(calls) == 6:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, *args)
folder_decode.read_image = dying
load_folder(sys.argv[1], cache_root=sys.argv[2], workers=1)
"""


def test_a_writer_killed_midway_leaves_only_a_temporary(tmp_path: Path) -> None:
    root = mixed_folder(tmp_path / "ds")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, root, tmp_path / "c"], env=env, check=False)
    assert killed.returncode == -signal.SIGKILL
    cache = cache_path(root, tmp_path / "c", None, None)
    assert not cache.exists() and [p.name.endswith(".tmp") for p in cache.parent.iterdir()] == [True]
    arrays = load_folder(root, cache_root=tmp_path / "c")
    assert arrays.load.cache == "written" and cache.is_file() and len(arrays.splits["train"]) == 14


def test_a_drawn_val_split_indexes_the_memory_map(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(loader_module, "NORMALISED_BYTES", 0)  # as a split too large to normalise once
    root = tmp_path / "flat"
    for i in range(10):
        picture(root / "a" / f"{i}.png", i)
        picture(root / "b" / f"{i}.png", 20 + i)
    config = load_config("digits-mlp", [f"data.name={root}", f"data.root={tmp_path / 'c'}"]).data
    assert prepare_data(config).load.cache == "written"
    data = prepare_data(config)
    train, val = data.splits["train"], data.splits["val"]
    assert isinstance(val.pixels, np.memmap) and val.pixels is train.pixels  # one map, no copy
    assert len(val) == 2 and sorted(np.concatenate([train.rows, val.rows]).tolist()) == list(range(20))
    assert data.load.cache == "read" and data.ready_line().startswith("data ready in ")
    indexed = BatchLoader(val, batch_size=2, mean=[0.5] * 3, std=[0.25] * 3, device=torch.device("cpu"))
    copied = BatchLoader(
        Split(val.images, val.labels), batch_size=2, mean=[0.5] * 3, std=[0.25] * 3, device=torch.device("cpu")
    )
    assert indexed.images.data_ptr() == torch.from_numpy(train.pixels).data_ptr()
    for (a, la), (b, lb) in zip(indexed.batches(), copied.batches(), strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    shuffled = BatchLoader(
        train, batch_size=4, mean=[0.5] * 3, std=[0.25] * 3, device=torch.device("cpu"), shuffle=True
    )
    reference = BatchLoader(
        Split(train.images, train.labels),
        batch_size=4,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        device=torch.device("cpu"),
        shuffle=True,
    )
    for (a, la), (b, lb) in zip(shuffled.batches(3), reference.batches(3), strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_channel_stats_in_chunks_are_the_exact_histogram_result(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 3, 7, 5), dtype=np.uint8)
    images[:, 1] //= 3  # channels with different statistics
    rows = np.sort(rng.choice(50, 31, replace=False))
    subset = images[rows].astype(np.float64) / 255
    exact = subset.mean(axis=(0, 2, 3)), subset.std(axis=(0, 2, 3))
    whole = channel_stats(Split(images, np.zeros(50, np.int64), rows))
    monkeypatch.setattr(arrays_module, "CHUNK_PIXELS", 3 * 7 * 5 * 4)  # chunks of four images
    chunked = channel_stats(Split(images, np.zeros(50, np.int64), rows))
    assert chunked == whole
    assert np.allclose(chunked[0], exact[0], rtol=0, atol=1e-12) and np.allclose(
        chunked[1], exact[1], rtol=0, atol=1e-12
    )


# Frees a 16 MiB block (glibc then raises its mmap threshold to 16 MiB), then allocates and
# frees an 8 MiB one; prints how much of the 8 MiB stayed resident after its release.
KEPT_AFTER_FREE = """
import ctypes, sys
from dltool._memory import return_large_blocks
if sys.argv[1] == "fixed":
    return_large_blocks()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def resident_kb():
    return int(open("/proc/self/status").read().split("RssAnon:")[1].split()[0])
def touched(size):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block
libc.free(touched(16 << 20))
before = resident_kb()
libc.free(touched(8 << 20))
print(resident_kb() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_decoding_workers_return_freed_batches_to_the_os() -> None:
    def kept_kb(mode: str) -> int:
        result = subprocess.run(
            [sys.executable, "-c", KEPT_AFTER_FREE, mode], capture_output=True, text=True, check=True
        )
        return int(result.stdout)

    assert kept_kb("default") > 6 * 1024  # the allocator's own choice: the block stays in the heap
    assert kept_kb("fixed") < 1024
