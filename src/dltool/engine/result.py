"""What a training run came to: its status, summary and task, as ``train`` returns it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dltool.tasks as tasks
from dltool.config.schema import Config
from dltool.config.validate import validate_config
from dltool.errors import CheckpointError
from dltool.rundir import RunDir

if TYPE_CHECKING:
    import pandas as pd

# How a run ends with its test split scored: a resume has nothing left to do.
ENDED = ("completed", "early_stopped")


@dataclass(frozen=True)
class RunResult:
    """What ``train`` returns: ``status`` as in summary.json (completed, early_stopped, interrupted)."""

    run_dir: Path | None
    status: str
    summary: dict[str, Any]
    task: str  # what the model was trained for (dltool.tasks): which scores are its headline

    @property
    def best(self) -> dict[str, Any] | None:
        """The kept epoch: ``{epoch, metric, value}`` (None when no epoch had a finite metric)."""
        return self.summary.get("best")

    @property
    def test(self) -> dict[str, Any] | None:
        """The best weights' test score: ``{n, loss, accuracy}`` (None when interrupted)."""
        return self.summary.get("test")

    @property
    def metrics(self) -> pd.DataFrame:
        """``metrics.jsonl`` as a DataFrame, one row per epoch (empty without a run dir)."""
        import pandas as pd

        return pd.DataFrame(RunDir(self.run_dir).read_metrics() if self.run_dir else [])


def ended_run(run: RunDir, config: Config, checkpoint: dict[str, Any]) -> RunResult | None:
    """``run`` as it ended, when it ended (``ENDED``), ``config`` asks nothing new of it and
    its records are whole: a resume of it would only score its test split again. None
    otherwise (more epochs, TensorBoard turned on; a resume writes damaged records again)."""
    try:
        summary = run.read_summary() or {}
        whole = _records_whole(run, summary)
    except (CheckpointError, OSError, ValueError):
        return None
    if summary.get("status") not in ENDED or not whole or _asks_more(config, checkpoint["config"]):
        return None
    return RunResult(run.path, summary["status"], summary, tasks.task_name(config.model))


# Resume overrides that leave an ended run nothing to do: where it runs, where its data is now.
WHERE = (("train", "device"), ("data", "name"))


def _asks_more(config: Config, saved: dict[str, Any]) -> bool:
    """Whether ``config`` differs from the run's own ``saved`` config but for ``WHERE``."""
    own, asked = validate_config(saved).to_dict(), config.to_dict()
    for section, key in WHERE:
        del own[section][key], asked[section][key]
    return own != asked


def _records_whole(run: RunDir, summary: dict[str, Any]) -> bool:
    records = run.read_config() and run.read_classes() is not None and run.weights.is_file()
    return bool(records) and len(run.read_metrics()) == summary.get("epochs_run")


def nothing_to_resume(ended: RunResult) -> str:
    """What a resume of the ended run ``ended`` says instead of training."""
    return f"{ended.run_dir}: {ended.status.replace('_', ' ')} already; nothing to resume (more epochs train further)"
