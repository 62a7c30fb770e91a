"""Plumbing for figures: headless matplotlib, sizes, atomic saving, and the PNGs the report embeds.

Figures are built as ``matplotlib.figure.Figure`` objects, which need no pyplot and no GUI
backend; only Optuna's plots go through pyplot, which ``pyplot()`` puts on Agg first.
Saved files are byte-for-byte reproducible: no dates in SVG/PDF metadata, a fixed SVG salt.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from dltool._io import atomic_write_bytes
from dltool.errors import UsageError, option

FORMATS = ("png", "svg", "pdf")
# Pixels per inch of saved raster figures: a figure of W×H inches is (W·DPI)×(H·DPI) pixels.
DPI = 100
# Text stays text in SVG files (searchable, and readable back by tests), not glyph paths.
RC: dict[str, Any] = {"svg.fonttype": "none", "svg.hashsalt": "dltool", "font.size": 9}
NO_DATES = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {}}


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the headless Agg backend, chosen before pyplot is first
    imported. A process that imported pyplot already (a notebook) keeps its own backend."""
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` × ``height`` inches (rounded to 1/DPI), laid out to fit."""
    return Figure(figsize=(inches(width), inches(height)), dpi=DPI, layout="constrained")


def inches(value: float) -> float:
    """``value`` rounded so that it is a whole number of pixels at DPI."""
    return round(value * DPI) / DPI


def pixels(figure: Figure) -> tuple[int, int]:
    width, height = figure.get_size_inches()
    return round(width * DPI), round(height * DPI)


def render(figure: Figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]  # stubs list every key as a Literal
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=NO_DATES[fmt])
    return buffer.getvalue()


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(
            f"{option('image_format', repr(fmt), python=f'image_format={fmt!r}')}: expected one of {', '.join(FORMATS)}"
        )
    return fmt


@dataclass(frozen=True)
class Plot:
    """One saved figure: its file, what it shows, and a PNG rendering for the report."""

    name: str
    path: Path
    caption: str
    png: bytes


@dataclass
class Plotter:
    """Saves figures as ``out/<name>.<fmt>`` (atomically) and remembers them for the report."""

    out: Path
    fmt: str = "png"
    plots: list[Plot] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_format(self.fmt)
        self.out = Path(self.out)

    def save(self, figure: Figure, name: str, caption: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        data = render(figure, self.fmt)
        path = self.out / f"{name}.{self.fmt}"
        atomic_write_bytes(path, data)
        png = data if self.fmt == "png" else render(figure, "png")
        self.plots.append(Plot(name, path, caption, png))
        if "matplotlib.pyplot" in sys.modules:  # figures made through pyplot (Optuna's) are kept there
            sys.modules["matplotlib.pyplot"].close(figure)
        return path

    @property
    def paths(self) -> list[Path]:
        return [plot.path for plot in self.plots]


def hwc(image: np.ndarray) -> np.ndarray:
    """A uint8 (C, H, W) image as imshow wants it: (H, W) for grey, (H, W, 3) for colour."""
    return image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)


def show_image(ax, image: np.ndarray, title: str | None = None, colour: str = "black") -> None:
    """A uint8 (C, H, W) image, pixels as squares (no smoothing), without axes."""
    ax.imshow(hwc(image), cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title, fontsize=7, color=colour)


def grid_shape(n: int, max_columns: int) -> tuple[int, int]:
    """(rows, columns) for ``n`` tiles, at most ``max_columns`` wide."""
    columns = max(1, min(n, max_columns))
    return -(-n // columns), columns


def message_figure(text: str, width: float = 6.4, height: float = 2.0) -> Figure:
    """A figure that says why there is nothing to draw (keeps the set of files fixed)."""
    figure = new_figure(width, height)
    figure.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, wrap=True)
    return figure


@dataclass(frozen=True)
class Visualization:
    """What a ``visualize_*`` call wrote, in order (plots, files made on the way such as
    ``eval-test.json``, ``report.html`` last), and a line for each thing it could not draw."""

    out: Path
    written: list[Path]
    notes: list[str]
