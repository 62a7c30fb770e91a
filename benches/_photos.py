"""Synthetic photo folders for the data benches: smooth colour gradients, a few soft shapes
and sensor-like noise, saved as JPEG (quality 90) — files that decode like phone photos
(real DCT content, not flat colour), made offline with NumPy and Pillow.

``photo_folder(root, count, size)`` writes ``root/<class>/<n>.jpg`` for 4 classes, in
parallel processes, and reuses a folder already complete (the 20,000-file folders take a
minute to write).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = 4


def photo(seed: int, size: tuple[int, int]) -> Image.Image:
    """One synthetic photo of ``size`` (width, height); the class (seed % 4) sets its palette."""
    rng = np.random.default_rng(seed)
    width, height = size
    base = np.array([[200, 80, 60], [60, 160, 90], [70, 90, 200], [180, 170, 60]][seed % CLASSES], float)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    tilt = rng.uniform(-80, 80, (2, 3)).astype(np.float32)
    pixels = base + x * tilt[0] + y * tilt[1]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.3) * min(width, height)
        draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    image = image.filter(ImageFilter.GaussianBlur(max(1.0, min(width, height) / 128)))
    noisy = np.asarray(image, np.int16) + rng.normal(0, 6, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _write(job: tuple[str, int, tuple[int, int]]) -> None:
    folder, seed, size = job
    path = Path(folder) / f"class{seed % CLASSES}" / f"{seed:06d}.jpg"
    if not path.exists():
        photo(seed, size).save(path, quality=90)


def photo_folder(root: Path, count: int, size: tuple[int, int]) -> Path:
    """``root`` holding ``count`` photos of ``size`` (width, height) in 4 class folders."""
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    if sum(1 for _ in root.glob("class*/*.jpg")) == count:
        return root
    jobs = [(str(root), seed, size) for seed in range(count)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_write, jobs, chunksize=64))
    return root
