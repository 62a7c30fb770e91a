"""Peak memory of the memory loader on a photo folder: first run (decode, write the cache,
measure mean/std), cached run (open the cache, draw val, one shuffled epoch of batches), and
`dltool stats FOLDER` on a folder not cached yet.

Usage: python benches/memory_rss.py [--quick] [--images N] [--src DIR]

Writes N (default 2,000; 400 with --quick) random 256×256 JPEGs into a temporary folder and
runs each phase in a fresh process at data.image_size 128, reading that process's own peak
RSS (``ru_maxrss``) when it ends. The reference is the decoded pixels' size (N × 3 × 128 ×
128 bytes; 256 × 256 for stats, which sees the images at their own size) plus the RSS of a
process that only imports what the phases import: the ratio says how close a run stays to
holding each pixel once. ``--src`` points
the child processes at another dltool source tree (an earlier release, to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main

SIZE = 128
PHOTO = 256
PHASE = """
import json, resource, sys
import torch
from dltool.config.schema import DataConfig
from dltool.data.loader import BatchLoader
from dltool.data.prepare import prepare_data
if sys.argv[1] == "stats":
    from dltool.stats import stats
    stats(sys.argv[2])
elif sys.argv[1] != "imports":
    data = prepare_data(DataConfig(name=sys.argv[2], root=sys.argv[3], image_size=int(sys.argv[4])))
    if sys.argv[1] == "cached":
        loader = BatchLoader(data.splits["train"], batch_size=256, mean=data.mean, std=data.std,
                             device=torch.device("cpu"), shuffle=True)
        for images, labels in loader.batches(0):
            pass
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
"""


def photo_folder(root: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)  # smooth, photo-like JPEG sizes
        Image.fromarray(base).resize((PHOTO, PHOTO), Image.Resampling.BICUBIC).save(folder / f"{i}.jpg", quality=90)
    return root


def peak_rss(phase: str, folder: Path, cache: Path, src: Path | None) -> int:
    env = dict(os.environ, DLTOOL_DATA=str(cache.parent / "stats-cache"))
    if src is not None:
        env["PYTHONPATH"] = str(src)
    argv = [sys.executable, "-c", PHASE, phase, str(folder), str(cache), str(SIZE)]
    return json.loads(subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout)


def run(quick: bool, device: str = "cpu", count: int | None = None, src: Path | None = None) -> list[Row]:
    count = count or (400 if quick else 2000)
    with tempfile.TemporaryDirectory() as tmp:
        folder = photo_folder(Path(tmp) / "photos", count)
        baseline = peak_rss("imports", folder, Path(tmp) / "cache", src)
        rows = []
        for phase in ("first", "cached", "stats"):
            side = PHOTO if phase == "stats" else SIZE  # stats looks at the images as they are
            pixels = count * 3 * side * side
            peak = peak_rss(phase, folder, Path(tmp) / "cache", src)
            rows.append(
                Row(
                    f"memory loader peak RSS, {phase} run, {count:,} {PHOTO}-px JPEGs at {side} px",
                    f"{peak / 2**20:.0f} MiB",
                    f"{(baseline + pixels) / 2**20:.0f} MiB (imports {baseline / 2**20:.0f} + pixels {pixels / 2**20:.0f})",
                    (baseline + pixels) / peak,
                    id=f"memory-rss.{phase}",
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--src", type=Path, default=None)
    known, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    bench_main(lambda quick, device: run(quick, device, known.images, known.src), __doc__ or "")


if __name__ == "__main__":
    main()
