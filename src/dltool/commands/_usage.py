"""Usage errors that other tools' habits cause, with dltool's way of saying the same thing.

Ultralytics and Hydra take ``epochs=5 model.depth=3`` as arguments, Lightning CLI
``--model.depth 3``, timm's scripts and Lightning ``--config FILE``: click refuses each as an
unexpected argument or an unknown option, without saying what dltool takes instead.
"""

from __future__ import annotations

import re
from typing import Any

ASSIGNMENT = re.compile(r"(?P<key>[A-Za-z_][\w-]*(?:\.[\w-]+)*)=(?P<value>.*)")
EXTRA_ARGUMENTS = re.compile(r"unexpected extra arguments?(?:\(s\))? \((?P<args>.*)\)")


def add_hint(error: Any) -> None:
    """Add to a usage error (click's, or typer's own copy of click's: duck-typed) how dltool
    spells what was typed, in place; nothing for other errors and commands without ``--set``."""
    ctx, message = getattr(error, "ctx", None), getattr(error, "message", None)
    options = _options(ctx.command) if ctx is not None else set()
    if not isinstance(message, str) or "--set" not in options:
        return
    option = getattr(error, "option_name", None)  # an unknown option
    hint = _option_hint(option) if isinstance(option, str) else _arguments_hint(message, options)
    if hint:
        error.message = f"{message}; {hint}"
        error.possibilities = None  # "(Possible options: --model)" for --model.depth misleads


def _options(command: Any) -> set[str]:
    return {name for param in command.params for name in getattr(param, "opts", [])}


def _option_hint(name: str) -> str | None:
    if name == "--config":
        return "a config file is given as the recipe: dltool COMMAND FILE.yaml"
    if "." in name:
        return f"config keys are set with --set: --set {name.lstrip('-')}=VALUE"
    return None


def _arguments_hint(message: str, options: set[str]) -> str | None:
    """``--set model.depth=3`` for ``model.depth=3``, ``--epochs 5`` for ``epochs=5``."""
    extra = EXTRA_ARGUMENTS.search(message)
    assigned = [m for arg in (extra["args"].split() if extra else []) if (m := ASSIGNMENT.fullmatch(arg))]
    spelled = [_spelling(m["key"], m["value"], options) for m in assigned]
    return f"dltool takes them as options: {' '.join(spelled)}" if spelled else None


def _spelling(key: str, value: str, options: set[str]) -> str:
    flag = "--" + key.replace("_", "-")
    return f"{flag} {value}" if "." not in key and flag in options else f"--set {key}={value}"
