"""Keypoint and regression folders: images listed in a CSV with numbers per image. No torch.

Layouts: ``ROOT/{train,val,test}/`` each with an ``images/`` folder and a CSV beside it (train
required), or one pool ``ROOT/images/`` + ``ROOT/<csv>`` split by ``data.val_fraction`` /
``data.test_fraction`` (seeded). The CSV's name says the task:

- ``points.csv`` (keypoints): header ``file,x1,y1,x2,y2,...``; a point's name is what its
  two columns share besides x/y (``x1,y1`` → ``1``, ``nose_x,nose_y`` → ``nose``). Values are
  pixels of the image as stored (x to the right, y down, from its top-left corner; a pixel's
  centre is at +0.5); an empty or negative value marks the point missing. A point beyond
  the image (x over its width, y over its height) is missing too, named in a note when the
  image's size is known (``dltool.data.table_decode.outside_note``): x=480 for a 48-px
  image is a typo to see, not a point to drop unseen.
- ``targets.csv`` (regression): header ``file,NAME,...``, one number per named target; an
  empty value is missing.

A cell spelled ``nan`` is missing as an empty one is, and its lines are named in a note
(``TableIndex.notes``): a value that failed to compute should not pass unseen.

``file`` is a path inside the split's ``images/`` folder. A row with the wrong number of
columns, a value that is not a number, a file that does not exist, or a file an earlier row
of the CSV lists already is skipped and named (``TableIndex.skipped``); a folder with no
usable row is an error.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltool._io import file_stamp
from dltool._text import first_few
from dltool.data.folders import SPLITS
from dltool.data.masks import IMAGES
from dltool.data.splits import Draw, named_indices
from dltool.errors import DatasetError

TABLES = {"points.csv": "points", "targets.csv": "values"}  # file name → what its numbers are

Row = tuple[str, tuple[float, ...]]  # (image path relative to the root, the row's numbers; NaN: missing)


@dataclass(frozen=True)
class TableIndex:
    """The rows of a keypoint or regression folder, per split in file order (no decoding).

    ``kind``: ``points`` (``names`` of the points, two numbers each: x, y) or ``values``
    (``names`` of the targets, one number each)."""

    root: Path
    kind: str
    names: list[str]
    rows: dict[str, list[Row]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stamps: list[tuple[str, int, int]] = field(default_factory=list)  # (path, bytes, mtime ns) of each image


def table_file(root: Path) -> Path | None:
    """The CSV that makes ``root`` a keypoint or regression folder (at its top, or in train/)."""
    for base in (root, root / "train"):
        for name in TABLES:
            if (base / name).is_file() and (base / IMAGES).is_dir():
                return base / name
    return None


def index_table(root: Path, draw: Draw = Draw()) -> TableIndex:
    """Read the CSV(s) of folder ``root`` (see the module docstring); the one-pool layout is
    split as ``draw`` says."""
    first = table_file(root)
    if first is None:
        files = " or ".join(TABLES)
        raise DatasetError(f"{root}: no {files} beside an {IMAGES}/ folder (expected {root}/train/{{{IMAGES}/,*.csv}})")
    bases = {s: root / s for s in SPLITS if (root / s / first.name).is_file()} if first.parent != root else {}
    bases = bases or {"train": root}
    kind = TABLES[first.name]
    names: list[str] = []
    rows: dict[str, list[Row]] = {}
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    for split, base in bases.items():
        split_names, rows[split], bad, nans = read_table(root, base / first.name, kind)
        if names and split_names != names:
            raise DatasetError(f"{base / first.name}: names {', '.join(split_names)}; train names {', '.join(names)}")
        names, skipped, notes = split_names, skipped + bad, notes + nans
    if bases == {"train": root}:
        rows, drawn = _drawn(rows["train"], draw)
        notes += drawn
    if not any(rows.values()):
        where = f" (first skipped: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DatasetError(f"{root}: no usable row in {first.name}{where}")
    images = sorted({row[0] for split_rows in rows.values() for row in split_rows})
    return TableIndex(root, kind, names, rows, skipped, notes, [(file, *file_stamp(root / file)) for file in images])


def read_table(root: Path, path: Path, kind: str) -> tuple[list[str], list[Row], list[tuple[str, str]], list[str]]:
    """(names, good rows, skipped (place, reason), notes) of one CSV."""
    with open(path, newline="", encoding="utf-8-sig") as file:
        lines = list(csv.reader(file))
    where = path.relative_to(root).as_posix()
    if not lines or not lines[0] or lines[0][0].strip().lower() != "file":
        raise DatasetError(f"{path}: the first line should be a header starting with 'file'")
    names = column_names([c.strip() for c in lines[0][1:]], kind, path)
    images = path.parent / IMAGES
    rows: list[Row] = []
    skipped: list[tuple[str, str]] = []
    listed: dict[str, int] = {}  # image -> the line that gave its targets
    nans: list[int] = []  # lines kept with a cell spelled 'nan'
    for number, line in enumerate(lines[1:], 2):
        if not any(cell.strip() for cell in line):
            continue
        row, reason = _row(line, len(lines[0]), kind, images)
        image = (images / row[0]).relative_to(root).as_posix() if row is not None else ""
        if row is not None and image in listed:  # two answers for one image: the first is kept
            reason = f"{row[0]!r} is listed already, on line {listed[image]}"
            row = None
        if row is None:
            skipped.append((f"{where}:{number}", reason))
        else:
            listed[image] = number
            rows.append((image, row[1]))
            nans += [number] if _spelled_nan(line) else []
    return names, rows, skipped, _nan_note(where, nans)


def _spelled_nan(line: list[str]) -> bool:
    return any(cell.strip().lstrip("+-").lower() == "nan" for cell in line[1:])


def _nan_note(where: str, lines: list[int]) -> list[str]:
    if not lines:
        return []
    named = first_few([str(n) for n in lines])
    lines_named = f"line{'s' if len(lines) > 1 else ''} {named}"
    return [f"{where} {lines_named}: 'nan' is taken as a missing value (an empty cell says so; a typo?)"]


def column_names(columns: list[str], kind: str, path: Path) -> list[str]:
    """The names of the points (pairs of x, y columns) or of the targets."""
    if not columns:
        raise DatasetError(f"{path}: the header names no {'points' if kind == 'points' else 'targets'} after 'file'")
    if kind == "values":
        return _distinct(columns, "target", path)
    if len(columns) % 2:
        raise DatasetError(f"{path}: {len(columns)} coordinate columns; points need two each (x, y)")
    return _distinct([_point_name(x, y, path) for x, y in zip(columns[::2], columns[1::2])], "point", path)


def _distinct(names: list[str], noun: str, path: Path) -> list[str]:
    """``names``, each given and given once; a target is not named ``path``: predict's rows
    name each image in a column of that name (two columns ``path`` in a CSV, one lost in JSON)."""
    twice = sorted({name for name in names if names.count(name) > 1})
    if "" in names or twice:
        problem = f"{noun} {twice[0]!r} is named twice" if twice else f"a {noun} column has no name"
        raise DatasetError(f"{path}: {problem} in the header")
    if noun == "target" and "path" in names:
        raise DatasetError(f"{path}: a target named 'path' would hide predict's column of each image's path; rename it")
    return names


def _point_name(x: str, y: str, path: Path) -> str:
    for a, b in ((x[:1], y[:1]), (x[-1:], y[-1:])):
        if a.lower() == "x" and b.lower() == "y":
            rest_x = x[1:] if x[:1] == a else x[:-1]
            rest_y = y[1:] if y[:1] == b else y[:-1]
            if rest_x == rest_y:
                return rest_x.strip("_- ") or str(len(rest_x))
    raise DatasetError(f"{path}: columns {x!r}, {y!r} are not a point's x and y (e.g. x1,y1 or nose_x,nose_y)")


def _row(line: list[str], width: int, kind: str, images: Path) -> tuple[tuple[str, tuple[float, ...]] | None, str]:
    if len(line) != width:
        return None, f"{len(line)} columns, the header has {width}"
    name = line[0].strip()
    values: list[float] = []
    for cell in line[1:]:
        text = cell.strip()
        try:
            value = float(text) if text else math.nan
        except ValueError:
            return None, f"{text!r} is not a number"
        if math.isinf(value):
            return None, f"{text!r} is not a finite number"
        values.append(math.nan if kind == "points" and value < 0 else value)
    if Path(name).is_absolute() or ".." in Path(name).parts:
        return None, f"{name!r} is outside {images.name}/"
    if not name or not (images / name).is_file():
        return None, f"no image {name!r} in {images.name}/{_inside_hint(name, images)}"
    return (name, tuple(values)), ""


def _inside_hint(name: str, images: Path) -> str:
    """For a name written from the CSV's folder (``images/0001.jpg``): what the column takes."""
    parts = Path(name).parts
    inside = Path(*parts[1:]) if len(parts) > 1 and parts[0] == images.name else None
    return (
        f" (file is a path inside {images.name}/: {inside.as_posix()!r})"
        if inside and (images / inside).is_file()
        else ""
    )


def _drawn(pool: list[Row], draw: Draw) -> tuple[dict, list[str]]:
    """The one pool split into train, val (and test): by the files' names, or a seeded shuffle."""
    picked = _by_name(pool, draw) if draw.by_name else _shuffled(len(pool), draw)
    rows = {name: [pool[i] for i in sorted(indices)] for name, indices in picked.items()}
    shares = ", ".join(f"{len(rows[name])} {name}" for name in picked)
    how = "by file name" if draw.by_name else "seeded"
    return rows, [f"one pool of {len(pool)} rows split by data.val_fraction/test_fraction ({how}): {shares}"]


def _shuffled(count: int, draw: Draw) -> dict[str, np.ndarray]:
    order = np.random.default_rng(draw.seed).permutation(count)
    n_test = round(draw.test_fraction * count)
    n_val = max(1, round(draw.val_fraction * count)) if count > 1 else 0
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return {"train": train, "val": val, **({"test": test} if n_test else {})}


def _by_name(pool: list[Row], draw: Draw) -> dict[str, np.ndarray]:
    """Test first, then val from the rest, each file by its name (``named_indices``)."""
    rest, picked = np.arange(len(pool)), {}
    for split, fraction in (("test", draw.test_fraction), ("val", draw.val_fraction)):
        if fraction:
            held = rest[named_indices(np.zeros(len(rest)), [pool[i][0] for i in rest], fraction, draw.seed, split)]
            picked[split], rest = held, np.setdiff1d(rest, held)
    return {"train": rest, **{split: picked[split] for split in ("val", "test") if split in picked}}
