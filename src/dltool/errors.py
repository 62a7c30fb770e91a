"""The errors dltool raises for its users; the CLI turns each into one line and an exit code."""

from __future__ import annotations

import difflib
import errno
import os
import re
import reprlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# A setting named in a message (see ``option``): keyword, value and the Python spelling,
# between control characters no path, value or name in a message holds.
_OPEN, _SEP, _CLOSE = "\x02", "\x1f", "\x03"
_OPTION = re.compile(f"{_OPEN}([^{_SEP}]*){_SEP}([^{_SEP}]*){_SEP}([^{_CLOSE}]*){_CLOSE}")
Spelling = Callable[[str, str, str], str]  # (keyword, value, python spelling) -> text


# A setting the user passes, named in an error message by the library's own keyword (and
# ``value``, if any): ``str(error)`` spells it for Python (``keyword=repr(value)``, or ``python``
# where the keyword is no argument: ``dltool.resume(RUN)``), a command as its flag
# (``DltoolError.spelled``), so the library never writes a flag.
def option(keyword: str, value: Any = None, python: str = "") -> str:
    """``keyword`` (and ``value``) marked in a message, for each reader to spell."""
    given = "" if value is None or value is True else str(value)  # a switch: the flag alone
    python = python or f"{keyword}={'...' if value is None else repr(value)}"
    return f"{_OPEN}{keyword}{_SEP}{given}{_SEP}{python}{_CLOSE}"


def python_spelling(keyword: str, value: str, python: str) -> str:
    """How the Python API names a setting: ``name='x'``, ``force=True``."""
    return python


class DltoolError(Exception):
    """A failure the user can act on: reported as one line, exit code 1. Settings in its
    message are ``option``s, spelled for Python by ``str`` and for a command by ``spelled``."""

    exit_code = 1

    def __str__(self) -> str:
        return self.spelled(python_spelling)

    def spelled(self, spelling: Spelling) -> str:
        """The message with each ``option`` spelled by ``spelling``."""
        return _OPTION.sub(lambda match: spelling(*match.groups()), self.unspelled)

    @property
    def unspelled(self) -> str:
        """The message with its ``option``s left for the reader's spelling: what another
        error's message quotes it as (an f-string would spell them for Python)."""
        return super().__str__()


class UsageError(DltoolError):
    """Bad input on the command line or in a config file: exit code 2."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A name that is not in a registry (or not an allowed key)."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str | None = None, meant: Iterable[str] = ()):
        """``meant``: names that ``name`` is another spelling of, suggested instead of the close ones."""
        self.kind, self.name, self.known, self.meant = kind, name, sorted(known), sorted(meant)
        message = f"unknown {kind} {name!r}"
        message += _either(self.meant) or suggest(name, self.known)
        if hint:
            message += f" (see: {hint})"
        super().__init__(message)

    def with_hint(self, hint: str) -> UnknownNameError:
        """The same error with another ``hint`` (from a command that has an option for it)."""
        return UnknownNameError(self.kind, self.name, self.known, hint, self.meant)


class ConfigError(UsageError):
    """A config value or key that fails validation."""


class DeviceError(UsageError):
    """A device or precision that this machine cannot provide."""


class DatasetError(DltoolError):
    """A dataset that cannot be found, read or split."""


class CheckpointError(DltoolError):
    """A run directory or checkpoint that is missing, corrupt or foreign."""


class MissingPathError(UsageError, CheckpointError):
    """A path named on the command line (or to the API) that does not exist: a usage error
    (exit 2), with the entries beside it of a similar name. A ``CheckpointError`` as well:
    that is what a missing run dir or weights file raised before."""

    def __init__(self, path: str | Path, what: str):
        self.path = Path(path)
        super().__init__(f"{path}: no such {what}{similar_paths(self.path)}")


def similar_paths(path: Path) -> str:
    """'; did you mean 'runs/digits-mlp-2'?' for the entries of ``path``'s folder whose names
    are closest to its name (a typo'd run name), or '' when none is close."""
    try:
        names = [n for n in os.listdir(path.parent) if not n.startswith(".") or path.name.startswith(".")]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, sorted(names), n=3, cutoff=0.6)
    return "; did you mean " + " or ".join(repr(str(path.parent / c)) for c in close) + "?" if close else ""


class ReadOnlyError(DltoolError):
    """A write refused by a read-only filesystem (EROFS) or for want of permission (EACCES,
    EPERM), naming the nearest folder of the path refused (a temporary's name says nothing)
    and ``hint``, where to write instead."""

    def __init__(self, error: OSError, hint: str = ""):
        self.refused, self.hint = error, hint
        folder = nearest_folder(Path(error.filename or "."))
        super().__init__(f"{folder}: cannot write there ({os_reason(error)})" + (f"; {hint}" if hint else ""))

    @classmethod
    def of(cls, error: BaseException, hint: str) -> ReadOnlyError:
        """``error`` (for which ``caused`` holds) as one with ``hint``."""
        refused = error.refused if isinstance(error, ReadOnlyError) else error
        assert isinstance(refused, OSError)
        return cls(refused, hint)

    @staticmethod
    def caused(error: BaseException) -> bool:
        """Whether ``error`` is a write refused, with its path (or a ``ReadOnlyError`` of one
        that leaves the next step to the caller: no ``hint``)."""
        if isinstance(error, ReadOnlyError):
            return not error.hint
        if not isinstance(error, OSError) or not error.filename:
            return False
        return error.errno == errno.EROFS or (error.errno in DENIED and _refused_write(Path(error.filename)))


# A permission refused: to read, or to write (``ReadOnlyError``), told apart by the path.
DENIED = (errno.EACCES, errno.EPERM)


def _refused_write(path: Path) -> bool:
    """Whether a permission error on ``path`` refused a write: to make it in a folder this
    user can reach, or to change a file it can read."""
    if os.path.lexists(path):
        return os.access(path, os.R_OK) and not os.access(path, os.W_OK)
    return os.access(nearest_folder(path), os.X_OK)


class UnreadableError(DltoolError):
    """A file or folder this user has no permission to read."""

    def __init__(self, error: OSError):
        super().__init__(
            f"{error.filename}: cannot read it (permission denied); "
            "give this user read access (chmod, chown) or copy it where it can read it"
        )

    @staticmethod
    def caused(error: BaseException) -> bool:
        """Whether ``error`` is a read refused for want of permission, with its path."""
        return isinstance(error, OSError) and error.errno in DENIED and bool(error.filename)


def os_reason(error: OSError) -> str:
    """Why the OS refused, in a message's words: 'permission denied', 'read-only file system'."""
    return os.strerror(error.errno).lower() if error.errno else str(error)


def nearest_folder(path: Path) -> Path:
    """The nearest folder at or above ``path`` that exists (and that this user can see)."""
    while not os.path.isdir(path) and path != path.parent:
        path = path.parent
    return path


class DiskFullError(DltoolError):
    """A write that failed because its filesystem is full (or over quota); ``path`` names the
    file, ``device`` the mount point it lies on. Callers may add what is still intact."""

    def __init__(self, path: str | Path, device: str | Path, note: str = ""):
        self.path, self.device = Path(path), Path(device)
        message = f"no space left on {device} while writing {path}"
        super().__init__(message + (f"; {note}" if note else ""))

    def with_note(self, note: str) -> DiskFullError:
        """The same error, saying what survived (e.g. the last good checkpoint)."""
        return DiskFullError(self.path, self.device, note)


class TrainingDivergedError(DltoolError):
    """A run whose loss stopped being a finite number: nothing more can be learned from it."""


class RunInUseError(DltoolError):
    """A run directory that another process is training right now."""


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict = 3, 6, 6, 6
    short.maxstring = short.maxother = short.maxlong = 60
    return short


_SHORT = _short_repr()
QUOTE_CHARS = 100


def quote(value: Any) -> str:
    """``repr(value)`` cut to a line: what every error that shows a value uses. reprlib stops
    at a few items and levels, so a huge or alias-bombed value is never expanded to show it."""
    text = _SHORT.repr(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """'; did you mean X?' for the names closest to ``name``, or '' when none is close."""
    return _either(difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6))


def _either(names: list[str]) -> str:
    return "; did you mean " + " or ".join(repr(n) for n in names) + "?" if names else ""


def suggest(name: str, known: Iterable[str]) -> str:
    """``did_you_mean``, or else the list of known names when it is short."""
    known = sorted(known)
    if hint := did_you_mean(name, known):
        return hint
    return "; expected one of: " + ", ".join(known) if len(known) <= 12 else ""


class ExportError(DltoolError):
    """A model that cannot be exported, or whose exported file does not reproduce it."""


def first_line(error: BaseException) -> str:
    """The first non-blank line of ``error``'s message (third-party errors run to pages), or
    its type's name when the message is empty."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class TrackingError(DltoolError):
    """A tracker could not record the run (an MLflow server or store that refuses it)."""


class TrackerTimeout(TrackingError):
    """A tracker whose server did not answer in time: the run goes on without it."""


class StorageError(DltoolError):
    """A tuning study's storage that cannot be opened or read, or that lost trials its study dir records."""
