"""`dltool train digits-mlp` end to end against scikit-learn's MLPClassifier, a hand-written
PyTorch script and a Lightning script: wall time and test accuracy, each as a fresh process.

Usage: python benches/end_to_end.py [--quick]

The same run times all four, alternating, on the same digits test split (dltool's fixed 20%):
- dltool: ``python -m dltool train digits-mlp`` (its digits cache built by a first, untimed run,
  as any second run finds it), accuracy from the run's summary.json;
- ``e2e_sklearn.py``: ``MLPClassifier`` of the same shape, early stopping on;
- ``e2e_torch.py``: the recipe written by hand (same model, optimiser, schedule, 30 epochs);
- ``e2e_lightning.py``: the same in Lightning, where lightning is installed;
- ``e2e_floor.py``: no training, only what any PyTorch process pays before its first step
  (``import torch`` and one optimizer step, which imports ``torch._dynamo``): scikit-learn's
  time against it says how far below torch's own start-up the goal lies.
Each figure is the median of 3 rounds, after one untimed round that warms the file caches
(--quick: one round, after an untimed dltool run). Issue 21's goals: dltool at no more than scikit-learn's time at a test accuracy
at least as high, and at no more than 0.8× the hand-written script's time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main

HERE = Path(__file__).resolve().parent

Run = tuple[float, float]  # (wall seconds, test accuracy)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds, stdout) of ``command`` as a fresh process."""
    started = time.perf_counter()
    result = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, result.stdout


def dltool_run(runs: Path, env: dict[str, str]) -> Run:
    command = [sys.executable, "-m", "dltool", "train", "digits-mlp", "--runs-dir", str(runs), "--device", "cpu", "-q"]
    seconds, stdout = timed(command, env)
    summary = json.loads((Path(stdout.strip()) / "summary.json").read_text(encoding="utf-8"))
    return seconds, summary["test"]["accuracy"]


def script_run(script: str, env: dict[str, str]) -> Run:
    seconds, stdout = timed([sys.executable, str(HERE / script)], env)
    return seconds, json.loads(stdout)["accuracy"]


def contenders(work: Path) -> dict[str, Callable[[], Run]]:
    env = {**os.environ, "DLTOOL_DATA": str(work / "data")}
    sides = {
        "dltool": lambda: dltool_run(work / "runs", env),
        "sklearn": lambda: script_run("e2e_sklearn.py", env),
        "torch": lambda: script_run("e2e_torch.py", env),
        "floor": lambda: script_run("e2e_floor.py", env),
    }
    if importlib.util.find_spec("lightning") is not None:
        sides["lightning"] = lambda: script_run("e2e_lightning.py", env)
    return sides


def measure(rounds: int, warm_all: bool = True) -> dict[str, Run]:
    """Each side's median wall time and its test accuracy (of the median round)."""
    with tempfile.TemporaryDirectory(prefix="dltool-e2e-bench-") as folder:
        sides = contenders(Path(folder))
        for name, side in sides.items():
            if warm_all or name == "dltool":  # dltool's first run also builds its digits cache
                side()
        results: dict[str, list[Run]] = {name: [] for name in sides}
        for _ in range(rounds):  # alternate, to share the machine's noise
            for name, side in sides.items():
                results[name].append(side())
    return {name: statistics.median_low(runs) for name, runs in results.items()}


def rows(measured: dict[str, Run], rounds: int) -> list[Row]:
    dl_s, dl_acc = measured["dltool"]
    ours = f"{dl_s:.2f} (test accuracy {dl_acc:.4f})"
    what = f"`dltool train digits-mlp` end to end, median of {rounds} (s)"

    def versus(name: str, label: str, goal: float | None) -> Row:
        if name not in measured:
            return Row(f"{what} vs {label}", ours, "not installed", None, id=f"end-to-end.digits-mlp.vs-{name}")
        s, acc = measured[name]
        theirs = f"{s:.2f} (test accuracy {acc:.4f}) {label}"
        return Row(f"{what} vs {label}", ours, theirs, s / dl_s, id=f"end-to-end.digits-mlp.vs-{name}", goal=goal)

    sk_acc = measured["sklearn"][1]
    return [
        versus("sklearn", "scikit-learn MLPClassifier, early stopping", 1.0),
        Row(
            "digits test accuracy: dltool vs scikit-learn MLPClassifier",
            f"{dl_acc:.4f}",
            f"{sk_acc:.4f}",
            dl_acc / sk_acc,
            id="end-to-end.digits-mlp.accuracy-vs-sklearn",
            goal=1.0,
        ),
        versus("torch", "hand-written PyTorch script", 1 / 0.8),  # dltool at 0.8x its time or less
        versus("lightning", "Lightning script", None),
        floor_row(measured),
    ]


def floor_row(measured: dict[str, Run]) -> Row:
    """scikit-learn's whole run against PyTorch's start-up alone: over 1.0x, scikit-learn has
    finished before any PyTorch training could take its first step on this machine."""
    floor_s, sk_s = measured["floor"][0], measured["sklearn"][0]
    return Row(
        "scikit-learn's whole digits run vs PyTorch's start-up alone (`import torch`, one Adam step) (s)",
        f"{sk_s:.2f} scikit-learn MLPClassifier",
        f"{floor_s:.2f} PyTorch start-up, nothing trained",
        floor_s / sk_s,
        id="end-to-end.torch-floor-vs-sklearn",
    )


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    if device != "cpu":  # scikit-learn and the scripts run on the CPU: a comparison made there
        return []
    rounds = 1 if quick else 3
    return rows(measure(rounds, warm_all=not quick), rounds)


if __name__ == "__main__":
    bench_main(run, __doc__)
