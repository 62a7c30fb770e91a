"""predict's input pipeline: worker processes, input order, bounded chunks in flight."""

from __future__ import annotations

import os
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltool.errors import DatasetError
from dltool.evaluation import inputs
from dltool.evaluation.inputs import Decoder, Unreadable, decoded_chunks, ordered


class CountingPool:
    """An executor that runs nothing until a future's result is asked for, and counts the
    futures submitted but not yet collected."""

    def __init__(self) -> None:
        self.outstanding = 0
        self.most = 0

    def submit(self, function, *args) -> Future:
        self.outstanding += 1
        self.most = max(self.most, self.outstanding)
        pool = self

        class Lazy(Future):
            def result(self, timeout=None):
                pool.outstanding -= 1
                return function(*args)

        return Lazy()


def test_chunks_in_flight_and_inputs_read_ahead_stay_bounded() -> None:
    pool, read = CountingPool(), []

    def groups():
        for i in range(100):
            read.append(i)
            yield [i]

    out = []
    for group, future in ordered(pool, lambda first, g: [first, *g], "x", groups(), ahead=3):
        assert group == [len(out)] and len(read) - len(out) <= 3  # at most `ahead` groups read before their turn
        out.append(future.result())
    assert out == [["x", i] for i in range(100)] and pool.most == 3


def _images(folder: Path, count: int) -> list[str]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (9 + i % 5, 7 + i % 3, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_worker_processes_keep_the_input_order_and_name_each_failure(tmp_path: Path) -> None:
    paths = _images(tmp_path / "in", 23)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    paths[5:5] = [str(tmp_path / "bad.png")]
    paths.append(str(tmp_path / "missing.png"))
    decoder = Decoder(3, (6, 6), 0.875)
    chunks = list(decoded_chunks(paths, decoder, chunk=4, workers=2))
    good = [p for c in chunks for p in c.paths]
    assert good == [p for p in paths if "bad" not in p and "missing" not in p]
    assert [u.path for c in chunks for u in c.unreadable] == [paths[5], paths[-1]]
    assert all(isinstance(u, Unreadable) and u.reason for c in chunks for u in c.unreadable)
    stacked = np.concatenate([c.images for c in chunks])
    assert np.array_equal(stacked, np.stack([decoder(p) for p in good]))  # as decoded in this process
    serial = list(decoded_chunks(paths, decoder, chunk=4, workers=0))
    assert [c.paths for c in serial] == [c.paths for c in chunks]


def test_a_worker_that_dies_is_an_error_naming_the_files(tmp_path: Path, monkeypatch) -> None:
    paths = _images(tmp_path / "in", 6)
    monkeypatch.setattr(inputs, "decode_chunk", _die)  # forked workers inherit the patch
    with pytest.raises(DatasetError, match=r"a decoding process died reading .*000\.png … .*001\.png"):
        list(decoded_chunks(paths, Decoder(3, (6, 6), 1.0), chunk=2, workers=1))


def _die(decoder: Decoder, paths: list[str]) -> None:
    os._exit(3)


@pytest.mark.parametrize("model_seconds", [0.0, 0.3])
def test_by_default_a_slow_model_keeps_decoding_in_this_process(tmp_path: Path, model_seconds: float) -> None:
    """The first two chunks are decoded here and timed against the caller's work on them: a
    caller slower than decoding (a costly forward pass) keeps every chunk here, a fast one
    hands the rest to ``default_workers()`` processes."""
    import multiprocessing
    import time

    paths = _images(tmp_path / "in", 40)
    # Enlarged: decoding takes some 10 ms a chunk, well under 0.3 s and well over the loop's own
    # bookkeeping (at 64 px the two were close enough for a busy machine to swap them).
    decoder = Decoder(3, (384, 384), 0.875)
    seen, children = [], []
    for chunk in decoded_chunks(paths, decoder, chunk=4, workers=None):
        time.sleep(model_seconds)
        seen += chunk.paths
        children.append(len(multiprocessing.active_children()))
    assert seen == paths
    assert children[:2] == [0, 0], children  # measured here
    pooled = model_seconds == 0.0 and inputs.default_workers() > 0
    assert all(count > 0 for count in children[3:]) if pooled else children == [0] * len(children), children


def test_where_openmp_threads_sleep_even_a_slow_model_decodes_in_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``OMP_WAIT_POLICY=PASSIVE`` (which ``dltool predict`` sets) a decoding process costs
    the forward pass nothing, so nothing is measured: every chunk is decoded in
    ``default_workers()`` processes, the first too."""
    import multiprocessing
    import time

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    paths = _images(tmp_path / "in", 24)
    children = []
    for _chunk in decoded_chunks(paths, Decoder(3, (64, 64), 0.875), chunk=4, workers=None):
        time.sleep(0.1)  # a model slower than decoding, which spinning threads would keep here
        children.append(len(multiprocessing.active_children()))
    assert all(children) if inputs.default_workers() > 0 else not any(children), children


@pytest.mark.parametrize(
    ("setting", "workers", "torch_first", "policy"),
    [(None, None, False, "PASSIVE"), (None, 0, False, None), ("ACTIVE", None, False, "ACTIVE"), (None, 2, True, None)],
)
def test_predict_has_openmp_threads_sleep_unless_told_otherwise(
    setting: str | None, workers: int | None, torch_first: bool, policy: str | None
) -> None:
    """Set before torch is imported (libgomp reads it then, once), where decoding processes
    may run (not with --workers 0), and never over the user's own choice; the command's
    module imports no torch before it."""
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        + ("import torch\n" if torch_first else "")
        + "from dltool.commands.predict import prepare_process\n"
        + "assert ('torch' in sys.modules) == "
        + repr(torch_first)
        + "\n"
        + f"prepare_process({workers!r})\n"
        + "print(os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | (
        {"OMP_WAIT_POLICY": setting} if setting else {}
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(policy)


@pytest.mark.parametrize(
    ("device_type", "size", "batch"),
    [("cpu", 224, 8), ("cpu", 112, 32), ("cpu", 28, 32), ("cpu", 640, 1), ("cuda", 224, 32), ("mps", 640, 32)],
)
def test_the_default_batch_is_smaller_on_a_cpu_the_larger_the_images(device_type: str, size: int, batch: int) -> None:
    """On a CPU larger batches hold more activations and run no faster: about eight 224-px
    images' worth of pixels per forward pass; an accelerator takes 32 whatever the size."""
    from dataclasses import dataclass

    from dltool.evaluation.model import default_batch_size

    @dataclass
    class Model:
        device_type: str
        in_shape: tuple[int, int, int]

    assert default_batch_size(Model(device_type, (3, size, size))) == batch  # type: ignore[arg-type]
    # eval's larger batches: 256 images of MNIST's size on a CPU, still 8 of 224 px
    evaluated = 256 if device_type != "cpu" or size <= 28 else batch
    assert default_batch_size(Model(device_type, (1, size, size)), largest=256) == evaluated  # type: ignore[arg-type]
