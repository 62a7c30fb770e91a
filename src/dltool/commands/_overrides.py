"""The config-override flags that ``train`` and ``tune`` share, defined once.

``@with_override_flags`` adds them to a command's signature (typer reads the signature) and
hands the command one ``Overrides`` value instead of a dozen parameters.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from dltool.commands import _complete
from dltool.errors import UnknownNameError

Opt = typer.Option


@dataclass(frozen=True)
class Overrides:
    """``--set`` strings (in order) and flag values by dotted key (flags given only)."""

    sets: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)


# (parameter name, dotted key, type, help): one flag per config key, the highest layer.
FLAGS: list[tuple[str, str, Any, str]] = [
    ("lr", "optimizer.lr", float, "optimizer.lr"),
    ("epochs", "train.epochs", int, "train.epochs"),
    ("batch_size", "train.batch_size", int, "train.batch_size"),
    ("weight_decay", "optimizer.weight_decay", float, "optimizer.weight_decay"),
    ("optimizer", "optimizer.name", str, "optimizer.name (dltool list optimizers)"),
    ("model", "model.name", str, "model.name (dltool list models)"),
    ("dataset", "data.name", str, "data.name (dltool list datasets)"),
    ("root", "data.root", str, "data.root: where datasets are stored"),
    ("device", "train.device", str, "train.device: auto, cpu, cuda, cuda:N or mps"),
    ("amp", "train.amp", str, "train.amp: auto, bf16, fp16 or off"),
    ("seed", "train.seed", int, "train.seed"),
    ("compile", "train.compile", bool, "train.compile: torch.compile the model"),
    ("limit_batches", "train.limit_batches", int, "train.limit_batches: for quick tries"),
    ("tensorboard", "train.tensorboard", bool, "train.tensorboard: event files in RUN/tensorboard/"),
    ("init_from", "model.init_from", str, "model.init_from: start from a run's (or weights file's) matching tensors"),
]
# Flags whose values are registry names complete on TAB.
COMPLETERS = {
    "optimizer": _complete.registry("optimizers"),
    "model": _complete.registry("models"),
    "dataset": _complete.registry("datasets"),
}
SET_HELP = "Any config key: --set model.depth=3 (repeatable)."
PANEL = "Config overrides (highest first: flags, then --set, then the recipe)"


def with_override_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` the override flags and ``--set`` (in a help panel of their own).

    ``command`` declares a keyword ``overrides: Overrides`` and receives them there.
    """
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "overrides"]
    # Fresh OptionInfo objects per command: typer may keep state on them.
    added = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                kind | None,
                Opt(_flag_name(name, kind), help=text, rich_help_panel=PANEL, autocompletion=COMPLETERS.get(name)),
            ],
        )
        for name, _, kind, text in FLAGS
    ]
    added.append(
        inspect.Parameter(
            "set_",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[list[str] | None, Opt("--set", help=SET_HELP, rich_help_panel=PANEL)],
        )
    )
    parameters = [*own, *added]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = {key: kwargs.pop(name) for name, key, _, _ in FLAGS}
        overrides = Overrides(
            sets=list(kwargs.pop("set_") or []), flags={k: v for k, v in flags.items() if v is not None}
        )
        with _dataset_path_hint():
            return command(*args, **kwargs, overrides=overrides)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


# An unknown dataset's hint where --dataset is a flag (the library's names no option).
DATASET_HINT = "dltool list datasets, or --dataset PATH for a folder of your own"


@contextmanager
def _dataset_path_hint() -> Iterator[None]:
    try:
        yield
    except UnknownNameError as error:
        if error.kind != "dataset":
            raise
        raise error.with_hint(DATASET_HINT) from None


def _flag_name(name: str, kind: Any) -> str:
    """``--batch-size``; a switch also has its negation (``--compile/--no-compile``), which
    turns off what a recipe turned on."""
    flag = name.replace("_", "-")
    return f"--{flag}/--no-{flag}" if kind is bool else f"--{flag}"
