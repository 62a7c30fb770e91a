"""The one module that touches Optuna's private attributes, and the one that quiets Optuna.

Each private use below says why no public API does the job. They were checked against
Optuna 5.1.0; pyproject.toml bounds Optuna below 6 so that a release that may rename them
is taken only after the tune tests pass on it (``CHECKED_WITH`` is that version).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

CHECKED_WITH = "5.1.0"


def storage_of(study: Any) -> Any:
    """The storage object of ``study``.

    Private (``study._storage``): Optuna has no public accessor. dltool needs it to tell a
    journal from a database (they find lost workers differently), to send heartbeats from its
    own thread, and to fail trials that another, dead, process owns.
    """
    return study._storage


def trial_id(trial: Any) -> int:
    """The storage's id of a ``Trial`` or ``FrozenTrial``.

    Private (``trial._trial_id``): storage methods key trials by this id, which neither trial
    type exposes; ``number`` counts within a study only.
    """
    return trial._trial_id


def fail_trial_of_another(study: Any, trial: Any, reason: str) -> bool:
    """Mark ``trial`` (RUNNING in a process that is gone) FAIL with user attr ``stopped``.

    Through the storage: ``Study.tell`` cannot set a user attr on a trial it did not ask
    for, and it does not say whether this call or another process's failed it. Returns
    False when another process finished it first.
    """
    import optuna
    from optuna.trial import TrialState

    storage = storage_of(study)
    try:
        storage.set_trial_user_attr(trial_id(trial), "stopped", reason)
        return bool(storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna at WARNING, and without its warnings about experimental heartbeats, while inside.

    Its INFO line per trial would interleave with dltool's own progress (and the API prints
    nothing); the heartbeat warnings (experimental, "supposed to be used with optimize")
    say nothing a user can act on, since dltool sends the heartbeats itself. The previous
    verbosity comes back on exit, so a notebook keeps its own setting.
    """
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))  # never louder
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
