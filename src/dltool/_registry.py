"""One small registry type for datasets, models, optimizers, schedulers and losses.

An entry's metadata (name, description, parameter schema) is eager and cheap; its
implementation is a ``"module:attr"`` target imported on first build, so listing and
``--help`` never import torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from dltool.errors import UnknownNameError
from dltool.params import Params

P = TypeVar("P", bound=Params)
# How a family's entry is listed: `torchvision:ARCH`.
FAMILY_ARCH = "ARCH"


def import_target(target: str) -> Any:
    """What a lazy ``"module:attr"`` target names, its module imported."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class Entry(Generic[P]):
    """One registered builder: ``params`` is the validated schema of its keyword arguments."""

    name: str
    target: str
    params: type[P]
    description: str
    family: bool = False  # one entry for every PREFIX:ARCH name

    def load(self) -> Callable[..., Any]:
        """Import and return the builder (this is where torch gets imported)."""
        builder: Callable[..., Any] = import_target(self.target)
        return builder

    def defaults(self) -> dict[str, Any]:
        """The config keys this entry takes (all but ``name``), with their defaults."""
        return {k: v for k, v in self.params.defaults().items() if k != "name"}


class Resolver(Protocol[P]):
    """Entries a registry finds beyond its own: named on demand (``entry``) and listed."""

    def entry(self, name: str) -> Entry[P] | None: ...
    def listed(self) -> list[Entry[P]]: ...


class Registry(Generic[P]):
    """Named entries of one kind, with "did you mean" lookups and listing."""

    def __init__(self, kind: str, base: type[P], *, see: str | None = None):
        """``see``: where a user finds the names, for the unknown-name error (default: ``dltool list KIND``)."""
        self.kind = kind
        self.base = base
        self.see = see or f"dltool list {kind}"
        self._entries: dict[str, Entry[P]] = {}
        self._resolvers: list[Resolver[P]] = []
        self._spellings: list[Callable[[str], list[str]]] = []

    def add_resolver(self, resolver: Resolver[P]) -> None:
        """Names outside the registered entries and families that ``resolver`` knows (asked last)."""
        self._resolvers.append(resolver)

    def add_spelling(self, names_meant: Callable[[str], list[str]]) -> None:
        """``names_meant(name)``: the entries an unknown ``name`` is another spelling of (a zoo
        architecture without its family's prefix), which its error suggests first."""
        self._spellings.append(names_meant)

    def register(self, name: str, target: str) -> Callable[[type[P]], type[P]]:
        """Class decorator: register ``params`` (a Params subclass) as entry ``name``.

        The class docstring's first line is the entry's description; the builder at
        ``target`` is called with the class's fields (less the common ones) as keywords.
        """

        def decorate(params: type[P]) -> type[P]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if not issubclass(params, self.base):
                raise TypeError(f"{params.__name__} must subclass {self.base.__name__}")
            description = (params.__doc__ or "").strip().splitlines()[0]
            self._entries[name] = Entry(name, target, params, description)
            return params

        return decorate

    def register_family(self, prefix: str, target: str, description: str) -> Callable[[type[P]], type[P]]:
        """Class decorator: one entry for every ``PREFIX:ARCH`` name (a zoo family).

        It is listed as ``PREFIX:ARCH``; ``get`` returns it, named as asked, for any name
        with this prefix: the architecture is checked by ``params`` (the family knows its own).
        """

        def decorate(params: type[P]) -> type[P]:
            name = f"{prefix}:{FAMILY_ARCH}"
            if name in self._entries:
                raise ValueError(f"{self.kind} family {prefix!r} is already registered")
            self._entries[name] = Entry(name, target, params, description, family=True)
            return params

        return decorate

    def get(self, name: str) -> Entry[P]:
        """The entry ``name``: its own, else its family's (``PREFIX:…``), else a resolver's."""
        if name in self._entries:
            return self._entries[name]
        prefix, colon, _ = name.partition(":")
        if colon and (family := self._entries.get(f"{prefix}:{FAMILY_ARCH}")):
            return replace(family, name=name)
        for resolver in self._resolvers:
            if entry := resolver.entry(name):
                return entry
        meant = [meant for names_meant in self._spellings for meant in names_meant(name)]
        raise UnknownNameError(self.kind.rstrip("s"), name, self.names(), hint=self.see, meant=meant)

    def build(self, spec: P, /, **context: Any) -> Any:
        """Call the builder named by ``spec.name`` with its keywords plus ``context``."""
        return self.get(spec.name).load()(**spec.builder_kwargs(), **context)

    def names(self) -> list[str]:
        return [entry.name for entry in self]

    def __contains__(self, name: object) -> bool:
        """Whether ``get(name)`` finds an entry (any ``PREFIX:…`` of a family counts)."""
        if not isinstance(name, str):
            return False
        prefix, colon, _ = name.partition(":")
        if name in self._entries or bool(colon) and f"{prefix}:{FAMILY_ARCH}" in self._entries:
            return True
        return any(resolver.entry(name) for resolver in self._resolvers)

    def __iter__(self) -> Iterator[Entry[P]]:
        yield from self._entries.values()
        for resolver in self._resolvers:
            yield from resolver.listed()

    def __len__(self) -> int:
        return sum(1 for _ in self)
