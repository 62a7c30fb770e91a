"""Who runs a trial, and whether it still does: heartbeats, and the sweep that fails a
RUNNING trial whose worker died.

- Either storage: each trial records its worker (host, pid and the pid's start time); a
  sweep fails a RUNNING trial whose process is gone from this host at once.
- Database storage: Optuna's heartbeats; a trial whose heartbeat is ``GRACE_S`` old is
  failed by Optuna's own check.
- The journal has no heartbeats of its own: each trial refreshes a heartbeat attr; a sweep
  fails RUNNING trials whose heartbeat from another host is ``GRACE_S`` old.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dltool.tuning._optuna import fail_trial_of_another, quiet_optuna, storage_of, trial_id

HEARTBEAT_S = 10  # how often a running trial says it is alive
GRACE_S = 60  # a heartbeat this old means the trial's worker is gone

HOST = socket.gethostname()


def _pid_namespace() -> str | None:
    """This process's pid namespace (Linux): containers that share a host name (docker's host
    network) each see their own pids, so another one's live worker would look gone."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


PID_NAMESPACE = _pid_namespace()


def worker_identity() -> dict[str, Any]:
    """Recorded on each trial: enough to tell later whether its process still runs."""
    return {"host": HOST, "pid": os.getpid(), "started": _process_start(os.getpid()), "pid_ns": PID_NAMESPACE}


def seen_here(identity: dict[str, Any]) -> bool:
    """Whether the worker ran on this host, among the pids this process sees."""
    return identity.get("host") == HOST and identity.get("pid_ns", PID_NAMESPACE) == PID_NAMESPACE


def process_gone(identity: dict[str, Any]) -> bool:
    """True when the worker is ``seen_here`` and its process no longer exists (or is a zombie)."""
    if not seen_here(identity):
        return False
    pid = int(identity["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    started = _process_start(pid)
    if started == "zombie":
        return True
    return identity.get("started") is not None and started is not None and started != identity["started"]


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to see a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return "zombie" if fields[0] == "Z" else fields[19]


def sweep_stale_trials(study: Any, now: float | None = None) -> list[int]:
    """Fail the RUNNING trials whose worker is gone; returns their numbers.

    On either storage, a trial whose process is gone from this host. On a database, also
    Optuna's heartbeat check; on the journal, no heartbeat from another host for ``GRACE_S``.
    """
    import optuna
    from optuna.trial import TrialState

    journal = isinstance(storage_of(study), optuna.storages.JournalStorage)
    now = time.time() if now is None else now
    failed = [
        trial.number
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if (reason := _lost(trial, now, journal)) and fail_trial_of_another(study, trial, reason)
    ]
    return failed if journal else sorted(failed + _failed_by_heartbeat(study))


def _failed_by_heartbeat(study: Any) -> list[int]:
    """Optuna's own check on a database: the trials it failed for want of a heartbeat."""
    import optuna
    from optuna.trial import TrialState

    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with quiet_optuna():
        optuna.storages.fail_stale_trials(study)
    # A worker sets `error` or `stopped` before it fails its own trial; the check sets neither.
    return [
        t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.number in before and not {"error", "stopped"} & set(t.user_attrs)
    ]


def _lost(trial: Any, now: float, journal: bool) -> str | None:
    identity = trial.user_attrs.get("worker")
    beat = trial.user_attrs.get("heartbeat") or (trial.datetime_start.timestamp() if trial.datetime_start else now)
    if identity and process_gone(identity):
        return f"lost: worker process {identity['pid']} on {identity['host']} is gone"
    if journal and not (identity and seen_here(identity)) and now - beat > GRACE_S:
        where = f" on {identity['host']}" if identity else ""
        return f"lost: no heartbeat from its worker{where} for {now - beat:.0f}s"
    return None


@contextlib.contextmanager
def heartbeat(study: Any, trial: Any) -> Iterator[None]:
    """Keep saying that ``trial`` is alive, every ``HEARTBEAT_S`` seconds, from a thread."""
    import optuna

    storage, ident = storage_of(study), trial_id(trial)
    if isinstance(storage, optuna.storages.JournalStorage):
        beat = lambda: storage.set_trial_user_attr(ident, "heartbeat", time.time())  # noqa: E731
    else:
        beat = lambda: storage.record_heartbeat(ident)  # noqa: E731
    done = threading.Event()

    def keep_beating() -> None:
        while not done.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a missed beat is retried; the trial goes on
                beat()

    beat()
    thread = threading.Thread(target=keep_beating, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
