"""Transfer with --init-from: digits 0–4 → 5–9 from 10 labelled images per class, against scratch.

Usage: python benches/transfer.py [--quick]

For each seed: train the digits-cnn recipe on classes 0–4 (all their training images), then
train on classes 5–9 with ``data.train_per_class: 10`` twice, with the same config and seed:
once starting from the first run's weights (``model.init_from``: every tensor but the head,
which has new classes) and once from scratch. Both are scored on the whole test split of
classes 5–9 (179 images: data.train_per_class never reduces val or test). The
figure is the mean test accuracy over the seeds; the ratio is init-from over scratch.

The fine-tuning budget is short on purpose (10 epochs of 5 steps): that is where starting
from related weights pays. Measured (2-core CPU, seeds 0–2): 10 epochs 0.935 vs 0.914, and
3 epochs (the test's budget) 0.812 vs 0.763, init-from ahead on every seed.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dltool.config import load_config
from dltool.engine import train
from dltool.rundir import create_run_dir

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main

RECIPE = "digits-cnn"
SEEDS = (0, 1, 2)
SOURCE, TARGET = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
PER_CLASS = 10
# 50 training images: batches of 10 give 5 steps an epoch (the recipe's 64 would give one).
FEW_SHOT = [f"data.classes={TARGET}", f"data.train_per_class={PER_CLASS}", "train.batch_size=10"]


@dataclass(frozen=True)
class Transfer:
    """Test accuracies per seed: fine-tuned from the source run, and trained from scratch."""

    init_from: list[float]
    scratch: list[float]


def measure(
    runs: Path, seeds=SEEDS, source_epochs: int = 15, target_epochs: int = 10, device: str = "cpu", sets=()
) -> Transfer:
    """``sets``: more config overrides for every run (a smaller model for the test)."""
    common = [f"train.device={device}", *sets]
    init_from, scratch = [], []
    for seed in seeds:
        source = _train(
            runs, f"source-{seed}", [f"data.classes={SOURCE}", f"train.epochs={source_epochs}"], seed, common
        )
        source = source.run_dir
        target = [*FEW_SHOT, f"train.epochs={target_epochs}"]
        init_from.append(
            _accuracy(_train(runs, f"init-from-{seed}", [*target, f"model.init_from={source}"], seed, common))
        )
        scratch.append(_accuracy(_train(runs, f"scratch-{seed}", target, seed, common)))
    return Transfer(init_from, scratch)


def _train(runs: Path, name: str, sets: list[str], seed: int, common: list[str]):
    config = load_config(RECIPE, [*sets, f"train.seed={seed}", f"data.split_seed={seed}", *common])
    return train(config, create_run_dir(runs, name))


def _accuracy(result) -> float:
    return result.test["accuracy"]


def rows(transfer: Transfer) -> list[Row]:
    ours, theirs = statistics.mean(transfer.init_from), statistics.mean(transfer.scratch)
    each = lambda values: ", ".join(f"{v:.3f}" for v in values)  # noqa: E731
    return [
        Row(
            f"transfer digits 0–4 → 5–9, {PER_CLASS} images/class: test accuracy, mean of {len(transfer.scratch)} seeds",
            f"{ours:.3f} --init-from ({each(transfer.init_from)})",
            f"{theirs:.3f} from scratch ({each(transfer.scratch)})",
            ours / theirs,
            id="transfer.digits-few-shot",
        )
    ]


def run(quick: bool, device: str) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        transfer = measure(
            Path(tmp), source_epochs=10 if quick else 15, target_epochs=5 if quick else 10, device=device
        )
    return rows(transfer)


def main() -> None:
    bench_main(run, __doc__)


if __name__ == "__main__":
    main()
