"""Batches straight from uint8 image tensors held on the training device.

No per-sample Python: each batch is one index into the tensor, augmented (training only,
see ``dltool.data.augment``) and normalised on the device. The shuffle order of an epoch
depends only on (seed, epoch), a sample's augmentation only on (seed, epoch, sample index)
and a batch's mixing only on (seed, epoch, batch), so a run resumed in the middle of an
epoch sees exactly the batches it would have seen, and under torchrun every rank agrees on
the order and takes its own shard of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from dltool.config.augment import AugmentConfig
from dltool.data.arrays import Split, target_kind
from dltool.data.augment import Augmenter, to_device
from dltool.data.keypoints import augmented
from dltool.data.normalise import Normalise
from dltool.data.sampling import SAMPLERS

NORMALISED_BYTES = 32 * 2**20  # a split's float32 copy at most, to be normalised once


class BatchLoader:
    """Normalised (images, labels) batches of one split, shuffled per epoch when asked.

    ``shard=(rank, world_size)`` keeps every ``world_size``-th sample from ``rank`` on;
    ``sampler`` names how a shuffled epoch draws (``dltool.data.sampling``); ``limit`` caps
    the batches per epoch (quick tries, sanity checks). With MixUp/CutMix on (``augment``),
    the targets are float (B, ``num_classes``) rows instead of int64 labels.
    A split whose labels are masks (N, H, W) yields int64 masks, moved by the geometric
    augmentation with their images (``Augmenter.pair``); one of keypoints yields them moved
    too (``dltool.data.keypoints``, ``flip_order``: the points' order after a horizontal flip);
    regression values pass unchanged. Only class labels are mixed.
    """

    def __init__(
        self,
        split: Split,
        *,
        batch_size: int,
        mean: list[float],
        std: list[float],
        device: torch.device,
        shuffle: bool = False,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
        limit: int | None = None,
        augment: AugmentConfig | None = None,
        num_classes: int = 0,
        sampler: str = "random",
        flip_order: list[int] | None = None,
        read_once: bool = False,
    ):
        self.images, self.rows = _images_on(split, device)
        self.labels = torch.from_numpy(split.labels).to(device)
        self.kind = target_kind(split.labels)
        self.masks = self.kind == "masks"
        self.flip_order = None if flip_order is None else torch.tensor(flip_order, device=device)
        self.split_labels, self.sampler = split.labels, sampler
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = shard
        self.limit = limit
        augmenter = Augmenter(augment, seed) if augment is not None else None
        self.augment = augmenter if augmenter is not None and augmenter.enabled else None
        if self.augment is not None and self.augment.mixes and num_classes < 1:
            raise ValueError("mixing (data.augment.mixup/cutmix) needs the number of classes")
        self.num_classes = num_classes
        self.normalise = Normalise(mean, std, device)
        # A small split that is not augmented is normalised once, as a hand-written loop does,
        # rather than batch by batch: the same values, three ops a step fewer. Not one that is
        # ``read_once`` (eval): allocating the float copy costs more than the ops it saves
        # (10,000 MNIST images: 13 ms to normalise up front and read, 2 ms batch by batch).
        small = 4 * len(split) * _pixels(split) <= NORMALISED_BYTES
        self.normalised = self.augment is None and small and not read_once
        if self.normalised:
            self.images, self.rows = self.normalise(self._gather(slice(None))), None

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (training shards are cut to equal sizes)."""
        return shard_size(len(self.labels), self.shuffle, (self.rank, self.world_size))

    def __len__(self) -> int:
        """Batches per epoch; training drops a ragged last batch (BatchNorm needs > 1 sample)."""
        return batch_count(self.num_samples, self.batch_size, self.shuffle, self.limit)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch`` from batch index ``start`` on."""
        order = self._order(epoch)  # draw keys: augmentation draws by key, images by sample
        samples = None if order is None else order % len(self.split_labels)
        on_device = None if samples is None else to_device(torch.from_numpy(samples), self.images.device)
        for b in range(start, len(self)):
            rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
            if on_device is None:
                images, labels = self._gather(rows), self.labels[rows]
            else:
                images, labels = self._gather(on_device[rows]), self.labels.index_select(0, on_device[rows])
            if self.augment is None:
                yield images if self.normalised else self.normalise(images), labels.long() if self.masks else labels
                continue
            indices = order[rows] if order is not None else np.arange(len(self.labels))[rows]
            images, labels = augmented(self.augment, self.kind, (images, labels), (epoch, indices), self.flip_order)
            images = self.normalise(images)
            if self.masks:
                yield images, labels.long()
                continue
            yield (
                self.augment.mix(images, labels, epoch, b, self.num_classes)
                if self.kind == "labels"
                else (images, labels)
            )

    def _gather(self, samples: slice | torch.Tensor) -> torch.Tensor:
        """The images of ``samples`` (positions in the split), through the split's rows when it
        indexes a shared array. index_select copies whole rows; images[order] goes element by
        element (~25x slower on CPU)."""
        if self.rows is not None:
            return self.images.index_select(0, self.rows[samples])
        return self.images[samples] if isinstance(samples, slice) else self.images.index_select(0, samples)

    def _order(self, epoch: int) -> np.ndarray | None:
        """Sample indices of this rank in this epoch; None for all of them in order."""
        if not self.shuffle and self.world_size == 1:
            return None
        shard = (self.rank, self.world_size)
        return epoch_order(self.split_labels, self.shuffle, self.seed, epoch, shard, self.sampler)


def shard_size(total: int, shuffle: bool, shard: tuple[int, int]) -> int:
    """Samples of ``total`` that rank ``shard[0]`` of ``shard[1]`` sees per epoch."""
    rank, world_size = shard
    return total // world_size if shuffle else len(range(rank, total, world_size))


def batch_count(samples: int, batch_size: int, shuffle: bool, limit: int | None) -> int:
    """Batches per epoch of ``samples``; shuffled (training) ones drop a ragged last batch."""
    full = shuffle and samples >= batch_size
    batches = samples // batch_size if full else math.ceil(samples / batch_size)
    return batches if limit is None else min(batches, limit)


def epoch_order(
    labels: np.ndarray, shuffle: bool, seed: int, epoch: int, shard: tuple[int, int], sampler: str = "random"
) -> np.ndarray:
    """This rank's draw keys in ``epoch`` (a key's sample is ``key % len(labels)``, see
    ``dltool.data.sampling``). Shuffled: the ``sampler``'s draws, which depend only on
    (seed, epoch, labels), cut to a multiple of the world size, every rank taking its own
    stride of them (``random``: each sample once per epoch across ranks); else every
    world-size-th sample from the rank on. Both loaders plan their epochs with it."""
    rank, world_size = shard
    total = len(labels)
    if not shuffle:
        return np.arange(rank, total, world_size)
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    order = SAMPLERS[sampler](labels, torch.Generator().manual_seed(state))
    return order[: total - total % world_size][rank::world_size]


def _pixels(split: Split) -> int:
    return math.prod(split.image_shape)


def _images_on(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The split's images on ``device``, and the rows to read them through (None: in order).

    On the CPU the split's array is used where it lies (a memory-mapped cache stays mapped,
    a val split drawn from train keeps indexing it). On an accelerator only the split's own
    images are copied over, a chunk at a time, so host memory holds one chunk at most."""
    if device.type == "cpu":
        rows = torch.from_numpy(split.rows) if split.rows is not None else None
        return torch.from_numpy(split.pixels), rows
    images = torch.empty((len(split), *split.image_shape), dtype=torch.uint8, device=device)
    start = 0
    for chunk in split.chunks():
        images[start : start + len(chunk)] = torch.from_numpy(chunk).to(device)
        start += len(chunk)
    return images, None
