"""Batches decoded from an image folder's files while training (``data.loader: stream``).

The main process plans each epoch exactly as the memory loader does (``epoch_order``: the
permutation depends only on (seed, epoch), each rank takes its stride) and hands the sample
indices of one batch at a time to ``data.workers`` processes (a torch ``DataLoader`` with
persistent workers and prefetching; pinned memory on CUDA). A worker decodes its whole batch
into one uint8 tensor — training images with their random-resized crop cut from the file at
the resolution the crop needs (``dltool.data.stream_samples``), then the other per-image ops of
``data.augment`` on the CPU batch; val/test images through the evaluation transform. The
batch is normalised (by the worker on a CPU, else on the device) and mixed (MixUp/CutMix) in
the main process. Every draw comes from (seed, epoch, draw key) or (seed, epoch, batch): a batch depends neither
on the number of workers nor on where a resumed run starts. Without a random-resized crop a
streamed batch is the memory loader's batch, pixel for pixel (on a CPU device).

A segmentation split's worker decodes each image with its mask (``train_pair``): the
random-resized crop cuts the same box from both, the mask resized by nearest neighbour, and
the other geometric ops move the mask with its image (``Augmenter.pair``, as the memory
loader does); the batch's targets are then uint8 masks (K, H, W), int64 on the device.
A keypoint split's worker carries each image's target row: the random-resized crop maps the
points through the box it cuts from the file (``train_points``), and the other geometric
ops move them as the memory loader does (``dltool.data.keypoints.moved_targets``, with
``flip_order``); regression values pass as they are.

A file that cannot be decoded is left out of its batch and reported once (``report``);
a worker that dies (a decoder that crashes, the kernel's OOM killer) is a ``DatasetError``
naming the file it was decoding.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from dltool.data.augment import Augmenter, to_device
from dltool.data.files import FileSplit
from dltool.data.images import ImageDecodeError
from dltool.data.keypoints import augmented
from dltool.data.loader import batch_count, epoch_order, shard_size
from dltool.data.normalise import Normalise
from dltool.data.stream_samples import Sample, decode_sample
from dltool.data.stream_workers import init_worker, worker_count_unwarned
from dltool.errors import DatasetError

MAX_AUTO_WORKERS = 8
PREFETCH = 2  # batches each worker decodes ahead
# (split number, epoch, sample indices): one batch for a worker to decode.
Key = tuple[int, int, np.ndarray]
# (sample index, why its file was left out)
Skip = tuple[int, str]
# (uint8 images (K, C, H, W), int64 labels (K,) or uint8 masks (K, H, W), the files left out)
Decoded = tuple[torch.Tensor, torch.Tensor, list[Skip]]


def resolve_workers(workers: int | str) -> int:
    """``data.workers``: a count, or auto: one per core this process may run on, at most 8."""
    if workers != "auto":
        return int(workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_AUTO_WORKERS, cores))


class BatchDecoder(Dataset[Decoded]):
    """``decoder[key]``: the batch ``key`` names, decoded (and augmented, for a split with an
    augmenter; and normalised, with ``normalise``). In a worker, ``slots`` (shared memory, a
    row per worker: pid, split, sample) say which file it is decoding right now.
    ``flip_order``: a keypoint split's point order after a horizontal flip."""

    def __init__(
        self,
        splits: Sequence[FileSplit],
        augmenters: Sequence[Augmenter | None],
        slots: torch.Tensor,
        normalise: Normalise | None = None,
        flip_order: list[int] | None = None,
    ):
        self.splits, self.augmenters, self.slots = list(splits), list(augmenters), slots
        self.normalise = normalise
        self.flip_order = None if flip_order is None else torch.tensor(flip_order)

    def __getitem__(self, key: Key) -> Decoded:  # type: ignore[override]
        split_no, epoch, draws = key
        split, augmenter = self.splits[split_no], self.augmenters[split_no]
        samples, kept, skipped = self._decode(split_no, epoch, draws)
        keys = np.array(kept, dtype=np.int64)
        batch, targets = _stacked([image for image, _ in samples], split.image_shape), _targets(split, samples, keys)
        if augmenter is not None:
            batch, targets = self._augmented(split, augmenter, (batch, targets), epoch, keys)
        if self.normalise is not None:
            batch = self.normalise(batch)
        return batch, targets, skipped

    def _augmented(
        self,
        split: FileSplit,
        augmenter: Augmenter,
        batch: tuple[torch.Tensor, torch.Tensor],
        epoch: int,
        keys: np.ndarray,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, targets) through ``augmenter``, whose random-resized crop the samples
        already had: masks and keypoints move with their images, as in the memory loader."""
        kind = "masks" if split.masks is not None else "points" if split.stored_points is not None else "other"
        return augmented(augmenter, kind, batch, (epoch, keys), self.flip_order, cropped=True)

    def _decode(self, split_no: int, epoch: int, draws: np.ndarray) -> tuple[list[Sample], list[int], list[Skip]]:
        """The samples of ``draws`` that decode, their draw keys, and (index, reason) of the rest."""
        split, augmenter = self.splits[split_no], self.augmenters[split_no]
        worker = get_worker_info()
        slot = None if worker is None else self.slots[worker.id]
        samples, kept, skipped = [], [], []
        try:
            for draw in map(int, draws):
                index = draw % len(split)  # a repeated draw's key (see dltool.data.sampling)
                if slot is not None:
                    slot[1], slot[2] = split_no, index
                try:
                    samples.append(decode_sample(split, augmenter, epoch, draw))
                    kept.append(draw)
                except ImageDecodeError as error:
                    skipped.append((index, error.reason))
        finally:
            if slot is not None:
                slot[1] = -1
        return samples, kept, skipped


def _stacked(arrays: list[np.ndarray], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays) if arrays else np.empty((0, *shape), np.uint8))


def _targets(split: FileSplit, samples: list[Sample], keys: np.ndarray) -> torch.Tensor:
    """The batch's targets: each sample's own where the worker made it, else its row of the
    split's labels."""
    if split.masks is not None:
        return _stacked([mask for _, mask in samples if mask is not None], split.image_shape[1:])
    rows = [split.labels[key % len(split)] if own is None else own for (_, own), key in zip(samples, keys, strict=True)]
    return torch.from_numpy(np.stack(rows) if rows else np.empty((0, *split.labels.shape[1:]), split.labels.dtype))


class DecodePool:
    """The worker processes that decode batches for the stream loaders of a run's splits
    (``workers`` 0: decoded in this process). One pool serves train, val and test in turn.
    ``augmenters``: per split, the training transform its workers apply (None: none);
    ``flip_order``: a keypoint split's point order after a horizontal flip.
    Batches are normalised with ``mean``/``std`` by the workers when they train on the CPU
    (in parallel, as torchvision's transforms do), else on the device (``to_device``): a GPU
    receives uint8 pixels, a quarter of the bytes, from pinned memory.

    Close it (``close``) before a torchrun process group is destroyed: a live worker holds
    copies of the group's sockets."""

    def __init__(
        self,
        splits: Sequence[FileSplit],
        workers: int,
        device: torch.device,
        mean: list[float],
        std: list[float],
        augmenters: Sequence[Augmenter | None] | None = None,
        flip_order: list[int] | None = None,
    ):
        self.splits, self.device = list(splits), device
        self.augmenters = list(augmenters or [None] * len(self.splits))
        self.slots = torch.full((max(workers, 1), 3), -1, dtype=torch.int64).share_memory_()
        on_cpu = device.type == "cpu"
        self.normalise = None if on_cpu else Normalise(mean, std, device)
        self.decoder = BatchDecoder(
            self.splits, self.augmenters, self.slots, Normalise(mean, std, device) if on_cpu else None, flip_order
        )
        self.keys: list[Key] = []
        self.workers = workers
        self.loader: DataLoader[Decoded] | None = None
        if workers > 0:
            with worker_count_unwarned():
                self.loader = self._loader(workers)
        self._iterated = False

    def _loader(self, workers: int) -> DataLoader[Decoded]:
        return DataLoader(
            self.decoder,
            batch_size=None,  # a key is a whole batch: no collation
            sampler=self,  # type: ignore[arg-type]
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=True,
            prefetch_factor=PREFETCH,
            worker_init_fn=partial(init_worker, self.slots),
            generator=torch.Generator(),  # its seed draws leave the global RNG alone
        )

    def __iter__(self) -> Iterator[Key]:
        """The sampler's side: the keys of the pass being run."""
        return iter(self.keys)

    def decode(self, keys: list[Key]) -> Iterator[Decoded]:
        """The batches ``keys`` name, decoded, in order."""
        if self.loader is None:
            yield from (self.decoder[key] for key in keys)
            return
        self.keys = keys
        with worker_count_unwarned():
            iterator = self._start()
        try:
            yield from iterator
        except RuntimeError as error:
            if "DataLoader worker" not in str(error):
                raise
            raise DatasetError(self._crash(str(error))) from None

    def _start(self) -> Iterator[Decoded]:
        assert self.loader is not None
        if self._iterated or threading.current_thread() is not threading.main_thread():
            return iter(self.loader)
        # torch's first iterator installs a SIGCHLD handler that raises from whatever the
        # main thread runs (a checkpoint write included); a dead worker is found where the
        # batches are awaited instead (``decode``).
        previous = signal.getsignal(signal.SIGCHLD)
        iterator = iter(self.loader)
        if previous is not None:
            signal.signal(signal.SIGCHLD, previous)
        self._iterated = True
        return iterator

    def _crash(self, error: str) -> str:
        # torch names the dead workers: "DataLoader worker (pid(s) 12, 34) exited unexpectedly"
        named = re.search(r"pid(?:\(s\))? ([\d, ]+)", error)
        dead = {int(pid) for pid in re.findall(r"\d+", named.group(1))} if named else set()
        files = [
            self.splits[int(split_no)].path(int(index))
            for pid, split_no, index in self.slots.tolist()
            if pid in dead and split_no >= 0
        ]
        cause = error.rstrip(". ")
        if files:
            return (
                f"a data.workers process died while decoding {', '.join(files)} ({cause}): if that file crashes "
                "the decoder, remove it; else the machine may be short of memory (lower data.workers)"
            )
        return f"a data.workers process died ({cause}): the machine may be short of memory (lower data.workers)"

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        """A decoded batch on the device, normalised."""
        images = to_device(images, self.device)
        return images if self.normalise is None else self.normalise(images)

    def close(self) -> None:
        """Stop the worker processes (they also stop with this process)."""
        self.loader = None


class StreamLoader:
    """Normalised (images, labels) batches of one ``FileSplit`` (``pool.splits[split_no]``),
    decoded by ``pool``; the same interface and batch plan as ``BatchLoader``.

    ``report`` receives one line per file that cannot be decoded, the first time it is met.
    """

    def __init__(
        self,
        pool: DecodePool,
        split_no: int,
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
        limit: int | None = None,
        num_classes: int = 0,
        sampler: str = "random",
        report: Callable[[str], None] | None = None,
    ):
        self.pool, self.split_no, self.sampler = pool, split_no, sampler
        self.split = pool.splits[split_no]
        self.batch_size, self.shuffle, self.seed, self.shard, self.limit = batch_size, shuffle, seed, shard, limit
        self.device = pool.device
        self.augment = pool.augmenters[split_no]
        if self.augment is not None and self.augment.mixes and num_classes < 1:
            raise ValueError("mixing (data.augment.mixup/cutmix) needs the number of classes")
        self.num_classes = num_classes
        self.report = report or (lambda line: None)
        self.skipped: dict[int, str] = {}  # sample index → why its file was left out

    @property
    def num_samples(self) -> int:
        """Samples this rank is planned to see per epoch (unreadable files are left out as met)."""
        return shard_size(len(self.split), self.shuffle, self.shard)

    def __len__(self) -> int:
        return batch_count(self.num_samples, self.batch_size, self.shuffle, self.limit)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch`` from batch index ``start`` on."""
        order = epoch_order(self.split.labels, self.shuffle, self.seed, epoch, self.shard, self.sampler)
        size = self.batch_size
        keys = [(self.split_no, epoch, order[b * size : (b + 1) * size]) for b in range(start, len(self))]
        decoded = self.pool.decode(keys)
        for b, (_, _, indices), (images, labels, skipped) in zip(range(start, len(self)), keys, decoded, strict=True):
            self._note(skipped)
            if not len(labels):
                if self.shuffle:  # a training step needs samples
                    raise DatasetError(
                        f"none of the {len(indices)} files of batch {b + 1} of epoch {epoch + 1} can be decoded "
                        f"(first: {self.split.path(skipped[0][0])}: {skipped[0][1]})"
                    )
                continue
            images, labels = self.pool.to_device(images), to_device(labels, self.device)
            if self.split.masks is not None:  # moved with their images in the worker; never mixed
                yield images, labels.long()
            # transformed in the worker; class labels (not table targets) mixed here, per batch
            elif self.augment is not None and self.split.labels.ndim == 1:
                yield self.augment.mix(images, labels, epoch, b, self.num_classes)
            else:
                yield images, labels

    def _note(self, skipped: list[tuple[int, str]]) -> None:
        for index, reason in skipped:
            if index not in self.skipped:
                self.skipped[index] = reason
                self.report(f"skipped {self.split.path(index)}: {reason}")
