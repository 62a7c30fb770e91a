"""Keypoint and regression folders made at test time: dots on noise, the dots' centres the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DOT = 2  # px: each dot is a DOT×DOT square of its own colour


def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (H, W, 3) with a red and a green dot on dim noise, and the dots' centres
    (2, 2) in pixels from the top-left corner."""
    image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    centres = []
    for channel in range(2):
        x, y = rng.integers(1, size - DOT, 2)
        image[y : y + DOT, x : x + DOT] = 0
        image[y : y + DOT, x : x + DOT, channel] = 255
        centres.append((x + DOT / 2, y + DOT / 2))
    return image, np.array(centres)


def points_folder(root: Path, counts: dict[str, int], size: int = 16, seed: int = 0, scale: int = 1) -> Path:
    """``root/<split>/images/*.png`` + ``root/<split>/points.csv`` (header ``file,x1,y1,x2,y2``)
    for each split of ``counts``; ``scale`` enlarges the stored images (and their points)."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        folder = root / split / "images"
        folder.mkdir(parents=True)
        lines = ["file,x1,y1,x2,y2"]
        for i in range(count):
            image, centres = draw(rng, size)
            name = f"{split}-{i:04d}.png"
            Image.fromarray(image.repeat(scale, 0).repeat(scale, 1)).save(folder / name)
            lines.append(name + "," + ",".join(f"{v:g}" for v in (centres * scale).ravel()))
        (root / split / "points.csv").write_text("\n".join(lines) + "\n")
    return root


def read_points(csv_path: Path) -> dict[str, np.ndarray]:
    """file name → (K, 2) points from a points.csv or predict's csv (its first column, path or file)."""
    lines = csv_path.read_text().splitlines()[1:]
    return {Path(cells[0]).name: np.array(cells[1:], float).reshape(-1, 2) for cells in (ln.split(",") for ln in lines)}


def values_folder(dots: Path, root: Path, names: str = "red_x,red_y") -> Path:
    """The red dot's x and y as targets ``names`` of the same images (every fifth y missing)."""
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True)
        (root / split / "images").symlink_to(dots / split / "images")
        points = read_points(dots / split / "points.csv")
        rows = [f"{name},{p[0, 0]:g},{'' if i % 5 == 0 else p[0, 1]}" for i, (name, p) in enumerate(points.items())]
        (root / split / "targets.csv").write_text(f"file,{names}\n" + "\n".join(rows) + "\n")
    return root


def age_and_weight_folder(root: Path, counts: dict[str, int], seed: int = 1) -> Path:
    """``root/<split>/targets.csv`` with ``age`` (20..60, the red channel's level) and
    ``weight`` (70,000..90,000, the blue channel's) of 16-px images whose green is noise."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (root / split / "images").mkdir(parents=True)
        lines = ["file,age,weight"]
        for i in range(count):
            red, blue = rng.uniform(0, 1, 2)
            image = np.zeros((16, 16, 3), np.uint8)
            image[..., 0], image[..., 2] = int(red * 255), int(blue * 255)
            image[..., 1] = rng.integers(0, 255, (16, 16))
            Image.fromarray(image).save(root / split / "images" / f"{i:03d}.png")
            lines.append(f"{i:03d}.png,{20 + 40 * red:.3f},{70000 + 20000 * blue:.1f}")
        (root / split / "targets.csv").write_text("\n".join(lines) + "\n")
    return root
