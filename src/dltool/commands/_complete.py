"""Shell completion of names: recipes, datasets, models, optimizers, list kinds.

Typer calls these on every TAB (``dltool --install-completion`` sets that up), so they read
only the registries' metadata and the recipe files' names: no torch. A word that matches no
name (a path such as ``./my.yaml`` or ``runs/``) gets no suggestion, which hands it to the
shell's own file completion.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable

# (value, help): zsh and fish show the help beside the value; bash shows values only.
Completions = list[tuple[str, str]]


def recipes(incomplete: str) -> Completions:
    """Recipe names, each with the start of its header comment."""
    from dltool.config.recipes import list_recipes

    return _starting_with(incomplete, ((r.name, r.description.removeprefix(f"{r.name}: ")) for r in list_recipes()))


def registry(kind: str) -> Callable[[str], Completions]:
    """A completer of the names in registry ``kind`` (``dltool list`` kinds: datasets, models, ...)."""

    def complete(incomplete: str) -> Completions:
        from dltool.catalog import REGISTRIES

        return _starting_with(incomplete, ((e.name, e.description) for e in REGISTRIES[kind]))

    return complete


def downloadable(incomplete: str) -> Completions:
    """The datasets ``dltool download`` fetches (not the embedded ones)."""
    from dltool.data.sources import GENERATED, SOURCES

    return [item for item in registry("datasets")(incomplete) if item[0] in SOURCES or item[0] in GENERATED]


def list_kinds(incomplete: str) -> Completions:
    from dltool.catalog import KINDS

    return _starting_with(incomplete, ((kind, "") for kind in KINDS))


def _starting_with(incomplete: str, items: Iterable[tuple[str, str]]) -> Completions:
    return [(name, textwrap.shorten(text, 70, placeholder=" …")) for name, text in items if name.startswith(incomplete)]
