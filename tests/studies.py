"""Helpers shared by the tune tests: space files, reading a study dir, waiting on a process."""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path

QUICK = ["--epochs", "2", "--limit-batches", "3"]  # a trial in well under a second on digits
RANDOM_SPACE = """
optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
model.width: {type: int, low: 32, high: 128, step: 32}
model.activation: {type: categorical, choices: [relu, tanh]}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def trials_csv(study: Path) -> list[dict[str, str]]:
    with open(study / "trials.csv", newline="") as file:
        return list(csv.DictReader(file))


def study_json(study: Path) -> dict:
    return json.loads((study / "study.json").read_text())


def wait_for_epochs(path: Path, process: subprocess.Popen, epochs: int = 1, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and len(path.read_text().splitlines()) >= epochs):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never got {epochs} epochs"
        time.sleep(0.02)
