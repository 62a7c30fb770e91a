"""Rendering shared by the subcommands: data on stdout, everything for humans on stderr."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console
from rich.text import Text

from dltool._io import json_text
from dltool.errors import DltoolError

# Progress, tables and logs. rich reads the colour conventions itself: NO_COLOR (no colour,
# whatever else is set), FORCE_COLOR (colour into a pipe or a file, as CI logs want), TERM=dumb.
# No markup: what is printed holds users' names (a folder "Photos [2019]", a class "[old] cats"),
# whose brackets rich took for styles and dropped; styles are given as rich Text.
stderr = Console(stderr=True, highlight=False, markup=False)
# Terminals that cannot move the cursor (Emacs shells, some CI runners) call themselves these.
DUMB_TERMS = ("dumb", "unknown")


def animates() -> bool:
    """Whether stderr can show live displays: a real terminal that moves the cursor. Not a
    pipe or a file even when FORCE_COLOR asks for colour there (rich then treats the stream
    as a terminal), and not under TERM=dumb."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        on_terminal = bool(isatty and isatty())
    except ValueError:  # a closed stream
        on_terminal = False
    return on_terminal and os.environ.get("TERM", "").lower() not in DUMB_TERMS


# Library keywords whose flag is not ``--keyword`` (underscores become dashes), and library
# functions named as a next step, by the command that does the same.
FLAGS = {"overrides": "--set", "evaluate": "dltool eval", "summary": "dltool summary"}


def flag_spelling(keyword: str, value: str, python: str) -> str:
    """How the command line names a setting that an error's message names (``errors.option``)."""
    flag = FLAGS.get(keyword, "--" + keyword.replace("_", "-"))
    return f"{flag} {value}" if value else flag


def error_message(error: BaseException) -> str:
    """The one line an error is reported as, its settings spelled as flags."""
    message = error.spelled(flag_spelling) if isinstance(error, DltoolError) else str(error)
    return message or type(error).__name__


def report_error(label: str, message: str) -> None:
    """``label: message`` as one line on stderr, the label in red where colour is on."""
    stderr.print(Text.assemble((label + ":", "bold red"), " ", message), soft_wrap=True)


def data_in_utf8() -> None:
    """stdout in UTF-8 whatever the locale: it carries data for files and pipes (names such as
    "chiens é"), and an ASCII one (LC_ALL=C without Python's UTF-8 mode) failed on the first
    such row; a name the locale could not decode goes back out as the bytes it came in as.
    stderr, for people, shows what its encoding cannot as escapes."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8", errors="surrogateescape")
    if isinstance(sys.stderr, io.TextIOWrapper):
        sys.stderr.reconfigure(errors="backslashreplace")


def emit_json(document: Any) -> None:
    """A JSON document on stdout (never through rich: no markup, no wrapping)."""
    sys.stdout.write(json_text(document, indent=2) + "\n")
    sys.stdout.flush()


def emit_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    """A line for people on stderr, one line however narrow stderr is (a pipe: rich would cut
    it at 80 columns)."""
    stderr.print(text, soft_wrap=True)


@dataclass
class Tally:
    """What a command that reads many inputs made of them: rows written, inputs skipped (each
    named on stderr as it is met)."""

    read: int = 0
    unreadable: int = 0

    def skip(self, path: str, reason: str) -> None:
        self.unreadable += 1
        say(f"skipped {path}: {reason}")


T = TypeVar("T")


@contextmanager
def stderr_observer(
    quiet: bool,
    silent: Callable[[], T],
    plain: Callable[[], T],
    live: Callable[[], T],
    display: Callable[[T], Any] = lambda observer: observer.bar,  # type: ignore[attr-defined]
) -> Iterator[T]:
    """The observer that suits stderr: ``silent()`` with --quiet, ``plain()`` lines where
    nothing may animate (see ``animates``), else ``live()`` — whose rich display (its ``bar``
    unless ``display`` says otherwise) runs for the duration."""
    if quiet:
        yield silent()
    elif not animates():
        yield plain()
    else:
        observer = live()
        with display(observer):
            yield observer
