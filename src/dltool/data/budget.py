"""Which loader a run uses (``data.loader``): the memory budget, the decoded size of an image
folder, and the choice between holding it in memory and streaming its files.

The decoded size is what the memory loader would hold: every image file of the folder as
uint8, channels × height × width. Without ``data.image_size`` (or ``data.channels``) the
shape comes from the headers of an evenly spaced sample of the files (no pixel is decoded).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dltool.config.schema import DataConfig
from dltool.data.decoding import fitted_size
from dltool.data.images import ImageDecodeError, ImageHeader, read_header
from dltool.errors import ConfigError, DatasetError, option

GIB = 1024**3
HEADER_SAMPLE = 64  # files whose headers stand for a folder without data.image_size


@dataclass(frozen=True)
class Budget:
    """Bytes the memory loader may hold, and where that number comes from (for the log)."""

    bytes: int
    source: str

    def __str__(self) -> str:
        return f"data.memory_budget {binary_size(self.bytes)} ({self.source})"


def memory_budget(gibibytes: float | None) -> Budget:
    """``data.memory_budget`` in bytes; unset, half of the memory this process may use: the
    machine's RAM, or its control group's limit where that is lower (a container, a job
    scheduler's slot), which is what the out-of-memory killer enforces."""
    if gibibytes is not None:
        return Budget(int(gibibytes * GIB), "set in the config")
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 8 * GIB  # an OS that will not say: assume a small laptop
    limit = cgroup_memory_limit()
    if limit is not None and limit < total:
        return Budget(limit // 2, f"half of this container's memory limit, {binary_size(limit)}")
    return Budget(total // 2, "half of this machine's RAM")


def cgroup_memory_limit(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int | None:
    """The memory limit (bytes) of this process's control group, cgroup v2 or v1; None when
    there is none ("max", or v1's huge "unlimited") or no cgroup file can be read."""
    limits = []
    for own in _cgroup_paths(membership):
        for path in (root / own / "memory.max", root / "memory" / own / "memory.limit_in_bytes"):
            with contextlib.suppress(OSError, ValueError):
                text = path.read_text().strip()
                if text != "max":
                    limits.append(int(text))
    below_unlimited = [limit for limit in limits if limit < 2**62]  # v1 writes "unlimited" as ~2**63
    return min(below_unlimited) if below_unlimited else None


def _cgroup_paths(membership: Path) -> list[str]:
    """The cgroup root (a container sees its own group there) and this process's group paths
    (``/proc/self/cgroup``: ``0::/path`` for v2, ``4:memory:/path`` for v1), relative."""
    paths = [""]
    with contextlib.suppress(OSError):
        for line in membership.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers in ("", "memory") or "memory" in controllers.split(","):
                paths.append(path.strip("/"))
    return list(dict.fromkeys(paths))


def sample_headers(root: str | Path, files: list[str], count: int = HEADER_SAMPLE) -> list[ImageHeader]:
    """The readable headers among ``count`` files spread evenly over ``files`` (relative to ``root``)."""
    return [header for file in spread(files, count) if (header := header_or_none(Path(root) / file)) is not None]


T = TypeVar("T")


def spread(items: list[T], count: int) -> list[T]:
    """Up to ``count`` of ``items``, spread evenly over them (all of them when they are fewer)."""
    take = min(count, len(items))
    return [items[row] for row in sorted({round(i * (len(items) - 1) / max(1, take - 1)) for i in range(take)})]


def header_or_none(path: Path) -> ImageHeader | None:
    try:
        return read_header(path)
    except ImageDecodeError:  # decoding names the file later
        return None


@dataclass(frozen=True)
class Shape:
    """The (channels, height, width) every image of a folder is decoded to, and how it was found."""

    channels: int
    height: int
    width: int
    notes: tuple[str, ...] = ()

    @property
    def pixels(self) -> int:
        return self.channels * self.height * self.width


def decoded_shape(config: DataConfig, headers: list[ImageHeader]) -> Shape:
    """The decoded shape the memory loader would produce (its exact rules decode every file;
    this reads a sample's headers): ``data.channels``, else 1 when every sampled image is grey;
    ``data.image_size``, else ``fitted_size`` of the sampled sizes."""
    channels = config.channels or (1 if headers and all(h.grey for h in headers) else 3)
    if config.image_size is not None:
        return Shape(channels, config.image_size, config.image_size)
    sizes = Counter((h.height, h.width) for h in headers)
    if not sizes:
        return Shape(channels, 0, 0)
    height, width = fitted_size(sizes)
    return Shape(channels, height, width)


def stream_shape(config: DataConfig, headers: list[ImageHeader], files: int) -> Shape:
    """The shape the stream loader decodes every file to: ``data.image_size`` square, else the
    size every sampled image shares when it is square; ``data.channels``, else from the sample.
    A folder of mixed or non-square sizes needs ``data.image_size`` (a ``ConfigError``)."""
    shape = decoded_shape(config, headers)
    notes = []
    if config.channels is None:
        notes.append(
            f"data.channels not set: {shape.channels} "
            + (f"(all {len(headers)} sampled images are grey)" if shape.channels == 1 else "(the images are in colour)")
        )
    if config.image_size is None:
        sizes = sorted({(h.height, h.width) for h in headers})
        if len(sizes) != 1 or sizes[0][0] != sizes[0][1]:
            shown = ", ".join(f"{w}x{h}" for h, w in sizes[:5]) or "none readable"
            side = max(shape.height, shape.width) or 224  # the memory loader's size, made square
            raise ConfigError(
                f"data.loader=stream needs data.image_size for this folder: the {len(headers)} of its {files} "
                f"images sampled have mixed or non-square sizes ({shown}); e.g. "
                f"{option('overrides', f'data.image_size={side}', python=f'data.image_size: {side}')}"
            )
        notes.append(f"data.image_size not set: {shape.height} px, the size of every sampled image")
    return Shape(shape.channels, shape.height, shape.width, tuple(notes))


@dataclass(frozen=True)
class LoaderChoice:
    """``kind``: memory or stream; ``line``: why, for the run log (None when nothing was chosen)."""

    kind: str
    line: str | None = None


def choose_loader(config: DataConfig, files: int, shape: Shape, masks: bool = False) -> LoaderChoice:
    """memory or stream for a folder of ``files`` images decoded to ``shape`` (``masks``: each
    with a mask, a byte per pixel), per ``data.loader``. ``memory`` asked for a folder over
    the budget is a ``DatasetError`` naming the size."""
    needed = files * (shape.pixels + (shape.height * shape.width if masks else 0))
    budget = memory_budget(config.memory_budget)
    with_masks = " and their masks" if masks else ""
    size = (
        f"decoded dataset ≈ {binary_size(needed)} ({files:,} images of {shape.channels}x{shape.height}x{shape.width}"
        f"{with_masks})"
    )
    fits = needed <= budget.bytes
    if config.loader == "memory" and not fits:
        raise DatasetError(
            f"data.loader=memory: the {size} exceeds {budget}; use data.loader=stream "
            f"(or auto), or raise data.memory_budget"
        )
    if config.loader != "auto":
        return LoaderChoice(config.loader)
    kind = "memory" if fits else "stream"
    return LoaderChoice(kind, f"data.loader auto → {kind}: {size} {'fits' if fits else 'exceeds'} {budget}")


def binary_size(nbytes: float) -> str:
    """A size in the binary unit that reads best: 11.8 GiB, 172 KiB (not 0.000172 GiB)."""
    units = (("GiB", GIB), ("MiB", GIB >> 10), ("KiB", GIB >> 20))
    unit, scale = next(((unit, scale) for unit, scale in units if nbytes >= scale), ("bytes", 1))
    value = nbytes / scale
    return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
