"""Optional dependencies (the extras in pyproject.toml): import one, or stop with a usage
error (exit 2) that gives the line installing it."""

from __future__ import annotations

import importlib
from types import ModuleType

from dltool.errors import UsageError


def install_line(extra: str) -> str:
    return f"pip install 'dltool[{extra}]'"


def require(module: str, extra: str, what: str) -> ModuleType:
    """``module``, which ``what`` (a setting or option, for the message) needs, from ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{what}: {module} is not installed; {install_line(extra)}") from None
