"""Where a study lives, and how a trial whose worker died stops being RUNNING.

- The default: an Optuna journal file ``study.journal`` in the study dir, appended under
  its file lock, safe for several processes on one machine (recorded as ``journal:study.journal``).
- Any SQLAlchemy URL (``postgresql://user@host/db``, ``sqlite:///study.db``): an RDB storage
  with Optuna's heartbeats, so processes on many machines share one study and a trial
  whose process vanished is failed once its heartbeat is ``GRACE_S`` old.
- The journal has no heartbeats of its own: each trial records its worker (host, pid and
  the pid's start time) and a heartbeat it refreshes; a sweep fails RUNNING trials whose
  process is gone from this host, or whose heartbeat from another host is ``GRACE_S`` old.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dltool.errors import DltoolError, UsageError, first_line

JOURNAL = "journal:study.journal"
JOURNAL_FILE = "study.journal"
HEARTBEAT_S = 10  # how often a running trial says it is alive
GRACE_S = 60  # a heartbeat this old means the trial's worker is gone
OPEN_ATTEMPTS = 5


def check_storage(url: str | None, workers: int) -> str:
    """The storage to use: ``JOURNAL`` by default, else the SQLAlchemy URL, checked."""
    if url is None or url == JOURNAL:
        return JOURNAL
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"--storage {url!r}: expected a database URL such as postgresql://user@host/db "
            f"or sqlite:///study.db (default: a journal file in the study dir)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if workers > 1:
            raise UsageError(
                "--storage sqlite: SQLite cannot take several workers writing at once; "
                "drop --storage (a journal file) or use postgresql://"
            )
        if parsed.database and parsed.database != ":memory:":  # relative to where it was started
            return parsed.set(database=str(Path(parsed.database).resolve())).render_as_string(hide_password=False)
    return _with_driver(url)


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg2, the driver dltool installs (SQLAlchemy 2.1 would
    look for psycopg 3)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername == "postgresql" and _importable("psycopg2"):
        return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    return url


def public_url(storage: str) -> str:
    """The storage as written to study.json and shown: never with its password."""
    if storage == JOURNAL:
        return storage
    from sqlalchemy.engine import URL, make_url

    url = make_url(storage)
    bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
    return bare.render_as_string(hide_password=False)


def same_storage(a: str, b: str) -> bool:
    return public_url(a) == public_url(b)


def open_storage(storage: str, study_dir: Path) -> Any:
    """An Optuna storage object; a database that cannot be reached is a ``DltoolError``."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if storage == JOURNAL:
        path = str((study_dir / JOURNAL_FILE).resolve())
        lock = KernelFileLock(path + ".lock")  # Optuna's lock protocol (acquire/release), not its base class
        return JournalStorage(JournalFileBackend(path, lock_obj=lock))  # type: ignore[arg-type]
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    for attempt in range(OPEN_ATTEMPTS):
        try:
            with optuna_quiet():  # heartbeats are marked experimental
                return optuna.storages.RDBStorage(
                    _with_driver(storage), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
                )
        except (IntegrityError, ProgrammingError):
            # Processes that meet an empty database race to create Optuna's tables: the
            # losers see them half-made and try again.
            if attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
        except (SQLAlchemyError, ImportError) as error:
            reason = first_line(getattr(error, "orig", None) or error)  # .orig: the driver's, inside SQLAlchemy's
            raise DltoolError(f"--storage {public_url(storage)}: cannot open: {reason}") from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def optuna_quiet() -> Iterator[None]:
    """Silence Optuna's warnings about its experimental heartbeats and about using them with
    ask-and-tell (dltool sends the heartbeats itself): they say nothing the user can act on."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        yield


class KernelFileLock:
    """The journal's write lock (in the place of Optuna's ``BaseJournalFileLock``) as an OS
    file lock (``flock``, through ``filelock``).

    The kernel drops it when its holder dies, so a worker SIGKILLed in the middle of a write
    never leaves the study locked. Optuna's own symlink lock would be broken only after a
    30 s grace period, and never when the journal path is relative: its stale-lock check then
    stats a dangling link and spins.
    """

    def __init__(self, path: str) -> None:
        from filelock import FileLock

        self._lock = FileLock(path)

    def acquire(self) -> bool:
        self._lock.acquire()
        return True

    def release(self) -> None:
        self._lock.release()


def dashboard_command(storage: str, study_dir: Path) -> str:
    """The command line that opens this study in optuna-dashboard."""
    target = str(study_dir / JOURNAL_FILE) if storage == JOURNAL else public_url(storage)
    return f"optuna-dashboard {target}"


# --- who runs a trial, and whether it still does --------------------------------------

HOST = socket.gethostname()


def worker_identity() -> dict[str, Any]:
    """Recorded on each trial: enough to tell later whether its process still runs."""
    return {"host": HOST, "pid": os.getpid(), "started": _process_start(os.getpid())}


def process_gone(identity: dict[str, Any]) -> bool:
    """True when the worker ran on this host and its process no longer exists (or is a zombie)."""
    if identity.get("host") != HOST:
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

    On database storage this is Optuna's heartbeat check. On the journal: a process gone
    from this host, or no heartbeat from another host for ``GRACE_S`` seconds.
    """
    import optuna
    from optuna.trial import TrialState

    if not isinstance(study._storage, optuna.storages.JournalStorage):
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with optuna_quiet():
            optuna.storages.fail_stale_trials(study)
        # A worker sets `error` or `stopped` before it fails its own trial; the check sets neither.
        return [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.number in before and not {"error", "stopped"} & set(t.user_attrs)
        ]
    now = time.time() if now is None else now
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = _lost(trial, now)
        if reason and _fail(study, trial, reason):
            failed.append(trial.number)
    return failed


def _lost(trial: Any, now: float) -> str | None:
    identity = trial.user_attrs.get("worker")
    beat = trial.user_attrs.get("heartbeat") or (trial.datetime_start.timestamp() if trial.datetime_start else now)
    if identity and process_gone(identity):
        return f"lost: worker process {identity['pid']} on {identity['host']} is gone"
    if (not identity or identity.get("host") != HOST) and now - beat > GRACE_S:
        where = f" on {identity['host']}" if identity else ""
        return f"lost: no heartbeat from its worker{where} for {now - beat:.0f}s"
    return None


def _fail(study: Any, trial: Any, reason: str) -> bool:
    import optuna
    from optuna.trial import TrialState

    try:
        study._storage.set_trial_user_attr(trial._trial_id, "stopped", reason)
        return study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another process failed it first


@contextlib.contextmanager
def heartbeat(study: Any, trial_id: int) -> Iterator[None]:
    """Keep saying that this trial is alive, every ``HEARTBEAT_S`` seconds, from a thread."""
    import optuna

    storage = study._storage
    if isinstance(storage, optuna.storages.JournalStorage):
        beat = lambda: storage.set_trial_user_attr(trial_id, "heartbeat", time.time())  # noqa: E731
    else:
        beat = lambda: storage.record_heartbeat(trial_id)  # noqa: E731
    done = threading.Event()

    def keep_beating() -> None:
        while not done.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a missed beat is retried; the trial goes on
                beat()

    beat()
    thread = threading.Thread(target=keep_beating, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
