"""Rendering shared by the subcommands: data on stdout, everything for humans on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

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
