"""Plumbing for figures: headless matplotlib, sizes, atomic saving, and the PNGs the report embeds.

Figures are built as ``matplotlib.figure.Figure`` objects, which need no pyplot and no GUI
backend; only Optuna's plots go through pyplot, which ``pyplot()`` puts on Agg first.
Saved files are byte-for-byte reproducible: no dates in SVG/PDF metadata, a fixed SVG salt.
"""

from __future__ import annotations

import io
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from dltool._io import atomic_write_bytes
from dltool._text import first_few
from dltool.errors import UsageError, option
from dltool.rundir import make_plots_folder

FORMATS = ("png", "svg", "pdf")
# Pixels per inch of saved raster figures: a figure of W×H inches is (W·DPI)×(H·DPI) pixels.
DPI = 100
# Text stays text in SVG files (searchable, and readable back by tests), not glyph paths.
RC: dict[str, Any] = {"svg.fonttype": "none", "svg.hashsalt": "dltool", "font.size": 9}
NO_DATES = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {}}
# matplotlib's warning for a character its fonts lack, drawn as a box: "Glyph 128038
# (\N{BIRD}) missing from font(s) DejaVu Sans." (a class named in Japanese or with an emoji).
MISSING_GLYPH = r"Glyph (\d+) .*missing from font"


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


def render(figure: Figure, fmt: str, missing: set[str] | None = None) -> bytes:
    """``figure`` as a file of ``fmt``. A character no font has is added to ``missing``
    (the caller says so once) instead of a matplotlib warning per figure and character,
    with a line of dltool's source, on the user's stderr."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(RC), warnings.catch_warnings(record=True) as caught:  # type: ignore[arg-type]  # stubs list every key as a Literal
        warnings.filterwarnings("always", MISSING_GLYPH, UserWarning)
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=NO_DATES[fmt])
    _sort_out(caught, set() if missing is None else missing)
    return buffer.getvalue()


def _sort_out(caught: list[warnings.WarningMessage], missing: set[str]) -> None:
    """The missing glyphs among ``caught`` into ``missing``; any other warning shown as it would have been."""
    for warning in caught:
        if found := re.match(MISSING_GLYPH, str(warning.message)):
            missing.add(chr(int(found[1])))
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


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
    missing_glyphs: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        check_format(self.fmt)
        self.out = Path(self.out)

    def folder(self) -> Path:
        """``out``, made (and marked as dltool's: ``rundir.make_plots_folder``) if missing."""
        make_plots_folder(self.out)
        return self.out

    def save(self, figure: Figure, name: str, caption: str) -> Path:
        self.folder()
        data = render(figure, self.fmt, self.missing_glyphs)
        path = self.out / f"{name}.{self.fmt}"
        atomic_write_bytes(path, data)
        png = data if self.fmt == "png" else render(figure, "png", self.missing_glyphs)
        self.plots.append(Plot(name, path, caption, png))
        if "matplotlib.pyplot" in sys.modules:  # figures made through pyplot (Optuna's) are kept there
            sys.modules["matplotlib.pyplot"].close(figure)
        return path

    @property
    def paths(self) -> list[Path]:
        return [plot.path for plot in self.plots]

    def visualization(self, written: list[Path], notes: list[str]) -> Visualization:
        """What was drawn, with ``notes`` and a line for the characters no font had."""
        return Visualization(self.out, written, notes + _glyph_notes(self.missing_glyphs))


def _glyph_notes(missing: set[str]) -> list[str]:
    chars = first_few(sorted(missing), 10)
    return [f"no font here has {chars}: drawn as boxes in the plots (report.html's text shows them)"] if missing else []


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
