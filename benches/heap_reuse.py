"""Training on the CPU with freed memory kept in the heap (``dltool.engine.heap``) against
glibc's defaults (``$DLTOOL_REUSE_HEAP=0``): training time and peak memory of whole runs.

Usage: python benches/heap_reuse.py [--quick]

Each side is ``dltool train`` as a fresh process on a folder of 200 synthetic 256×256 JPEG
photos (``_photos.py``), one epoch at 224 px, batch 32, from random weights
(``model.pretrained=false``: nothing to download), the memory loader; ResNet-18 (torchvision)
and EfficientNet-B0 (timm, where installed). Figures: the run's own training time
(summary.json's ``wall_time_s``, start-up left out) and the process's peak RSS (sampled from
/proc); the best of 2 alternating rounds (--quick: one round at 128 px, the last model only).
The ratios are the defaults' figure over the reused heap's: above 1 is faster, below 1 is
more memory. CPU only (CUDA memory does not come from malloc): no rows on another device.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main
from _photos import photo_folder
from _rss import run_peak_rss

CACHE = Path(tempfile.gettempdir()) / "dltool-bench-photos"
# label: (recipe, the package its model needs, overrides); every layer trains, as resnet18's
# recipe does from epoch 3
MODELS = {
    "resnet18": ("photos-resnet18", "torchvision", ["model.freeze=none", "train.unfreeze_epoch=null"]),
    "efficientnet-b0": ("photos-efficientnet", "timm", []),
}


def train_once(folder: Path, recipe: str, sets: list[str], runs: Path, reuse: bool) -> tuple[float, int]:
    """(training seconds, peak RSS bytes) of one ``dltool train`` process."""
    command = [sys.executable, "-m", "dltool", "train", recipe, "--dataset", str(folder), "--runs-dir", str(runs), "-q"]
    for setting in sets:
        command += ["--set", setting]
    env = {**os.environ, "DLTOOL_REUSE_HEAP": "1" if reuse else "0", "DLTOOL_DATA": str(runs / "data")}
    result, peak = run_peak_rss(command, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"dltool train {recipe} failed:\n{result.stderr[-2000:]}")
    summary = json.loads((Path(result.stdout.strip()) / "summary.json").read_text(encoding="utf-8"))
    return summary["wall_time_s"], peak


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    if device != "cpu":
        return []
    size, rounds = (128, 1) if quick else (224, 2)
    folder = photo_folder(CACHE / "256x256-200", 200, (256, 256))
    rows = []
    available = [(label, entry) for label, entry in MODELS.items() if importlib.util.find_spec(entry[1])]
    for label, (recipe, _package, overrides) in available[-1:] if quick else available:
        sets = [
            *overrides,
            *("model.pretrained=false", f"data.image_size={size}", "data.loader=memory"),
            *("train.batch_size=32", "train.epochs=1", "train.device=cpu"),
        ]
        seconds: dict[bool, list[float]] = {True: [], False: []}
        peaks: dict[bool, int] = {}
        for _ in range(rounds):
            for reuse in (True, False):
                with tempfile.TemporaryDirectory(prefix="dltool-heap-bench-") as runs:
                    took, peak = train_once(folder, recipe, sets, Path(runs), reuse)
                seconds[reuse].append(took)
                peaks[reuse] = max(peaks.get(reuse, 0), peak)
        reused, plain = min(seconds[True]), min(seconds[False])
        what = f"{label}, 1 epoch of 200 photos at {size} px, batch 32"
        rows += [
            Row(
                f"train {what}: training time with the heap reused (s)",
                f"{reused:.1f}",
                f"{plain:.1f} glibc's defaults",
                plain / reused,
                id=f"heap-reuse.{label}-time",
            ),
            Row(
                "  the same: peak RSS (MB)",
                f"{peaks[True] / 2**20:,.0f}",
                f"{peaks[False] / 2**20:,.0f} glibc's defaults",
                peaks[False] / peaks[True],
                id=f"heap-reuse.{label}-rss",
            ),
        ]
    return rows


if __name__ == "__main__":
    bench_main(run, __doc__)
