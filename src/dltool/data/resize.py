"""The evaluation transform's geometry (``fit_images``) and the resampling under it.

No torch here: ``dltool predict`` with an ONNX export decodes, fits and normalises images
without importing it (the decoding processes neither), and every other caller goes through
the same code. The resampling is Pillow's on float pixels, each channel a plane: about twice
as fast as NumPy, and as fast as torch's ``F.interpolate`` on one image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dltool._memory import check_fits

Size = int | tuple[int, int]


def fit_images(images: np.ndarray, size: Size, crop_pct: float | None) -> np.ndarray:
    """uint8 images (N, C, H, W) resized to cover ``size / crop_pct`` with their aspect
    ratio kept (antialiased bilinear), then centre-cropped to ``size`` (int: square).

    For a square ``size`` the short side becomes round(size / crop_pct), as timm's and
    torchvision's evaluation transforms do; crop_pct 1.0 on a square image is a plain resize.
    crop_pct None stretches to ``size`` (what runs made before ``data.crop_pct`` did).
    """
    height, width = pair(size)
    if crop_pct is None:
        return resize_images(images, (height, width))
    scaled_h, scaled_w = pre_crop_size(images.shape[-2:], (height, width), crop_pct)
    resized = resize_images(images, (scaled_h, scaled_w))
    top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
    return np.ascontiguousarray(resized[..., top : top + height, left : left + width])


def pre_crop_size(stored: tuple[int, int], size: Size, crop_pct: float) -> tuple[int, int]:
    """(height, width) an image of ``stored`` (height, width) is resized to before the crop."""
    height, width = pair(size)
    source_h, source_w = stored
    if source_h * width <= source_w * height:  # the height limits: it becomes round(height / crop_pct)
        scaled_h = round(height / crop_pct)
        return scaled_h, max(width, round(source_w * scaled_h / source_h))
    scaled_w = round(width / crop_pct)
    return max(height, round(source_h * scaled_w / source_w)), scaled_w


def fit_transform(
    stored: tuple[int, int], size: tuple[int, int], crop_pct: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset), each (x, y): a stored pixel position p lands at p · scale − offset in
    the ``size`` (height, width) image ``fit_images`` makes of a ``stored`` (width, height) image."""
    width, height = stored
    if crop_pct is None:
        return np.array([size[1] / width, size[0] / height]), np.zeros(2)
    scaled_h, scaled_w = pre_crop_size((height, width), size, crop_pct)
    offset = np.array([(scaled_w - size[1]) // 2, (scaled_h - size[0]) // 2], dtype=np.float64)
    return np.array([scaled_w / width, scaled_h / height]), offset


def pair(size: Size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def resize_images(images: np.ndarray, size: Size) -> np.ndarray:
    """uint8 images (..., H, W) resized to ``size`` (int: square) with bilinear interpolation,
    antialiased when shrinking (``resample``), rounded back to uint8. Images already that size
    come back unchanged."""
    height, width = pair(size)
    if images.shape[-2:] == (height, width):
        return images
    check_fits(images[..., :1, :1].size * height * width, "resizing the images", "data.image_size")
    out = np.empty((*images.shape[:-2], height, width), np.uint8)
    for index in np.ndindex(images.shape[:-2]):
        out[index] = np.clip(np.rint(resample(images[index], (height, width))), 0, 255)
    return out


def resample(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One plane (H, W) of any numbers resized to ``size`` (height, width) as float32:
    Pillow's bilinear filter on 32-bit float pixels, which spreads over every source pixel an
    output pixel covers when shrinking (the filter ``F.interpolate(..., antialias=True)``
    copies; rounded to uint8 the two differ by at most 1, where the exact value is within float
    rounding of a half: a few pixels in 10,000 of a photo, up to a few percent of an image
    enlarged by a simple ratio such as 8 to 10)."""
    picture = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))
    return np.asarray(picture.resize((size[1], size[0]), Image.Resampling.BILINEAR))
