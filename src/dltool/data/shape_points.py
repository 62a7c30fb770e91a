"""``shapes-keypoints``: shapes-seg's shapes with their centre and corner points, made
offline, the same every time.

Each image is a face drawn with shapes (``dltool.data.shapes``' drawing, on its textured
backgrounds): two circles for eyes, a triangle for a nose, a square for a mouth, each in its
own random colour, size and place around where a face has it, the whole face shifted too —
as a facial-keypoints dataset varies around a mean face. The points: the circles' centres
(left, right), the triangle's corners (top, left, right) and the square's (top-left,
top-right, bottom-right, bottom-left). The triangle and the square turn less than halfway to
their next symmetric pose (±25°), so each corner keeps its name, and a horizontal flip gives
another face of the same kind with left and right swapped (``FLIP_PAIRS``, the recipe's
``data.flip_pairs``).

``dltool download shapes-keypoints`` writes ``DATA/shapes-keypoints/{train,val,test}/images/
NNNN.png`` and a ``points.csv`` per split (a keypoints folder, ``dltool.data.tables``; pixels
with their centres at +0.5), made beside the final folder and renamed into place.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dltool.config.schema import DataConfig
from dltool.data.arrays import ImageArrays
from dltool.data.masks import IMAGES
from dltool.data.roots import data_root
from dltool.data.shapes import SIZE, background, draw_shape, made_in_place, outline, png, shape_colour
from dltool.data.table_decode import load_table
from dltool.data.tables import index_table
from dltool.errors import DatasetError

NAME = "shapes-keypoints"
POINTS = [
    "circle_left",
    "circle_right",
    "triangle_top",
    "triangle_left",
    "triangle_right",
    "square_tl",
    "square_tr",
    "square_br",
    "square_bl",
]
FLIP_PAIRS = [
    ("circle_left", "circle_right"),
    ("triangle_left", "triangle_right"),
    ("square_tl", "square_tr"),
    ("square_bl", "square_br"),
]
COUNTS = {"train": 2000, "val": 200, "test": 200}
SEEDS = {"train": 10, "val": 11, "test": 12}  # apart from shapes-seg's: other images
# Where each shape of the face is centred, as shares of the width and height: (label, x, y).
FACE = [(1, 0.28, 0.26), (1, 0.72, 0.26), (3, 0.5, 0.5), (2, 0.5, 0.76)]
RADIUS = (0.08, 0.12)  # shares of the size: a circle's radius, a corner's distance from the centre
JITTER, SHIFT = 0.05, 0.07  # the most each shape, and the whole face, moves from FACE (shares)
TURN = math.radians(25)  # the most a triangle or square turns from upright
# The first corner's direction from the centre (y down), upright: the triangle's top, the
# square's bottom-right; ``outline`` goes on clockwise on screen.
UPRIGHT = {3: -math.pi / 2, 2: math.pi / 4}
CORNER_ORDER = {3: [0, 2, 1], 2: [2, 3, 0, 1]}  # outline's corners in POINTS' order
TABLE = "points.csv"


def load_shapes_keypoints(config: DataConfig) -> ImageArrays:
    """The generated splits (``dltool download shapes-keypoints`` first), fitted to ``config``."""
    folder = data_root(config.root) / NAME
    if not (folder / "test" / TABLE).is_file():
        where = data_root(config.root)
        raise DatasetError(f"{NAME} is not made in {where}: run `dltool download {NAME} --root {where}`")
    return load_table(index_table(folder), config)


def write_shapes_keypoints(root: str | Path | None = None, force: bool = False) -> Path:
    """Make the dataset under the data root (kept when it is there, unless ``force``); its folder."""
    return made_in_place(data_root(root) / NAME, f"test/{TABLE}", _write, force)


def _write(building: Path) -> None:
    header = "file," + ",".join(f"{name}_{axis}" for name in POINTS for axis in "xy")
    for split, count in COUNTS.items():
        (building / split / IMAGES).mkdir(parents=True)
        lines = [header]
        for index in range(count):
            image, points = shapes_points(np.random.default_rng([SEEDS[split], index]))
            (building / split / IMAGES / f"{index:04d}.png").write_bytes(png(image))
            lines.append(f"{index:04d}.png," + ",".join(f"{v:.2f}" for v in points.ravel()))
        (building / split / TABLE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def shapes_points(rng: np.random.Generator, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (H, W, 3) uint8 and its points (len(POINTS), 2): (x, y) in pixels from the
    image's top-left corner, a pixel's centre at +0.5."""
    image = Image.fromarray(background(rng, size))
    draw = ImageDraw.Draw(image)
    points: list[tuple[float, float]] = []
    for (label, _, _), (cx, cy, radius) in zip(FACE, _places(rng, size)):
        angle = UPRIGHT.get(label, 0.0) + float(rng.uniform(-TURN, TURN))
        shape = outline(label, cx, cy, radius, angle)
        draw_shape(draw, label, shape, shape_colour(rng))
        points += [(cx, cy)] if label == 1 else [shape[i] for i in CORNER_ORDER[label]]
    return np.asarray(image), np.array(points) + 0.5  # Pillow's pixel centres are whole numbers


def _places(rng: np.random.Generator, size: int) -> list[tuple[float, float, float]]:
    """(centre x, centre y, radius) of each shape of FACE, in pixels: drawn again until every
    shape is inside the image and clear of the others."""
    while True:
        shift = rng.uniform(-SHIFT, SHIFT, 2)
        places = [
            (*((np.array([x, y]) + shift + rng.uniform(-JITTER, JITTER, 2)) * size), rng.uniform(*RADIUS) * size)
            for _, x, y in FACE
        ]
        inside = all(r + 1 < min(x, y) and max(x, y) < size - r - 1 for x, y, r in places)
        apart = all(math.dist(a[:2], b[:2]) > a[2] + b[2] + 1 for i, a in enumerate(places) for b in places[i + 1 :])
        if inside and apart:
            return [(float(x), float(y), float(r)) for x, y, r in places]
