"""Image files to model-ready batches for ``predict``: lazily, in input order, in worker processes.

Paths are expanded lazily (folders walked in sorted order) and cut into chunks of one batch
each; each chunk is decoded in a worker process (``Decoder``: the evaluation transform,
JPEGs drafted by libjpeg at reduced scale) into one stacked uint8 array — unless OpenMP's
threads spin between parallel regions and the model is the slower side, measured on the
first chunks, which are then all decoded in the main process (``_measured_workers``). At
most ``ahead`` chunks are in flight, so memory stays flat however many files there are, and
chunks come back in the order they were submitted, so rows keep the input order.

Processes, not threads: decoding small images is mostly Python work under the GIL, and the
main process needs its core for inference. Decoding is Pillow and NumPy only (no torch).
Workers are forked on Linux (nothing imported again, nothing of the model touched), spawned
elsewhere; each ignores SIGINT, which the main process handles.
"""

from __future__ import annotations

import glob
import itertools
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from dltool._memory import return_large_blocks
from dltool._openmp import waits_passively
from dltool._signals import signals_deferred
from dltool.data.images import ImageDecodeError, decode_image, fit_image, read_image, to_channels
from dltool.data.walk import IMAGE_EXTENSIONS, image_entries, walked_folders
from dltool.errors import DatasetError, option
from dltool.evaluation.model import InferenceModel
from dltool.evaluation.pictures import InMemory, Input

T = TypeVar("T")
R = TypeVar("R")
MEASURED = 2  # chunks decoded here before choosing where the rest are (decoded_chunks' workers=None)


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str


@dataclass(frozen=True)
class Decoder:
    """The evaluation transform of one model's input, as a picklable callable: a file's path
    → uint8 (C, H, W), exactly as training's val/test split holds that file."""

    channels: int
    size: tuple[int, int]
    crop_pct: float | None

    @classmethod
    def of(cls, model: InferenceModel) -> Decoder:
        channels, height, width = model.in_shape
        return cls(channels, (height, width), model.crop_pct)

    def __call__(self, path: str) -> np.ndarray:
        return decode_image(path, channels=self.channels, size=self.size, crop_pct=self.crop_pct)

    def sized(self, path: str) -> tuple[np.ndarray, tuple[int, int]]:
        """``self(path)`` and the image's stored (width, height)."""
        image, _mode, stored = read_image(path, self.size, self.crop_pct)
        return self.fitted(image), stored

    def fitted(self, image: np.ndarray) -> np.ndarray:
        """An image in its natural form, uint8 (1 or 3, H, W), through the transform."""
        return to_channels(fit_image(image, self.size, self.crop_pct), self.channels)


@dataclass(frozen=True)
class Chunk:
    """One chunk of paths, decoded: ``images`` (N, C, H, W) uint8 holds the readable ones, in
    order, named by ``paths``; ``unreadable`` the others."""

    paths: list[str]
    images: np.ndarray
    unreadable: list[Unreadable]
    sizes: list[tuple[int, int]] = field(default_factory=list)  # each image's stored (width, height)


def decode_chunk(decoder: Decoder, paths: list[Input | Unreadable]) -> Chunk:
    """The chunk's files decoded (images in memory fitted); an input already known to be
    unreadable is passed on."""
    good: list[str] = []
    images: list[np.ndarray] = []
    sizes: list[tuple[int, int]] = []
    bad: list[Unreadable] = []
    for path in paths:
        if isinstance(path, Unreadable):
            bad.append(path)
            continue
        try:
            image, stored = _decoded(decoder, path)
        except ImageDecodeError as error:
            bad.append(Unreadable(error.path, error.reason))
            continue
        images.append(image)
        sizes.append(stored)
        good.append(path.name if isinstance(path, InMemory) else path)
    stacked = np.stack(images) if images else np.empty((0, decoder.channels, *decoder.size), np.uint8)
    return Chunk(good, stacked, bad, sizes)


def _decoded(decoder: Decoder, item: Input) -> tuple[np.ndarray, tuple[int, int]]:
    """The input through ``decoder`` and its stored (width, height)."""
    if isinstance(item, InMemory):
        return decoder.fitted(item.pixels), (item.pixels.shape[2], item.pixels.shape[1])
    return decoder.sized(item)


def decoded_chunks(paths: Iterable[Input], decoder: Decoder, *, chunk: int, workers: int | None) -> Iterator[Chunk]:
    """``paths`` expanded and decoded, ``chunk`` files at a time, in input order; in
    ``workers`` processes (0, or a single chunk: in this one), with at most ``workers + 1``
    chunks in flight. None: ``default_workers()`` where OpenMP's threads sleep between
    parallel regions (``dltool predict`` has them do so), else decided after the first chunks
    (``_measured_workers``)."""
    groups = chunks(expand_paths(paths), chunk)
    head = list(itertools.islice(groups, 2))
    groups = itertools.chain(head, groups)
    if workers is None and len(head) == 2:
        workers = default_workers() if waits_passively() else (yield from _measured_workers(decoder, groups))
    if not workers or len(head) < 2:  # one chunk: starting processes would cost more than it saves
        yield from (decode_chunk(decoder, group) for group in groups)
        return
    yield from _decoded_in_processes(decoder, groups, workers)


def _measured_workers(decoder: Decoder, groups: Iterator[list[Input | Unreadable]]) -> Generator[Chunk, None, int]:
    """Decode the first ``MEASURED`` chunks here, timing the decoding and what the caller does
    with each (the model's forward pass); then 0 (go on in this process) when the caller took
    the longer over the last, else ``default_workers()``.

    A decoding process runs beside the forward pass, whose threads take every core: where the
    model is the slower side, it only takes cores from it. On 2 cores, a ResNet-18 at 224 px
    over 1600×1200 JPEGs (decoding 8.5 ms an image, the forward pass 13 ms in onnxruntime)
    predicts 42 images/s decoding in the process and 36 with one decoding process; a small
    MLP, which waits on decoding, is several times faster with it. That holds while OpenMP's
    threads spin between parallel regions (torch's default): where they sleep, one decoding
    process wins either way (45 against 42 images/s in float32, 81 against 68 in bf16)."""
    decoding = using = 0.0
    for group in itertools.islice(groups, MEASURED):  # the first forward pass warms the model up
        started = time.perf_counter()
        decoded = decode_chunk(decoder, group)
        decoding = time.perf_counter() - started
        yield decoded
        using = time.perf_counter() - started - decoding
    return 0 if using > decoding else default_workers()


def _decoded_in_processes(
    decoder: Decoder, groups: Iterator[list[Input | Unreadable]], workers: int
) -> Iterator[Chunk]:
    pool = _Pool(workers, mp_context=_context(), initializer=_worker_setup)
    current: list[str] = []  # the files of the chunk awaited: named if its worker dies
    try:
        for group, future in ordered(pool, decode_chunk, decoder, groups, ahead=workers + 1):
            current = [path for path in group if isinstance(path, str)]
            yield future.result()
    except BrokenProcessPool:
        where = f" reading {current[0]} … {current[-1]}" if current else ""
        raise DatasetError(
            f"a decoding process died{where}; run with {option('workers', 0)} to see which file fails"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Pool(ProcessPoolExecutor):
    """A process pool whose ``submit`` no Ctrl-C or SIGTERM cuts midway: the first starts the
    workers, then the thread that tells them to exit; a stop between the two (about one SIGTERM
    in seven) left a worker waiting for work for ever, and the interpreter waiting on it at exit."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        with signals_deferred():
            return super().submit(fn, *args, **kwargs)


def ordered(
    pool: Executor, function: Callable[[T, list[R]], object], first: T, groups: Iterable[list[R]], *, ahead: int
) -> Iterator[tuple[list[R], Future]]:
    """(group, future of ``function(first, group)``) in the order of ``groups``, each future
    submitted to ``pool`` at most ``ahead`` groups before it is handed back, and ``groups``
    read no further ahead than that: the bound on memory."""
    queue: deque[tuple[list[R], Future]] = deque()
    for group in groups:
        queue.append((group, pool.submit(function, first, group)))
        if len(queue) >= ahead:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def _context() -> multiprocessing.context.BaseContext:
    # fork shares the loaded modules copy-on-write: workers start in milliseconds.
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def _worker_setup() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler that the fork copied
    return_large_blocks()


def default_workers() -> int:
    """Decoding processes: one per core but one (left to inference), at most 8; none on one core."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group


def expand_paths(inputs: Iterable[Input]) -> Iterator[Input | Unreadable]:
    """Files (and images in memory) as given; folders walked recursively in sorted order as
    training walks a folder (``_walk``); glob patterns expanded (``_matched``). A folder without
    an image file or a pattern that matches nothing is an ``Unreadable`` row, saying so (a
    missing file is one when it is read)."""
    for item in inputs:
        if isinstance(item, InMemory):
            yield item
        elif os.path.isdir(item):
            found = yield from _walk(item)
            if not found:
                yield Unreadable(item, f"a folder without image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        elif not os.path.exists(item) and glob.has_magic(item):
            yield from _matched(item)
        else:
            yield item


def _matched(pattern: str) -> Iterator[str | Unreadable]:
    """The files ``pattern`` matches, sorted, each once (however many folder links lead to
    it); a folder it matches is walked, as it would be had the shell expanded the pattern
    (``photos/*``: each class folder's images)."""
    given: set[tuple[str, str]] = set()
    for match in _glob(pattern):
        for path in _walk(match) if os.path.isdir(match) else [match]:
            if isinstance(path, Unreadable):
                yield path
            elif (key := _identity(path)) not in given:
                given.add(key)
                yield path
    if not given:
        yield Unreadable(pattern, "the pattern matches no file")


def _identity(path: str) -> tuple[str, str]:
    """A file as any folder link leads to it: its real folder and its name (a linked file is its own)."""
    folder, name = os.path.split(path)
    return os.path.realpath(folder or "."), name


def _glob(pattern: str) -> list[str]:
    """``glob.glob(pattern, recursive=True)``, sorted, but a ``**`` goes through each real folder
    once, as a folder walk does: glob's own goes round a link loop (``sub/up -> ..``) to the
    OS's limit, every name again at each of 40 levels (and 2^40 times for two such links).
    A trailing ``**`` gives its folders, which the caller walks."""
    parts = pattern.split("/")
    if "**" not in parts:
        return sorted(glob.glob(pattern))
    at = parts.index("**")
    base, rest = "/".join(parts[:at]), "/".join(parts[at + 1 :])
    bases = [b for b in (_glob(base) if glob.has_magic(base) else [base or "."]) if os.path.isdir(b)]
    if not rest:
        return bases
    folders = (os.path.join(b, sub) if b != "." or base else sub for b in bases for sub in walked_folders(b))
    return sorted({match for folder in folders for match in _glob(os.path.join(glob.escape(folder), rest))})


def _walk(folder: str) -> Generator[str | Unreadable, None, int]:
    """The image files under ``folder``, found as training finds a class folder's
    (``dltool.data.walk``); a sub-folder that cannot be listed is an ``Unreadable`` row.
    Returns how many files."""
    found = 0
    for relative, entry in image_entries(folder):
        if isinstance(entry, OSError):
            yield Unreadable(os.path.join(folder, relative), f"cannot list its files ({entry.strerror or entry})")
        else:
            found += 1
            yield entry.path
    return found


def read_path_lines(lines: Iterable[str]) -> Iterator[str]:
    """Paths from newline-separated text (``-`` on the command line), lines of blanks skipped
    (a path may start or end with a space, but is not only spaces); the byte-order mark that
    Notepad and PowerShell put before a UTF-8 list is no part of a path."""
    for line in lines:
        if (line := line.rstrip("\r\n").lstrip("\ufeff")).strip():
            yield line
