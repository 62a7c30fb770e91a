"""Rendering shared by the subcommands: data on stdout, everything for humans on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console

from dltool._io import json_safe

# Progress, tables and logs; rich honours NO_COLOR and plain (non-terminal) stderr by itself.
stderr = Console(stderr=True, highlight=False)


def emit_json(document: Any) -> None:
    """A JSON document on stdout (never through rich: no markup, no wrapping)."""
    sys.stdout.write(json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def emit_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


T = TypeVar("T")


@contextmanager
def stderr_observer(
    quiet: bool,
    silent: Callable[[], T],
    plain: Callable[[], T],
    live: Callable[[], T],
    display: Callable[[T], Any] = lambda observer: observer.bar,  # type: ignore[attr-defined]
) -> Iterator[T]:
    """The observer that suits stderr: ``silent()`` with --quiet, ``plain()`` lines off a
    terminal, else ``live()`` — whose rich display (its ``bar`` unless ``display`` says
    otherwise) runs for the duration."""
    if quiet:
        yield silent()
    elif not stderr.is_terminal:
        yield plain()
    else:
        observer = live()
        with display(observer):
            yield observer
