"""``dltool list``: what the registries and recipes hold."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dltool.commands import _complete
from dltool.commands._options import JsonDocument
from dltool.commands._output import emit_json, emit_line
from dltool.errors import UsageError


def list_(
    kind: Annotated[
        str | None,
        typer.Argument(
            help="datasets, models, optimizers, schedulers, losses or recipes; all if left out.",
            autocompletion=_complete.list_kinds,
        ),
    ] = None,
    pattern: Annotated[
        str | None,
        typer.Argument(
            metavar="[FILTER]", help="With --zoo: architectures whose name holds FILTER (or matches a *? glob)."
        ),
    ] = None,
    zoo: Annotated[
        str | None, typer.Option("--zoo", help="List the architectures of a zoo family: torchvision or timm.")
    ] = None,
    as_json: JsonDocument = False,
) -> None:
    """List datasets, models, optimizers, schedulers, losses and recipes, with their parameters.

    Example: dltool list models --json | jq -r '.models[].name'

    Example: dltool list models --zoo timm 'convnext*'
    """
    from dltool.catalog import KINDS, listing, zoo_listing

    if zoo is not None and pattern is None and kind not in (None, *KINDS):
        kind, pattern = "models", kind  # `dltool list --zoo timm 'convnext*'`: --zoo says models
    if zoo is None and pattern is not None:
        raise UsageError(f"FILTER {pattern!r} filters the architectures of a zoo family: add --zoo torchvision|timm")
    if zoo is not None and kind not in (None, "models"):
        raise UsageError(f"--zoo lists models, not {kind}")
    zoo_found = zoo_listing(zoo, pattern) if zoo is not None else None
    found = listing(kind) if zoo_found is None else {"models": _zoo_entries(zoo_found)}
    if as_json:
        emit_json(found if zoo_found is None else zoo_found)
    elif sys.stdout.isatty():
        _print_tables(found)
    else:
        for name, entries in found.items():
            for entry in entries:
                emit_line("\t".join([name, entry["name"], entry["description"], _params(entry)]))


def _zoo_entries(listed: dict[str, Any]) -> list[dict[str, Any]]:
    """Zoo architectures as listing entries: the description names their weights tags."""
    return [{**m, "description": "pretrained: " + (", ".join(m["pretrained"]) or "none")} for m in listed["models"]]


def _print_tables(found: dict[str, list[dict[str, Any]]]) -> None:
    console = Console(highlight=False)
    for name, entries in found.items():
        table = Table(title=name, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
        for entry in entries:
            table.add_row(f"[bold]{entry['name']}[/]", entry["description"], f"[dim]{_params(entry)}[/]")
        console.print(table)


def _params(entry: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in entry.get("params", {}).items())
