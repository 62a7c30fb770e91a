"""What the median pruner buys on digits, and what a trial of ``dltool tune`` costs over
calling the training function directly.

Usage: python benches/tune_pruning.py [--quick]  (30 trials × 15 epochs, 2 repeats; quick: 12 × 8, 1)

Measured in one process, on the digits-mlp recipe and one search space (learning rate on a
log range, width, dropout), TPE seeded the same way, one CPU thread per run (on a shared
2-core machine two threads stall whenever another process holds a core):
- the same budget of trials with ``--pruner median`` and with ``--pruner none``, repeated in
  alternating order: wall time of the whole study (median over repeats) and the best
  val_acc it found (the same in every repeat: seeded sampling, deterministic training);
- per trial: the study without pruning against ``dltool.engine.train`` called directly on
  the very configs that study trained, with a run dir each. Training time swings with the
  machine's load far more than tune adds, so tune's overhead is also timed on its own: the
  study's wall time minus the time spent inside ``engine.train``, plus the time its
  per-epoch observer spends reporting to Optuna (sampling, journal writes, run dir,
  trials.csv, study.json, best.yaml).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from dltool import engine
from dltool.config import load_config, validate_config
from dltool.engine import train
from dltool.rundir import create_run_dir
from dltool.tuning import StudyOptions, open_study, prepare_study, tune
from dltool.tuning import trial as tuning_trial

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main, scratch

RECIPE = "digits-mlp"
SPACE = """\
optimizer.lr: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
model.width: {type: int, low: 32, high: 256, step: 32}
model.dropout: {type: float, low: 0.0, high: 0.5}
"""


class Stopwatch:
    """Sums the time spent in the functions it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


def run_study(work: Path, name: str, pruner: str, args: argparse.Namespace) -> tuple[float, dict, float]:
    """Wall time, study.json, and the seconds spent in tune's own code (outside training)."""
    space = work / "space.yaml"
    space.write_text(SPACE)
    in_train, in_report = Stopwatch(), Stopwatch()
    engine.train = in_train.wrap(train)  # run_trial calls dltool.engine.train
    observer = tuning_trial.TrialObserver
    original = observer.on_epoch
    observer.on_epoch = in_report.wrap(original)
    try:
        started = time.perf_counter()
        settings = prepare_study(
            RECIPE,
            space,
            StudyOptions(trials=args.trials, sampler="tpe", pruner=pruner, runs_dir=work / "runs", name=name),
            flags={"train.epochs": args.epochs, "train.seed": args.seed},
            sets=["train.threads=1"],
        )
        result = tune(settings)
        wall = time.perf_counter() - started
    finally:
        engine.train, observer.on_epoch = train, original
    return wall, result.study, wall - in_train.seconds + in_report.seconds


def direct(study_dir: Path, work: Path) -> tuple[float, list[Path]]:
    """``train`` on each config the study trained, one after another, with a run dir each."""
    configs = [t.user_attrs["config"] for t in open_study(study_dir).trials]
    runs = []
    started = time.perf_counter()
    for config in configs:
        runs.append(train(validate_config(config), create_run_dir(work / "direct", "direct")).run_dir)
    return time.perf_counter() - started, runs


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    args = argparse.Namespace(
        trials=12 if quick else 30, epochs=8 if quick else 15, seed=0, repeats=1 if quick else 2, device=device
    )
    with scratch("dltool-bench-") as work:
        return measure(work, args)


def measure(work: Path, args: argparse.Namespace) -> list[Row]:
    train(
        load_config(RECIPE, flags={"train.epochs": 1}), create_run_dir(work / "warmup", "warmup")
    )  # caches, lazy imports

    walls: dict[str, list[float]] = {"median": [], "none": []}
    studies: dict[str, dict] = {}
    overheads: list[float] = []
    for repeat in range(args.repeats):
        for pruner in ("median", "none") if repeat % 2 == 0 else ("none", "median"):
            seconds, studies[pruner], own = run_study(work, f"{pruner}-{repeat}", pruner, args)
            walls[pruner].append(seconds)
            if pruner == "none":
                overheads.append(own / args.trials)
    direct_s, _ = direct(work / "runs" / f"none-{args.repeats - 1}", work)
    full_s = walls["none"][-1]
    overhead = statistics.median(overheads)

    n, pruned, full = args.trials, studies["median"], studies["none"]
    median_s, none_s = statistics.median(walls["median"]), statistics.median(walls["none"])
    return [
        Row(
            f"tune: study wall time, {n} trials × {args.epochs} epochs, median pruner (s)",
            f"{median_s:.1f}",
            f"{none_s:.1f} no pruner",
            none_s / median_s,
            id="tune-pruning.study-wall-time",
        ),
        Row(
            "tune: best val_acc found with the median pruner",
            f"{pruned['best']['value']:.4f}",
            f"{full['best']['value']:.4f} no pruner",
            pruned["best"]["value"] / full["best"]["value"],
            id="tune-pruning.best-val-acc",
        ),
        Row(
            "tune: trials pruned",
            f"{pruned['states']['PRUNED']} of {n}",
            f"{full['states']['PRUNED']} of {n} no pruner",
            None,
            id="tune-pruning.trials-pruned",
        ),
        Row(
            "tune: time per trial, no pruner (s)",
            f"{full_s / n:.3f}",
            f"{direct_s / n:.3f} engine.train directly",
            direct_s / full_s,
            id="tune-pruning.time-per-trial",
        ),
        Row(
            "tune: its own time per trial (ms)",
            f"{1000 * overhead:.0f}",
            f"{1000 * direct_s / n:.0f} a direct engine.train",
            (direct_s / n) / overhead,
            id="tune-pruning.own-time-per-trial",
        ),
    ]


if __name__ == "__main__":
    bench_main(run, __doc__)
