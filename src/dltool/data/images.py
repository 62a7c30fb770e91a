"""Decoding one image file into a uint8 array (C, H, W): the single path shared by training
(image folders) and prediction, so a model always sees pixels prepared the same way.

The steps, in this order (``decode_image``):

1. open with Pillow, refusing decompression bombs: images over twice
   ``PIL.Image.MAX_IMAGE_PIXELS`` (179 MP), Pillow's own error, as torchvision's and timm's
   loaders do (Pillow's warning from 89.5 MP on would refuse the photos of 100 MP cameras);
2. apply the EXIF orientation (``ImageOps.exif_transpose``);
3. convert to its natural form, grey (1 channel) or RGB (3): palette images by their palette
   (grey when every palette entry is grey), CMYK and YCbCr by Pillow's conversion, 16-bit
   grey (``I;16``, ``I``) scaled to 8 bits (round(v × 255 / 65535)), float (``F``) in [0, 1]
   scaled by 255 (other float ranges clipped to 0..255), and alpha (RGBA, LA, PA, palette transparency) composited on black, so a
   transparent pixel is black whatever colour it hides;
4. fit to the requested size with ``fit_image``, the evaluation transform: resize (antialiased
   bilinear, ``dltool.data.resize``) so the image covers ``size / crop_pct`` with its aspect ratio
   kept — for a square size, the short side becomes round(size / crop_pct) — then cut out the
   centre ``size``; crop_pct None (runs made before it existed) stretches to ``size`` instead;
5. convert to the requested channel count: grey is replicated to RGB, RGB becomes grey with
   Pillow's ITU-R 601-2 luma (L = R·299/1000 + G·587/1000 + B·114/1000).

A file that is not an image, is truncated or corrupt, or is a decompression bomb raises
``ImageDecodeError`` with the path and the reason; so does a path that is not a regular file
(a FIFO, a device, a symlink loop), which is never read (``dltool._io.open_regular``).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from dltool._io import open_regular
from dltool.data.resize import Size, fit_images, pair
from dltool.errors import DatasetError

# Modes Pillow opens that hold one grey channel (16-bit and float ones scaled below).
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
SizeFor = Callable[[int, int], Size]  # the size needed, from the stored (height, width)
# A box (top, left, rows, columns) in the stored image, from its stored (height, width).
BoxFor = Callable[[int, int], tuple[int, int, int, int]]
# Bumped whenever decoding changes the pixels it produces (caches keyed on it are rebuilt).
DECODER = "6: float images in [0, 1] scaled to 0..255 (were clipped: black)"


class ImageDecodeError(DatasetError):
    """A file that cannot be decoded as an image; ``reason`` says why, in a few words."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def decode_image(
    path: str | Path, *, channels: int | None = None, size: Size | None = None, crop_pct: float | None = 1.0
) -> np.ndarray:
    """The image at ``path`` as uint8 (C, H, W): the evaluation transform of one file.

    ``channels``: 1 or 3, or None for the image's own (1 for grey modes, else 3).
    ``size``: an int for a square, (height, width), or None to keep the image's size.
    ``crop_pct``: see ``fit_image``.
    """
    image, _mode, _stored = read_image(path, size, crop_pct)
    if size is not None:
        image = fit_image(image, size, crop_pct)
    return to_channels(image, channels) if channels is not None else image


def image_pixels(image: Image.Image) -> np.ndarray:
    """An opened or made Pillow image in its natural form, uint8 (1 or 3, H, W), as
    ``read_image`` gives a file's: EXIF orientation, modes, alpha on black (steps 2 and 3)."""
    return _natural(ImageOps.exif_transpose(image))


def fit_image(image: np.ndarray, size: Size, crop_pct: float | None) -> np.ndarray:
    """uint8 (C, H, W) → (C, *size): the evaluation transform (``fit_images`` of one image)."""
    return fit_images(image[None], size, crop_pct)[0]


def read_image(
    path: str | Path, size: Size | SizeFor | None = None, crop_pct: float | None = 1.0
) -> tuple[np.ndarray, str, tuple[int, int]]:
    """The image at ``path`` in its natural form, uint8 (1 or 3, H, W), its Pillow mode as
    stored (``'RGBA'``, ``'I;16'``, ...) and its stored (width, height) after the EXIF
    orientation. Raises ``ImageDecodeError``.

    With ``size`` (the size ``fit_image`` will make of it with ``crop_pct``), a JPEG is
    decoded by libjpeg at 1/2, 1/4 or 1/8 scale when that still leaves at least the pre-crop
    size (``size / crop_pct``): DCT-domain downscaling, several times faster and a proper
    low-pass before the final resize. ``size`` may be a function of the stored (height, width)
    when the size needed depends on it (a random crop's box): the header is read once.
    """
    with _decoding(path) as image:
        mode = image.mode
        stored = _oriented(image, size, crop_pct)
        return _natural(image), mode, stored


def read_resized_crop(path: str | Path, box_for: BoxFor, size: tuple[int, int]) -> np.ndarray:
    """The box ``box_for(stored_height, stored_width)`` = (top, left, rows, columns) of the
    image at ``path`` (after its EXIF orientation), resized to ``size`` (height, width) with
    Pillow's antialiased bilinear filter, in its natural form as ``read_image`` gives it.

    The file is decoded at the smallest JPEG scale that still gives the box ``size``'s pixels
    (libjpeg's draft) and, in the common modes, cut and resized by Pillow without a round
    trip through arrays (benches/stream_pipeline.py: about 1.3× the per-image rate on
    256-px photos). Raises ``ImageDecodeError``."""
    height, width = size
    box: tuple[int, int, int, int] | None = None

    def needed(stored_h: int, stored_w: int) -> tuple[int, int]:
        nonlocal box
        box = box_for(stored_h, stored_w)
        _, _, rows, columns = box
        return math.ceil(stored_h * height / rows), math.ceil(stored_w * width / columns)

    with _decoding(path) as image:
        stored_w, stored_h = _oriented(image, needed, 1.0)
        assert box is not None  # drawn by `needed` from the stored size
        top, left, rows, columns = box
        scale_x, scale_y = image.width / stored_w, image.height / stored_h  # the draft's scale
        where = (left * scale_x, top * scale_y, (left + columns) * scale_x, (top + rows) * scale_y)
        picture = _plain(image)
        if picture is None:  # 16-bit, float or alpha: through the array form first
            natural = _natural(image)
            picture = Image.fromarray(natural[0] if len(natural) == 1 else natural.transpose(1, 2, 0).copy())
        pixels = np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR, box=where))
        return _chw(pixels)


@contextmanager
def _decoding(path: str | Path) -> Iterator[Image.Image]:
    """The image at ``path``, opened; any failure while it is read is an ``ImageDecodeError``."""
    try:
        file = open_regular(path)
    except OSError as error:  # missing, a FIFO or a device, a symlink loop, no permission
        raise ImageDecodeError(path, f"cannot read ({error.strerror or error})") from None
    try:
        with file, open_image(file, path) as image:
            yield image
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(path, _unidentified(path)) from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(path, f"refused as a decompression bomb ({_bomb_reason(error)})") from None
    except OSError as error:
        if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
            raise ImageDecodeError(path, f"cannot read ({error.strerror})") from None
        raise ImageDecodeError(path, f"truncated or corrupt ({error})") from None
    except (SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError) as error:
        # Pillow's plugins report some malformed files with these.
        raise ImageDecodeError(path, f"corrupt ({type(error).__name__}: {error})") from None


def _unidentified(path: str | Path) -> str:
    """Why Pillow knew no format: an empty file (a copy cut short, a placeholder) says so."""
    empty = Path(path).stat().st_size == 0
    return "empty file (0 bytes)" if empty else "not an image (Pillow cannot identify the format)"


def _oriented(image: Image.Image, size: Size | SizeFor | None, crop_pct: float | None) -> tuple[int, int]:
    """Set up the draft for ``size`` (see ``read_image``), apply the EXIF orientation in
    place; the stored (width, height) after the orientation."""
    transposed = image.getexif().get(ExifTags.Base.Orientation) in _TRANSPOSING
    stored = image.size[::-1] if transposed else image.size
    if callable(size):
        size = size(stored[1], stored[0])
    if size is not None and image.format == "JPEG":
        _draft(image, size, crop_pct, transposed)
    ImageOps.exif_transpose(image, in_place=True)
    return stored


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: its stored size after the EXIF orientation, and
    whether its pixels are grey (a grey mode, or a palette of greys)."""

    height: int
    width: int
    grey: bool


def read_header(path: str | Path) -> ImageHeader:
    """The header of the image at ``path``, as ``read_image`` would see it, without decoding a
    pixel. Raises ``ImageDecodeError``."""
    try:
        with open_regular(path) as file, open_image(file, path) as image:
            transposed = image.getexif().get(ExifTags.Base.Orientation) in _TRANSPOSING
            width, height = image.size[::-1] if transposed else image.size
            grey = image.mode in GREY_MODES or (image.mode == "P" and _grey_palette(image))
            return ImageHeader(height, width, grey)
    except ImageDecodeError:
        raise
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as error:
        raise ImageDecodeError(path, f"unreadable header ({type(error).__name__})") from None


def read_size(path: str | Path) -> tuple[int, int]:
    """The stored (width, height) of the image at ``path`` after its EXIF orientation, as
    ``read_image`` reports it (``read_header``). Raises ``ImageDecodeError``."""
    header = read_header(path)
    return header.width, header.height


# warnings.catch_warnings swaps a process-wide filter list: serialise it. Only Image.open
# runs under the lock (it reads the header); decoding pixels happens outside it.
_OPEN_LOCK = threading.Lock()


def open_image(file: IO[bytes], path: str | Path) -> Image.Image:
    """``file`` opened by Pillow (its header read); a decompression bomb is an ``ImageDecodeError``."""
    if Path(path).suffix.lower() in HEIF_SUFFIXES and not _heif_opener():
        raise ImageDecodeError(path, "a HEIC/HEIF photo: pip install 'dltool[heif]' to read it")
    with _OPEN_LOCK, warnings.catch_warnings(action="ignore", category=Image.DecompressionBombWarning):
        try:  # Pillow's warning (89.5-179 MP) ignored: a 100 MP camera's photo is a photo
            return Image.open(file)
        except Image.DecompressionBombError as error:
            raise ImageDecodeError(path, f"refused as a decompression bomb ({_bomb_reason(error)})") from None


HEIF_SUFFIXES = frozenset({".heic", ".heif"})  # iPhones' photos: Pillow reads them through pillow-heif


@functools.cache
def _heif_opener() -> bool:  # whether pillow-heif is installed; its opener is registered the first time
    if importlib.util.find_spec("pillow_heif") is None:
        return False
    importlib.import_module("pillow_heif").register_heif_opener()
    return True


_TRANSPOSING = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def _draft(image: Image.Image, size: Size, crop_pct: float | None, transposed: bool) -> None:
    height, width = pair(size)
    if crop_pct is not None:  # both sides at least size / crop_pct: the short one limits the scale
        height, width = math.ceil(height / crop_pct), math.ceil(width / crop_pct)
    if transposed:
        height, width = width, height  # the draft applies before the rotation
    image.draft(None, (width, height))


def _bomb_reason(error: Exception) -> str:
    return str(error).split(", could be")[0]


def _plain(image: Image.Image) -> Image.Image | None:
    """``image`` as grey (L) or RGB when Pillow's own conversion gives its natural form;
    None for the modes that need more (16-bit and float grey, alpha to composite)."""
    mode = image.mode
    if mode in {"L", "RGB"}:
        return image
    if mode == "P":
        if "transparency" in image.info:
            return None
        return image.convert("L" if _grey_palette(image) else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode in GREY_MODES or mode in {"RGBA", "PA", "LA", "La", "RGBa"}:
        return None
    return image.convert("RGB")  # CMYK, YCbCr, RGBX, HSV; LAB raises ValueError


def _natural(image: Image.Image) -> np.ndarray:
    """Grey (1, H, W) or RGB (3, H, W) uint8, alpha composited on black."""
    plain = _plain(image)
    if plain is not None:
        return _chw(np.asarray(plain))
    mode = image.mode
    converted = {"P": "RGBA", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}.get(mode)
    if converted is not None:
        image, mode = image.convert(converted), converted
    pixels = np.asarray(image)
    if mode in {"I", "I;16", "I;16L", "I;16B", "I;16N"}:
        wide = np.clip(pixels.astype(np.int64), 0, 65535)
        pixels = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # round(v · 255/65535)
    elif mode == "F":
        pixels = _float_grey(pixels)
    if mode in {"LA", "RGBA"}:
        pixels = _on_black(pixels)
    return _chw(pixels)


def _float_grey(pixels: np.ndarray) -> np.ndarray:
    """A float image in 8 bits: values within [0, 1] — how float images hold light, as
    scikit-image and OpenCV read them — scaled by 255 (clipped, they were all black);
    others clipped to 0..255 as stored. NaN is black."""
    finite = np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    unit = finite.size > 0 and finite.min() >= 0 and finite.max() <= 1
    return np.clip(np.rint(finite * (255 if unit else 1)), 0, 255).astype(np.uint8)


def _chw(pixels: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) pixels → a writable uint8 (C, H, W) copy."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return np.array(pixels.transpose(2, 0, 1), dtype=np.uint8, order="C")


def _grey_palette(image: Image.Image) -> bool:
    palette = np.asarray(image.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    return bool(len(palette)) and bool((palette == palette[:, :1]).all())


def _on_black(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C+1) colour plus alpha → (H, W, C), each colour × alpha/255, rounded."""
    colour, alpha = pixels[..., :-1].astype(np.uint32), pixels[..., -1:].astype(np.uint32)
    return ((colour * alpha + 127) // 255).astype(np.uint8)


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 images (..., C, H, W) with C in {1, 3} as ``channels`` channels."""
    have = images.shape[-3]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=-3)
    if have == 3 and channels == 1:
        # Pillow's convert('L'): (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16, in integers.
        r, g, b = (images[..., i, :, :].astype(np.uint32) for i in range(3))
        grey = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
        return grey.astype(np.uint8)[..., None, :, :]
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")
