"""Where a study lives, and opening it: refused, in one line, when it is damaged.

- The default: an Optuna journal file ``study.journal`` in the study dir, appended under
  its file lock, safe for several processes on one machine (recorded as ``journal:study.journal``).
- Any SQLAlchemy URL (``postgresql://user@host/db``, ``sqlite:///study.db``): an RDB storage
  with Optuna's heartbeats, so processes on many machines share one study.

A damaged journal (a line that is not a record, a last record cut short) or a damaged SQLite
file is found when the storage is opened, and any later storage failure is translated by
``storage_errors``: a ``StorageError`` naming the storage and what to do, never a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dltool._extras import install_line
from dltool.errors import DltoolError, StorageError, UsageError, did_you_mean, first_line, option
from dltool.tuning import liveness
from dltool.tuning._optuna import quiet_optuna

JOURNAL = "journal:study.journal"
JOURNAL_FILE = "study.journal"
OPEN_ATTEMPTS = 5
RESTART_HINT = f"or start the study afresh with {option('restart_study', True)} (its records are kept in a subfolder)"


def check_storage(url: str | None, workers: int) -> str:
    """The storage to use: ``JOURNAL`` by default, else the SQLAlchemy URL, checked."""
    if url is None or url == JOURNAL:
        return JOURNAL
    parsed = _parsed(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_file(parsed, workers)
    return _with_driver(url)


# SQLAlchemy's own dialects: what a misspelt kind (postgres://, the URL of some hosts) is close to
DATABASES = ("mariadb", "mssql", "mysql", "oracle", "postgresql", "sqlite")
EXPECTED = (
    "expected a database URL such as postgresql://user@host/db or sqlite:///study.db "
    "(default: a journal file in the study dir)"
)


def _parsed(url: str) -> Any:
    """``--storage`` as a SQLAlchemy URL of a kind of database that SQLAlchemy knows."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(f"{option('storage', url)}: {EXPECTED}") from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        kind = parsed.get_backend_name()
        hint = did_you_mean(kind, DATABASES) or f"; {EXPECTED}"
        raise UsageError(f"{option('storage', public_url(url))}: unknown database {kind!r}{hint}") from None
    return parsed


def _sqlite_file(parsed: Any, workers: int) -> str:
    """A SQLite URL with its file's absolute path (it is relative to where tune started)."""
    where = option("storage", parsed.render_as_string())
    if workers > 1:
        raise UsageError(
            f"{option('storage', 'sqlite')}: SQLite cannot take several workers writing at once; "
            f"drop {option('storage')} (a journal file) or use postgresql://"
        )
    if parsed.host:  # sqlite://study.db
        path = "/".join(part for part in (parsed.host, parsed.database) if part)
        raise UsageError(f"{where}: {parsed.host!r} is read as a host; a SQLite file is sqlite:///{path}")
    if parsed.database in (None, "", ":memory:"):
        raise UsageError(
            f"{where}: an in-memory SQLite database ends with its connection, and the study with it; "
            "name a file: sqlite:///study.db"
        )
    return parsed.set(database=str(Path(parsed.database).resolve())).render_as_string(hide_password=False)


def _with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: psycopg 3 (``dltool[postgres]``,
    SQLAlchemy's default), else psycopg2; neither is a usage error naming the extra."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.drivername != "postgresql":
        return url
    for module, driver in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
            return parsed.set(drivername=driver).render_as_string(hide_password=False)
    raise UsageError(f"{option('storage', public_url(url))}: psycopg is not installed; {install_line('postgres')}")


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
    """An Optuna storage object; a damaged or unreachable one is a ``DltoolError``."""
    if storage == JOURNAL:
        return _open_journal((study_dir / JOURNAL_FILE).resolve())
    check_sqlite(storage)
    return _open_database(storage)


def _open_journal(path: Path) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    lock = KernelFileLock(str(path) + ".lock")
    if path.exists():
        with _held(lock):  # no writer is halfway through a record meanwhile
            check_journal(path)
    try:  # Optuna replays the journal here: a record of the wrong shape fails it
        # KernelFileLock follows Optuna's lock protocol (acquire/release), not its base class.
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))  # type: ignore[arg-type]
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as error:
        raise StorageError(f"{path}: damaged study journal ({_reason(error)}); {_journal_advice()}") from None


def check_journal(path: Path) -> None:
    """Refuse a journal whose lines are not all JSON records, or whose last one was cut short.

    Optuna reads a cut-short last record as not written yet and appends after it, which
    would glue the next record to it and damage the journal for good.
    """
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        raise StorageError(f"{path}: damaged study journal (its last record is cut short); {_journal_advice()}")
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:  # not UTF-8, or not JSON
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("op_code"), int):
            raise StorageError(
                f"{path}: damaged study journal (line {number} is not a journal record); {_journal_advice()}"
            )


def _journal_advice() -> str:
    return f"restore it from a copy, {RESTART_HINT}"


def check_sqlite(storage: str) -> None:
    """SQLite reads a damaged page only when a query reaches it: check every page first."""
    import sqlite3

    from sqlalchemy.engine import make_url

    url = make_url(storage)
    if url.get_backend_name() != "sqlite" or not url.database or not Path(url.database).is_file():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)) as connection:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as error:
        problems = [str(error)]
    if problems != ["ok"]:
        raise StorageError(
            f"{option('storage', public_url(storage))}: damaged SQLite database ({problems[0]}); {SQLITE_ADVICE}"
        )


SQLITE_ADVICE = (
    f"restore it from a copy (`sqlite3 FILE .recover` salvages what it can) or use another {option('storage')}"
)


def _open_database(storage: str) -> Any:
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    for attempt in range(OPEN_ATTEMPTS):
        try:
            with quiet_optuna():  # heartbeats are marked experimental
                return optuna.storages.RDBStorage(
                    _with_driver(storage), heartbeat_interval=liveness.HEARTBEAT_S, grace_period=liveness.GRACE_S
                )
        except (IntegrityError, ProgrammingError):
            # Processes that meet an empty database race to create Optuna's tables: the
            # losers see them half-made and try again.
            if attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
        except (SQLAlchemyError, ImportError) as error:
            raise DltoolError(f"{option('storage', public_url(storage))}: cannot open: {_reason(error)}") from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def storage_errors(storage: str, study_dir: Path) -> Iterator[None]:
    """Turn a failure of the storage while a study is used into one ``StorageError`` line.

    A database that breaks or is damaged midway raises SQLAlchemy's ``DatabaseError``, often
    wrapped in Optuna's ``StorageInternalError``; a journal damaged midway fails to parse.
    """
    import optuna
    from sqlalchemy.exc import DatabaseError

    where = study_dir / JOURNAL_FILE if storage == JOURNAL else option("storage", public_url(storage))
    try:
        yield
    except (optuna.exceptions.StorageInternalError, DatabaseError) as error:
        cause = error.__cause__ if isinstance(error.__cause__, DatabaseError) else error
        raise StorageError(f"{where}: cannot read the study: {_reason(cause)}") from None
    except json.JSONDecodeError as error:  # Optuna reads the journal on every query
        raise StorageError(f"{where}: damaged study journal ({error}); {_journal_advice()}") from None


@contextlib.contextmanager
def _held(lock: KernelFileLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


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
    import shlex

    target = str(study_dir / JOURNAL_FILE) if storage == JOURNAL else public_url(storage)
    return shlex.join(["optuna-dashboard", target])


def _reason(error: BaseException) -> str:
    """The first line of ``error``: the driver's own (``.orig``) inside SQLAlchemy's."""
    return first_line(getattr(error, "orig", None) or error)
