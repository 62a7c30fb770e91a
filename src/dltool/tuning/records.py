"""study.json as a typed record: ``StudyRecord`` is what the study dir says of its study.

The file is written from the record (``to_dict``, keys in this order) and read back into
one (``from_dict``) where a study is continued.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from dltool.errors import CheckpointError

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


@dataclass(frozen=True)
class BestTrial:
    """The best COMPLETE trial: its number, value, parameters by dotted key, and run dir."""

    number: int
    value: float
    params: dict[str, Any]
    run_dir: str | None  # relative to the study dir when the trial ran inside it
    fold_values: list[float] | None = None  # each fold's value, in a study with folds


@dataclass(frozen=True)
class StudyRecord:
    """study.json (see docs/design-notes.md, "study.json")."""

    study_name: str
    storage: str  # journal:study.journal, or the SQLAlchemy URL without its password
    metric: str
    direction: str
    n_trials: int
    states: dict[str, int]  # every state of STATES, with zeros
    best: BestTrial | None
    sampler: str
    pruner: str
    seed: int | None
    recipe: str | None
    space: dict[str, Any] | None
    dashboard: str
    dltool_version: str
    folds: int = 0  # trials scored by k-fold cross-validation (0: one run each; older records lack it)

    @property
    def trials(self) -> int:
        """How many trials the study had when this record was written."""
        return sum(self.states.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any], source: object) -> StudyRecord:
        """``document`` as read from ``source`` (named in the error when it is not a record)."""
        names = [f.name for f in fields(cls)]
        missing = [f.name for f in fields(cls) if f.name not in document and f.default is MISSING]
        if missing:
            raise CheckpointError(f"{source}: not a complete dltool study record (no {', '.join(missing)})")
        values = {name: document[name] for name in names if name in document}
        best = values["best"]
        try:
            values["best"] = None if best is None else BestTrial(**best)
        except TypeError:
            raise CheckpointError(f"{source}: its best trial is not a dltool record: {best!r:.200}") from None
        return cls(**values)
