"""The experiment trackers a run reports to: ``train.tracking`` names them (and
``train.tensorboard: true`` is the tensorboard one). Each is one module behind the same small
interface, opened by name from ``TRACKERS``; the engine talks to them all through ``Trackers``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, get_args

from dltool.config.schema import Config
from dltool.config.tracking import Tracker
from dltool.errors import TrackerTimeout, TrackingError

if TYPE_CHECKING:
    import torch

    from dltool.engine.setup import Components
    from dltool.rundir import RunDir

# name -> "module:opener"; an opener(run, parts, history) is a context manager of one tracker
# that has logged the hparams and ``history`` (a resumed run's epochs so far).
TRACKERS = {
    "tensorboard": "dltool.engine.tensorboard:open_board",
    "mlflow": "dltool.engine.mlflow_tracking:open_mlflow",
}
# name -> "module:function" raising a UsageError that names the extra when it is not installed
REQUIREMENTS = {
    "tensorboard": "dltool.engine.tensorboard:require_tensorboard",
    "mlflow": "dltool.engine.mlflow_tracking:require_mlflow",
}
assert set(TRACKERS) == set(REQUIREMENTS) == set(get_args(Tracker)), "a tracker in the schema, opened here"


class Tracking(Protocol):
    def log_epoch(self, record: dict[str, Any]) -> None:
        """After each epoch, its metrics.jsonl record."""

    def log_end(self, summary: dict[str, Any], confusion: torch.Tensor | None) -> None:
        """At the end, however the run ended: summary.json, and the test confusion counts."""


class Trackers:
    """The opened trackers, told everything in turn. One that fails (``TrackingError``: a
    server gone midway) is reported and dropped: the run goes on, its run dir is the record."""

    def __init__(self, trackers: dict[str, Tracking], report: Callable[[str], None]) -> None:
        self.trackers, self.report = trackers, report

    def log_epoch(self, record: dict[str, Any]) -> None:
        self._tell(lambda tracker: tracker.log_epoch(record))

    def log_end(self, summary: dict[str, Any], confusion: torch.Tensor | None) -> None:
        self._tell(lambda tracker: tracker.log_end(summary, confusion))

    def _tell(self, call: Callable[[Tracking], None]) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                call(tracker)
            except TrackingError as error:
                del self.trackers[name]
                self.report(going_on_without(name, error))


def going_on_without(name: str, error: TrackingError) -> str:
    """The one warning line of a tracker given up on."""
    return f"warning: {name}: {error}; the run goes on without it (the run dir keeps every record)"


def tracker_names(config: Config) -> list[str]:
    """``train.tracking``, with tensorboard when ``train.tensorboard`` asks for it."""
    names: list[str] = list(config.train.tracking)
    return names + ["tensorboard"] if config.train.tensorboard and "tensorboard" not in names else names


def require_trackers(config: Config) -> None:
    """Usage errors naming the extra to install, before any dir is made."""
    for name in tracker_names(config):
        _load(REQUIREMENTS[name])()


@contextmanager
def open_trackers(
    run: RunDir | None, parts: Components, history: list[dict[str, Any]], report: Callable[[str], None]
) -> Iterator[Trackers | None]:
    """The config's trackers on ``run`` (None without a run, as on ranks other than 0, or
    without trackers), closed however the run ends; ``report`` hears of one that fails midway,
    or that does not answer as it starts (a ``TrackerTimeout``: the run goes on without it;
    one that refuses the run stops it)."""
    names = tracker_names(parts.config) if run is not None else []
    with ExitStack() as stack:
        trackers: dict[str, Tracking] = {}
        for name in names:
            opener: AbstractContextManager[Tracking] = _load(TRACKERS[name])(run, parts, history)
            try:
                trackers[name] = stack.enter_context(opener)
            except TrackerTimeout as error:
                report(going_on_without(name, error))
        yield Trackers(trackers, report) if names else None


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
