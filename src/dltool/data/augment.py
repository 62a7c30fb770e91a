"""Training augmentation of uint8 image batches on the device: no per-sample Python.

``Augmenter`` applies every ``data.augment`` key to a batch at once, in this order:
random-resized crop and affine map (one ``grid_sample``, see ``dltool.data.geometry``),
padded crop and flips, the auto-augment policy (``dltool.data.autoaugment``), colour jitter,
greyscale and blur (``dltool.data.colour``), then cutout and random erasing. MixUp/CutMix
(``mix``) come last, on the normalised batch (``dltool.data.mixing``). ``pair`` moves
segmentation masks with their images: the geometric ops (crop, affine, padded crop, flips)
resample a mask exactly as its image, by nearest neighbour, with ``IGNORE`` where the image
gets black fill; the photometric ops and the erasing touch the image only.

Every per-sample choice is read from ``sample_uniforms(seed, epoch, sample index, stream)``
with one stream per op: a sample is transformed the same way in any batch, on any device,
after a resume, in either loader, and switching one op on or off leaves the others'
choices alone. The draws are made in NumPy on the CPU and queued to the device without a
sync; each op then runs on the whole batch (or on the rows that drew it) in a few kernels.

- Random crop with zero padding: the batch is padded once, and every possible crop window
  of it is a strided view (window k starts at flat element k); each sample's crop is one
  row of that view, picked with a single ``index_select``.
- Horizontal flip: the chosen samples are mirrored in one ``index_copy_``. A crop at column
  offset x of a mirrored image is the mirror of the crop at 2·padding − x, so flipping
  first and mirroring the offset gives exactly "crop, then flip".
- Cutout and erasing: one multiply by a per-sample mask that is 0 on a box.

The padding and the cutout square are black (0), as with torchvision's
``RandomCrop(padding=p)`` on PIL images; erased boxes take the image's mean colour (what
torchvision's ``RandomErasing(value=0)`` gives after normalisation). (These formulations
were chosen by measurement: on CPU, ``torch.where`` and ``masked_fill`` with broadcast
masks, and 4-D ``flip``, are several times slower.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from dltool.config.augment import AugmentConfig
from dltool.data import autoaugment, colour
from dltool.data.draws import sample_uniforms
from dltool.data.geometry import BOX_DRAWS, affine_matrices, crop_matrices, erasing_boxes, resized_crop_boxes, warp
from dltool.data.mixing import mix_batch
from dltool.tasks.pixels import IGNORE

# Keeps the augmentation streams apart from each other and from other consumers of draws.
_STREAM = 0x417567
STREAMS = {
    name: _STREAM + k
    for k, name in enumerate(
        ["crop", "affine", "padding", "flip", "vflip", "auto", "jitter", "grey", "blur", "cutout", "erase", "mix"]
    )
}


class Augmenter:
    """The training transform of ``config``: ``crop_box`` and ``__call__`` per image, ``mix``
    per batch. ``seed`` is the run's ``train.seed``."""

    def __init__(self, config: AugmentConfig, seed: int):
        self.config = config
        self.seed = seed

    @property
    def transforms(self) -> bool:
        """Whether ``__call__`` changes images."""
        c = self.config
        per_image = (c.random_resized_crop, c.affine, c.color_jitter, c.blur, c.random_erasing)
        flags = (c.crop_padding, c.flip, c.vflip, c.grayscale, c.cutout, c.auto.policy != "none")
        return any(x is not None for x in per_image) or any(flags)

    @property
    def mixes(self) -> bool:
        """Whether ``mix`` mixes (MixUp or CutMix on)."""
        return self.config.mixup > 0 or self.config.cutmix > 0

    @property
    def enabled(self) -> bool:
        return self.transforms or self.mixes

    def draws(self, op: str, epoch: int, indices: np.ndarray, count: int) -> np.ndarray:
        """(len(indices), count) uniforms of ``op`` for these samples in ``epoch``."""
        return sample_uniforms(self.seed, epoch, indices, STREAMS[op], count)

    def crop_box(self, epoch: int, index: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) in whole pixels of sample ``index``'s random-resized
        crop of a ``height`` × ``width`` image: the same share of the image as the memory
        loader crops; the whole image when ``random_resized_crop`` is off."""
        crop = self.config.random_resized_crop
        if crop is None:
            return 0, 0, height, width
        uniforms = self.draws("crop", epoch, np.array([index]), BOX_DRAWS)
        top, left, h, w = resized_crop_boxes(uniforms, height, width, crop.scale, crop.ratio)[0]
        rows, columns = min(height, max(1, round(h))), min(width, max(1, round(w)))
        return min(height - rows, max(0, round(top))), min(width - columns, max(0, round(left))), rows, columns

    def __call__(self, images: torch.Tensor, epoch: int, indices: np.ndarray, cropped: bool = False) -> torch.Tensor:
        """uint8 ``images`` (B, C, H, W) of samples ``indices`` augmented for ``epoch``;
        ``cropped``: the loader already applied ``crop_box`` (the random-resized crop is skipped)."""
        return self.pair(images, None, epoch, indices, cropped)[0]

    def pair(
        self, images: torch.Tensor, masks: torch.Tensor | None, epoch: int, indices: np.ndarray, cropped: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``__call__`` of ``images`` that moves their uint8 ``masks`` (B, H, W) of class indices
        with them (see the module docstring); ``masks`` None: images alone."""
        if not self.transforms or len(images) == 0:
            return images, masks
        if masks is not None and self.config.auto.policy != "none":
            raise ValueError("data.augment.auto moves pixels of the image alone: not with masks")
        indices = np.asarray(indices, dtype=np.int64)
        images, masks = self._geometry(images, masks, epoch, indices, cropped)
        images, masks = self._crop_and_flips(images, masks, epoch, indices)
        images = self._auto(images, epoch, indices)
        images = self._colour(images, epoch, indices)
        return self._erase(images, epoch, indices), masks

    def mix(
        self, images: torch.Tensor, labels: torch.Tensor, epoch: int, batch: int, num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MixUp or CutMix of normalised ``images``: (images, float targets (B, K)), drawn
        from (seed, epoch, batch); (images, labels) unchanged when both are off."""
        if not self.mixes or len(images) == 0:
            return images, labels
        rng = np.random.default_rng([self.seed, epoch, batch, STREAMS["mix"]])
        return mix_batch(images, labels, num_classes, (self.config.mixup, self.config.cutmix), rng)

    def _geometry(
        self, images: torch.Tensor, masks: torch.Tensor | None, epoch: int, indices: np.ndarray, cropped: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        crop = None if cropped else self.config.random_resized_crop
        if crop is None and self.config.affine is None:
            return images, masks
        height, width = images.shape[-2:]
        frame = None
        if crop is not None:
            boxes = resized_crop_boxes(
                self.draws("crop", epoch, indices, BOX_DRAWS), height, width, crop.scale, crop.ratio
            )
            frame = crop_matrices(boxes, height, width)
        theta = self.affine(epoch, indices, (height, width))
        if theta is None:  # a crop alone
            assert frame is not None
            theta, frame = frame, None
        device = images.device
        maps = on_device(theta, device), None if frame is None else on_device(frame, device)
        if masks is not None:
            masks = warp(masks[:, None], maps[0], "nearest", maps[1], fill=IGNORE)[:, 0]
        return warp(images, maps[0], frame=maps[1]), masks

    def affine(self, epoch: int, indices: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
        """The output → input maps (N, 3, 3) of these samples' random affine transform; None when off."""
        a = self.config.affine
        if a is None:
            return None
        u = self.draws("affine", epoch, indices, 5)
        angle = (2 * u[:, 0] - 1) * a.degrees
        shift = (2 * u[:, 1:3] - 1) * a.translate * np.array([size[1], size[0]])
        scale = a.scale[0] + (a.scale[1] - a.scale[0]) * u[:, 3]
        shear = np.zeros((len(u), 2))
        shear[:, 0] = np.tan(np.deg2rad((2 * u[:, 4] - 1) * a.shear))
        return affine_matrices(angle, shift, scale, shear, np.zeros((len(u), 2)), size)

    def _crop_and_flips(
        self, images: torch.Tensor, masks: torch.Tensor | None, epoch: int, indices: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        pad, device = self.config.crop_padding, images.device
        if pad > 0 or self.config.flip:
            offsets = on_device((self.draws("padding", epoch, indices, 2) * (2 * pad + 1)).astype(np.int64), device)
            flipped = on_device(self._chosen("flip", epoch, indices, 0.5 if self.config.flip else 0.0), device)
            images = crop_and_flip(images, offsets, flipped, pad)
            if masks is not None:
                masks = crop_and_flip(masks[:, None], offsets, flipped, pad, fill=IGNORE)[:, 0]
        if self.config.vflip:
            flipped = on_device(self._chosen("vflip", epoch, indices, 0.5), device)
            images = vflip(images, flipped)
            masks = None if masks is None else vflip(masks[:, None], flipped)[:, 0]
        return images, masks

    def _chosen(self, op: str, epoch: int, indices: np.ndarray, probability: float) -> np.ndarray:
        """Rows (positions in the batch) that ``op`` applies to, each with ``probability``."""
        return np.flatnonzero(self.draws(op, epoch, indices, 1)[:, 0] < probability)

    def _auto(self, images: torch.Tensor, epoch: int, indices: np.ndarray) -> torch.Tensor:
        auto = self.config.auto
        if auto.policy == "none":
            return images
        table = autoaugment.magnitudes(auto.policy, *images.shape[-2:])
        layers = auto.ops if auto.policy == "randaugment" else 1
        fixed = auto.magnitude if auto.policy == "randaugment" else None
        u = self.draws("auto", epoch, indices, autoaugment.DRAWS_PER_LAYER * layers)
        for layer in range(layers):
            ops, values = autoaugment.draw_layer(u[:, 3 * layer : 3 * layer + 3], table, fixed)
            images = autoaugment.apply_layer(images, ops, values, to_device)
        return images

    def _colour(self, images: torch.Tensor, epoch: int, indices: np.ndarray) -> torch.Tensor:
        c = self.config
        if c.color_jitter is None and c.grayscale == 0 and c.blur is None:
            return images
        x = images.float()
        if c.color_jitter is not None:
            x = self._jitter(x, epoch, indices)
        if c.grayscale > 0:
            x = _on_rows(x, self._chosen("grey", epoch, indices, c.grayscale), colour.greyscale)
        if c.blur is not None:
            x = self._blur(x, epoch, indices)
        return x.round_().clamp_(0, 255).to(torch.uint8)

    def _jitter(self, x: torch.Tensor, epoch: int, indices: np.ndarray) -> torch.Tensor:
        """torchvision's ColorJitter, in a fixed order (brightness, contrast, saturation, hue)."""
        jitter = self.config.color_jitter
        assert jitter is not None
        u = on_device(self.draws("jitter", epoch, indices, 4), x.device)
        for k, (strength, op) in enumerate(
            [
                (jitter.brightness, colour.brightness),
                (jitter.contrast, colour.contrast),
                (jitter.saturation, colour.saturation),
            ]
        ):
            if strength > 0:
                low = max(0.0, 1.0 - strength)
                x = op(x, low + (1.0 + strength - low) * u[:, k])
        if jitter.hue > 0:
            x = colour.hue(x, (2 * u[:, 3] - 1) * jitter.hue)
        return x

    def _blur(self, x: torch.Tensor, epoch: int, indices: np.ndarray) -> torch.Tensor:
        blur = self.config.blur
        assert blur is not None
        u = self.draws("blur", epoch, indices, 2)
        rows = np.flatnonzero(u[:, 0] < blur.probability)
        low, high = blur.sigma
        sigmas = on_device(low + (high - low) * u[rows, 1], x.device)
        return _on_rows(x, rows, lambda chosen: colour.gaussian_blur(chosen, sigmas, high))

    def _erase(self, images: torch.Tensor, epoch: int, indices: np.ndarray) -> torch.Tensor:
        c, device = self.config, images.device
        height, width = images.shape[-2:]
        if c.cutout > 0:
            centres = (self.draws("cutout", epoch, indices, 2) * np.array([height, width])).astype(np.int64)
            images = cutout(images, on_device(centres, device), c.cutout)
        if c.random_erasing is not None:
            e = c.random_erasing
            u = self.draws("erase", epoch, indices, 1 + BOX_DRAWS)
            boxes = erasing_boxes(u[:, 1:], height, width, e.scale, e.ratio)
            boxes[u[:, 0] >= e.probability, 2:] = 0
            images = erase(images, on_device(boxes, device))
        return images


def on_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A NumPy array as a tensor on ``device`` (float64 arrays as float32), queued without a sync."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return to_device(tensor.float() if tensor.dtype == torch.float64 else tensor, device)


def _on_rows(images: torch.Tensor, rows: np.ndarray, op: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``images`` with ``op`` applied to the batch rows ``rows`` only."""
    if len(rows) == 0:
        return images
    chosen = on_device(rows, images.device)
    return images.index_copy(0, chosen, op(images.index_select(0, chosen)))


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor copied to ``device`` without waiting for it: a plain copy from pageable
    memory to a GPU first waits for every queued kernel, which would stall the CPU once per
    batch; a pinned copy is queued behind them instead."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.contiguous().pin_memory().to(device, non_blocking=True)


def crop_and_flip(
    images: torch.Tensor, offsets: torch.Tensor, flipped: torch.Tensor, padding: int, fill: int = 0
) -> torch.Tensor:
    """Each image padded by ``padding`` with ``fill``, cropped back to its size at (row, column)
    ``offsets`` (B, 2) in [0, 2·padding], then mirrored left-right if its index is in
    ``flipped`` (a 1-D tensor of sample indices)."""
    n, channels, height, width = images.shape
    columns = offsets[:, 1]
    if len(flipped):
        mirrored = images.index_select(0, flipped)
        # A 2-D fliplr is much faster than a 4-D flip on CPU.
        mirrored = mirrored.view(-1, width).fliplr().view(mirrored.shape)
        images = images.clone().index_copy_(0, flipped, mirrored)
        columns = torch.where(_mask(flipped, n), 2 * padding - columns, columns)
    if padding == 0:
        return images
    padded = F.pad(images, (padding,) * 4, value=fill).contiguous()
    padded_height, padded_width = height + 2 * padding, width + 2 * padding
    windows = padded.as_strided(
        (padded.numel() - (height - 1) * padded_width - width + 1, height, width), (1, padded_width, 1)
    )
    plane = padded_height * padded_width
    first = (offsets[:, 0] * padded_width + columns)[:, None]  # (B, 1) within a plane
    starts = (torch.arange(n * channels, device=images.device).view(n, channels) * plane + first).view(-1)
    return windows.index_select(0, starts).view(n, channels, height, width)


def _mask(indices: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.bool, device=indices.device).index_fill_(0, indices, True)


def vflip(images: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """Images mirrored top-bottom where their row is in ``flipped`` (a 1-D tensor)."""
    if len(flipped) == 0:
        return images
    height, width = images.shape[-2:]
    mirrored = images.index_select(0, flipped)
    mirrored = mirrored.view(-1, height, width).flip(1).view(mirrored.shape)
    return images.index_copy(0, flipped, mirrored)


def _keep(boxes: torch.Tensor, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, H, W): 0 inside each image's box (top, left, h, w), 1 elsewhere."""
    top, left, h, w = (boxes[:, k : k + 1] for k in range(4))
    rows = torch.arange(height, device=boxes.device)[None, :]
    columns = torch.arange(width, device=boxes.device)[None, :]
    outside_rows = (rows < top) | (rows >= top + h)  # (B, H)
    outside_columns = (columns < left) | (columns >= left + w)  # (B, W)
    return (outside_rows[:, :, None] | outside_columns[:, None, :]).to(dtype)[:, None]


def cutout(images: torch.Tensor, centres: torch.Tensor, side: int) -> torch.Tensor:
    """Zero a ``side``-wide square per image, centred at (row, column) ``centres`` (B, 2)
    (its top-left corner at centre − side//2), clipped at the borders."""
    corners = centres - side // 2
    boxes = torch.cat([corners, torch.full_like(corners, side)], 1)
    height, width = images.shape[-2:]
    return images * _keep(boxes, height, width, images.dtype)  # a multiply: faster than masked_fill


def erase(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """uint8 images with each box (top, left, h, w) (B, 4) filled with the image's mean colour."""
    height, width = images.shape[-2:]
    keep = _keep(boxes, height, width, images.dtype)
    fill = images.float().mean((2, 3), keepdim=True).round_().to(images.dtype)
    return images * keep + fill * (1 - keep)
