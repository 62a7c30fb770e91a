"""What a study is run with: ``TuneSettings``, which travel to worker processes as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dltool.tuning.samplers import is_grid

DIRECTIONS = ("maximize", "minimize")
DEFAULT_TRIALS = 20


@dataclass(frozen=True)
class TuneSettings:
    """Everything a worker needs to run trials of a study (JSON-serialisable)."""

    # A clone detector pairs these field lines with rundir.records.EpochRecord's by shape:
    # declarations of different records, not repeated logic.

    study_dir: Path
    study_name: str
    storage: str  # JOURNAL or an SQLAlchemy URL (with its password: never written to disk)
    base: dict[str, Any]  # the resolved config every trial starts from
    space: dict[str, Any]  # the search space as written
    metric: str
    direction: str
    sampler: str
    pruner: str
    n_trials: int
    seed: int | None = None
    timeout: float | None = None
    recipe: str | None = None
    folds: int = 0  # each trial's value: the mean over k-fold cross-validation's folds (0: one run)
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def grid(self) -> bool:
        """The sampler is the grid: dltool queues each point itself."""
        return is_grid(self.sampler)

    @property
    def steps(self) -> int:
        """What the pruners divide: a trial's folds (reported after each), else its epochs."""
        return self.folds or int(self.base["train"]["epochs"])

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "study_dir": str(self.study_dir), "notes": []})

    @classmethod
    def from_json(cls, text: str) -> TuneSettings:
        document = json.loads(text)
        return cls(**{**document, "study_dir": Path(document["study_dir"]), "notes": ()})


@dataclass(frozen=True)
class StudyOptions:
    """The choices of ``dltool tune`` beyond the config. None: the default, or what a
    continued study recorded."""

    trials: int | None = None
    timeout: float | None = None  # seconds after which no new trial starts
    sampler: str | None = None
    pruner: str | None = None
    metric: str | None = None
    direction: str | None = None
    storage: str | None = None  # an SQLAlchemy URL; None: a journal file in the study dir
    study_name: str | None = None
    workers: int = 1
    name: str | None = None  # the study dir's name: an existing one is continued
    runs_dir: Path = Path("runs")
    restart: bool = False  # set an existing study dir's records aside and start afresh
    folds: int | None = None  # score each trial by k-fold cross-validation (None: as recorded, else off)
    dry_run: bool = False  # validate everything, create nothing (``prepare_study`` stops before the study dir)
