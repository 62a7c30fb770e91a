"""Segment image files with a trained segmentation model: one mask PNG per image, at its size.

Images are decoded and batched as for ``predict`` (``dltool.evaluation.inputs``: worker
processes, input order, bounded memory) through the evaluation transform — each image
stretched whole to the model's input size, as its masks were in training. The logits are
resized back to the image's own size (bilinear) before the argmax, so a mask has one class
index per pixel of its image. Masks are palette PNGs: viewers show colours, and every
reader (Pillow, ``dltool.data.mask_decode``) gets the class indices. With ``overlay``, the
image with the classes' colours blended over it is written beside (``overlays/``).
Each PNG is marked as predict's own (a text chunk), so a later run replaces it; any other
file already there, an input image or a ground-truth mask, is refused unless ``force``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, PngImagePlugin

import dltool.tasks as tasks
from dltool._io import atomic_write
from dltool.data.images import ImageDecodeError, read_image, read_size, to_channels
from dltool.data.resize import resample
from dltool.errors import UsageError, option
from dltool.evaluation.inputs import Chunk, Decoder, Unreadable, decoded_chunks
from dltool.evaluation.model import InferenceModel, default_batch_size
from dltool.figures.palette import colours
from dltool.rundir import check_output

OVERLAYS = "overlays"
OVERLAY_ALPHA = 0.5
# The PNG text chunk that marks a mask or overlay as written here (what may be replaced).
MARK = ("Software", "dltool predict")


@dataclass(frozen=True)
class MaskWritten:
    """One image segmented: where its mask (and overlay) went, and the classes it shows."""

    path: str
    mask: str
    overlay: str | None
    classes: list[str]


def segment(
    model: InferenceModel,
    paths: Iterable[str],
    out: Path,
    *,
    overlay: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
    force: bool = False,
) -> Iterator[MaskWritten | Unreadable]:
    """One MaskWritten or Unreadable per path, in input order. Masks go to ``out/<stem>.png``
    (``<stem>-2.png`` and so on when stems repeat), overlays to ``out/overlays/``. A file
    there that this function did not write is a UsageError unless ``force``."""
    if not tasks.info(model.task).masks_out:
        raise UsageError(f"{option('out')} writes segmentation masks; model {model.name!r} is a {model.task} model")
    (out / OVERLAYS if overlay else out).mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for chunk in decoded_chunks(
        paths, Decoder.of(model), chunk=batch_size or default_batch_size(model), workers=workers
    ):
        yield from chunk.unreadable
        yield from _segmented(model, chunk, _Output(out, overlay, names, force))


@dataclass(frozen=True)
class _Output:
    folder: Path
    overlay: bool
    names: set[str]
    force: bool = False

    def name(self, path: str) -> str:
        """A file name of the image's stem not given out before."""
        stem = Path(path).stem or "image"
        name, k = f"{stem}.png", 1
        while name in self.names:
            k += 1
            name = f"{stem}-{k}.png"
        self.names.add(name)
        return name

    def check(self, target: Path, image: str) -> None:
        """Refuse to replace ``target`` where it is the input ``image`` or a file of the user's."""
        check_output(
            target,
            kind="dltool predict",
            force=self.force,
            same_kind=is_marked,
            inputs=[Path(image)],
            elsewhere=f"another {option('out')} folder",
        )


def _segmented(model: InferenceModel, chunk: Chunk, output: _Output) -> Iterator[MaskWritten | Unreadable]:
    if not chunk.paths:
        return
    logits = model.forward(chunk.images)
    for path, row in zip(chunk.paths, logits, strict=True):
        try:  # its own size, after the EXIF orientation: from the header, or the overlay's pixels
            image = read_image(path)[0] if output.overlay else None
            size = read_size(path)[::-1] if image is None else image.shape[1:]  # (height, width)
        except ImageDecodeError as error:  # changed since it was decoded
            yield Unreadable(path, error.reason)
            continue
        yield _write(path, image, full_size_mask(row, tuple(size)), output, model.classes)


def full_size_mask(logits: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """The class of each pixel of an image of ``size`` (height, width) from one image's
    logits (K, h, w): each class's resized bilinearly (``dltool.data.resize.resample``), then
    the argmax, uint8."""
    resized = np.stack([resample(plane, (int(size[0]), int(size[1]))) for plane in logits])
    return resized.argmax(0).astype(np.uint8)


def _write(path: str, image: np.ndarray | None, mask: np.ndarray, output: _Output, classes: list[str]) -> MaskWritten:
    name = output.name(path)
    target = output.folder / name
    drawn = None if image is None else output.folder / OVERLAYS / name
    for written in filter(None, (target, drawn)):  # both checked before either is written
        output.check(written, path)
    atomic_write(target, functools.partial(_save_png, palette_mask(mask)))
    if image is not None and drawn is not None:
        atomic_write(drawn, functools.partial(_save_png, Image.fromarray(overlaid(image, mask))))
    shown = [classes[k] for k in np.flatnonzero(np.bincount(mask.ravel(), minlength=len(classes)))]
    return MaskWritten(path, str(target), None if drawn is None else str(drawn), shown)


def palette_mask(mask: np.ndarray) -> Image.Image:
    """A uint8 mask as a palette PNG's image: its pixels the class indices, shown in colour."""
    picture = Image.fromarray(mask, mode="P")
    picture.putpalette(colours(256).ravel().tolist())
    return picture


def overlaid(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image (C, H, W) as RGB (H, W, 3) with each pixel's class colour blended over it."""
    rgb = to_channels(image, 3).transpose(1, 2, 0).astype(np.float32)
    blended = (1 - OVERLAY_ALPHA) * rgb + OVERLAY_ALPHA * colours(int(mask.max()) + 1)[mask]
    return blended.round().clip(0, 255).astype(np.uint8)


def _save_png(picture: Image.Image, file: IO[bytes]) -> None:
    marked = PngImagePlugin.PngInfo()
    marked.add_text(*MARK)
    picture.save(file, format="PNG", pnginfo=marked)


def is_marked(path: Path) -> bool:
    """Whether ``path`` is a PNG that ``segment`` wrote (its text chunk says so)."""
    try:
        with Image.open(path) as picture:
            return getattr(picture, "text", {}).get(MARK[0]) == MARK[1]
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
