"""``report.html``: one self-contained page (inline CSS, PNGs as base64 data URIs, no script,
no external file, font or network request), readable offline from a file:// URL."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltool._io import atomic_write_text
from dltool._version import __version__
from dltool.config.loading import flatten
from dltool.figures.canvas import Plot

WIDE = 900  # pixels; narrower figures are shown two to a row
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0 auto; max-width: 1400px; padding: 1.5rem; color: #1f2328; background: #fff; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem; margin-top: 2rem; }
.subtitle { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.2rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; max-width: 100%; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.row { display: flex; flex-wrap: wrap; gap: 2rem; align-items: flex-start; }
.row h3 { font-size: 0.95rem; margin: 0.3rem 0; }
.plots { display: flex; flex-wrap: wrap; gap: 1.2rem; }
figure { margin: 0; max-width: calc(50% - 0.6rem); }
figure.wide { max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: 0.8rem; color: #57606a; max-width: 40rem; }
.notes li { color: #9a6700; }
footer { margin-top: 2rem; font-size: 0.75rem; color: #57606a; }
"""


@dataclass
class Report:
    """A page of sections, each a heading and an HTML fragment made by the functions below."""

    title: str
    subtitle: str = ""
    sections: list[tuple[str, str]] = field(default_factory=list)

    def add(self, heading: str, fragment: str) -> None:
        if fragment:
            self.sections.append((heading, fragment))

    def html(self) -> str:
        body = [f"<h1>{_e(self.title)}</h1>"]
        if self.subtitle:
            body.append(f'<p class="subtitle">{_e(self.subtitle)}</p>')
        contents = " · ".join(f'<a href="#s{i}">{_e(h)}</a>' for i, (h, _) in enumerate(self.sections))
        if len(self.sections) > 2:
            body.append(f"<nav>{contents}</nav>")
        for index, (heading, fragment) in enumerate(self.sections):
            body.append(f'<section id="s{index}"><h2>{_e(heading)}</h2>\n{fragment}\n</section>')
        body.append(f"<footer>Made by dltool {_e(__version__)} (dltool visualize).</footer>")
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + "\n</body>\n</html>\n"
        )

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.html())
        return path


def figures(plots: Iterable[Plot]) -> str:
    """Each plot as an embedded PNG with its caption."""
    items = []
    for plot in plots:
        data = base64.b64encode(plot.png).decode("ascii")
        width, height = _png_size(plot.png)
        wide = ' class="wide"' if width > WIDE else ""
        items.append(
            f'<figure id="plot-{_e(plot.name)}"{wide}><img src="data:image/png;base64,{data}" alt="{_e(plot.name)}" '
            f'width="{width}" height="{height}"><figcaption><b>{_e(plot.path.name)}</b>: {_e(plot.caption)}'
            "</figcaption></figure>"
        )
    return f'<div class="plots">{"".join(items)}</div>' if items else ""


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    # In a scrolling box: a wide table (a comparison of many differing keys) scrolls on its
    # own instead of pushing the page, and its last columns, past the window's edge.
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def key_values(mapping: Mapping[str, Any]) -> str:
    """A two-column table; nested mappings are flattened to dotted keys."""
    rows = [(k, v) for k, v in flatten(mapping).items()]
    return (
        "<table><tbody>" + "".join(f"<tr><th>{_e(k)}</th>{_cell(v)}</tr>" for k, v in rows) + "</tbody></table>"
        if rows
        else ""
    )


def row(*blocks: tuple[str, str]) -> str:
    """(title, fragment) blocks side by side."""
    return '<div class="row">' + "".join(f"<div><h3>{_e(t)}</h3>{f}</div>" for t, f in blocks if f) + "</div>"


def pre(text: str) -> str:
    return f"<pre>{_e(text)}</pre>" if text else ""


def notes(lines: Sequence[str]) -> str:
    return '<ul class="notes">' + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>" if lines else ""


def format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="num">{_e(format_value(value))}</td>' if numeric else f"<td>{_e(format_value(value))}</td>"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _png_size(data: bytes) -> tuple[int, int]:
    # The IHDR chunk: width and height, big-endian, at bytes 16-24 of every PNG.
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
