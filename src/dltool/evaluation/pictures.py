"""Images given to ``dltool.predict`` in memory — Pillow images, NumPy arrays, torch tensors —
as the pixels a file of the same image decodes to (``dltool.data.images``).

Arrays are (H, W) or (H, W, C), tensors (H, W) or (C, H, W) as torchvision makes them, C
being 1, 3 or 4 (alpha); a leading N makes a batch of N images (N, H, W, C) or (N, C, H, W).
An array (N, H, W) is refused rather than guessed: a (C, H, W) array read as N grey images
would give rows for images that do not exist. Integers are 0..255 (uint16 grey: 0..65535, as
a 16-bit file); floats are 0..1 or 0..255, as a float image file's are. A normalised tensor
(negative values) is refused: the model normalises its input with its run's mean and std.
NumPy and Pillow only: torch is never imported here (a tensor comes from a caller that has it).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np
from PIL import Image

from dltool.data.images import image_pixels
from dltool.errors import UsageError, quote

if TYPE_CHECKING:
    import torch

CHANNELS = (1, 3, 4)
SHAPES = (
    "(H, W) or (H, W, C) arrays, (H, W) or (C, H, W) tensors, C 1, 3 or 4, and batches of them (N first; "
    "grey images (N, H, W, 1): images[..., None])"
)


# What predict takes: a file, folder or glob pattern, or an image in memory.
ImageLike: TypeAlias = "str | os.PathLike[str] | Image.Image | np.ndarray | torch.Tensor"


@dataclass(frozen=True)
class InMemory:
    """An image given in memory: ``name`` stands for its path in the rows (``<image K>``: the
    K-th image given in memory, from 0), ``pixels`` its natural form, uint8 (1 or 3, H, W)."""

    name: str
    pixels: np.ndarray


Input = str | InMemory  # a path's text (a file, folder or glob pattern), or an image in memory


def given_inputs(inputs: ImageLike | Iterable[ImageLike]) -> list[Input]:
    """The input paths as text and the images in memory as their pixels; none at all is a usage
    error, as the command's missing PATH is (an empty list is likelier a filter that matched
    nothing than a request for no rows)."""
    single = isinstance(inputs, (str, os.PathLike)) or is_picture(inputs)  # an array is no list of rows
    items = [inputs] if single else list(cast("Iterable[ImageLike]", inputs))
    if not items:
        raise UsageError("inputs: no images given; pass image files, folders or glob patterns, or images in memory")
    numbers = itertools.count()
    return [each for item in items for each in _given(item, numbers)]


def only_paths(inputs: list[Input]) -> list[str]:
    """``inputs``, which must all be paths: segment names each mask after its image's file."""
    if any(isinstance(item, InMemory) for item in inputs):
        raise UsageError("inputs: segment names each mask after its image's file; save images in memory to files first")
    return [item for item in inputs if isinstance(item, str)]


def _given(item: object, numbers: Iterator[int]) -> list[Input]:
    """A path's text, or the images in memory that ``item`` holds (named by ``numbers``)."""
    if is_picture(item):
        return list(pictures(item, numbers))
    if not isinstance(item, (str, os.PathLike)):
        raise UsageError(
            f"inputs: {type(item).__name__} {quote(item)}: expected an image file, folder or glob pattern "
            "(str or Path), a PIL image, a NumPy array or a torch tensor"
        )
    return [os.fspath(item)]


def is_picture(item: object) -> bool:
    """Whether ``item`` is an image in memory (else it should be a path)."""
    return isinstance(item, (Image.Image, np.ndarray)) or _is_tensor(item)


def pictures(item: Any, numbers: Iterator[int]) -> Iterator[InMemory]:
    """The images ``item`` holds (a batch: several), each named by the next of ``numbers``."""
    if isinstance(item, Image.Image):
        yield InMemory(f"<image {next(numbers)}>", image_pixels(item))
        return
    array = _channels_last(item) if _is_tensor(item) else item
    for image in array if array.ndim == 4 else [array]:
        yield InMemory(f"<image {next(numbers)}>", image_pixels(Image.fromarray(_pillow_ready(image))))


def _is_tensor(item: object) -> bool:
    torch = sys.modules.get("torch")  # no tensor without torch imported
    return torch is not None and isinstance(item, torch.Tensor)


def _channels_last(tensor: Any) -> np.ndarray:
    """An (H, W), (C, H, W) or (N, C, H, W) tensor as NumPy's (H, W), (H, W, C) or (N, H, W, C)."""
    values = tensor.detach().cpu()
    array = (values.float() if values.is_floating_point() else values).numpy()
    if array.ndim == 2:
        return array
    if array.ndim not in (3, 4) or array.shape[-3] not in CHANNELS:
        raise UsageError(f"inputs: a tensor of shape {tuple(array.shape)}; expected {SHAPES}")
    return np.moveaxis(array, -3, -1)


def _pillow_ready(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) pixels in a dtype Pillow reads with the mode a file would have."""
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in CHANNELS):
        raise UsageError(f"inputs: an image array of shape {image.shape}; expected {SHAPES}")
    if image.dtype == np.bool_ or image.dtype == np.uint8 or (image.dtype == np.uint16 and image.ndim == 2):
        return image
    return _bytes(image)


def _bytes(image: np.ndarray) -> np.ndarray:
    """Pixels of another dtype as uint8: floats in 0..1 scaled by 255 (as a float file's),
    0..255 kept; integers in 0..255 kept. Anything else is refused, never clipped."""
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
        raise UsageError(f"inputs: image pixels of type {image.dtype}; expected integers or floats")
    low, high = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
    if not 0 <= low <= high <= 255:  # NaN compares false: refused too
        raise UsageError(
            f"inputs: image pixels from {low:g} to {high:g}; expected 0..255 (or floats in 0..1): "
            "pass images as loaded, not normalised (the model normalises them with its run's mean and std)"
        )
    scale = 255 if np.issubdtype(image.dtype, np.floating) and high <= 1 else 1
    return np.rint(image.astype(np.float64) * scale).astype(np.uint8)
