"""Your own model: ``model.name`` is ``package.module:Class``, ``path/to/file.py:Class``, or a
name that an installed package registers in the entry point group ``dltool.models``
(``[project.entry-points."dltool.models"] mynet = "my_pkg.models:MyNet"``).

The class is an ``nn.Module``; the config's other ``model`` keys are its keyword arguments,
checked against its signature when the config is validated, and dltool passes
``num_classes``, ``in_channels`` and ``in_shape`` (C, H, W) from the data to the parameters of
those names that it has. A ``.py`` path is recorded absolute. This module imports no torch of
its own; the class's module does when it is imported (validation imports it).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ConfigDict, field_validator, model_validator

from dltool._registry import Entry
from dltool.errors import ConfigError, did_you_mean
from dltool.models import ModelParams
from dltool.models.zoo import FAMILIES

ENTRY_POINT_GROUP = "dltool.models"
BUILDER = "dltool.models.custom:build_custom"
# What dltool fills in from the data when the class's signature names it.
CONTEXT = ("num_classes", "in_channels", "in_shape")
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_CLASS_NAME = re.compile(r"[A-Za-z_]\w*")


def class_reference(name: str) -> str | None:
    """``module:Class`` or ``file.py:Class`` of a model name (an entry point's target for its
    name); None when ``name`` names no class."""
    source, colon, attr = name.rpartition(":")
    if colon and _CLASS_NAME.fullmatch(attr) and (source.endswith(".py") or _MODULE_NAME.fullmatch(source)):
        return name
    found = entry_points(group=ENTRY_POINT_GROUP).select(name=name)
    return next(iter(found)).value if found else None


def load_class(reference: str) -> type:
    """The class ``module:Class`` or ``file.py:Class`` names, imported; ``ConfigError`` naming
    ``model.name`` when it cannot be."""
    source, _, attr = reference.rpartition(":")
    try:
        module = _import_file(Path(source)) if source.endswith(".py") else importlib.import_module(source)
    except ConfigError:
        raise
    except Exception as error:  # the user's module may raise anything while it is imported
        family = did_you_mean(source, FAMILIES)  # a zoo prefix mistyped: timn:resnet18
        raise ConfigError(
            f"model.name: cannot import {source} ({type(error).__name__}: {error}){family}; install its package "
            "or put it on PYTHONPATH"
        ) from None
    found = getattr(module, attr, None)
    if not isinstance(found, type):
        classes = [k for k, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__]
        raise ConfigError(f"model.name: {source} has no class {attr!r}{did_you_mean(attr, classes)}")
    return found


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"model.name: no such file: {path}")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"dltool_user_models.{path.stem}_{digest}"  # one module per file, reused
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has a loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def keywords(model_class: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """The keyword parameters of ``model_class(...)``, and whether it takes ``**kwargs``."""
    parameters = inspect.signature(model_class).parameters.values()
    named = {p.name: p for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return named, any(p.kind is p.VAR_KEYWORD for p in parameters)


class CustomParams(ModelParams):
    """Your own nn.Module class: its keyword arguments are the other model keys."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    # The builder needs `name`: it names the class.
    common: ClassVar[frozenset[str]] = ModelParams.common - {"name"}

    @classmethod
    def accepted_keys(cls, name: str) -> set[str]:
        """The shared model keys and the keywords the class names."""
        named, _ = keywords(load_class(class_reference(name) or name))
        return set(cls.model_fields) | set(named)

    @field_validator("name")
    @classmethod
    def _importable(cls, name: str) -> str:
        reference = class_reference(name)
        if reference is None:  # only a resolved name reaches these params
            raise ValueError(f"{name!r} names no class (package.module:Class or file.py:Class)")
        source, _, attr = reference.rpartition(":")
        if reference == name and source.endswith(".py"):
            name = f"{Path(source).expanduser().resolve()}:{attr}"
        _module_class(load_class(class_reference(name) or name))
        return name

    @model_validator(mode="after")
    def _signature_takes_the_keys(self) -> CustomParams:
        named, any_keyword = keywords(load_class(class_reference(self.name) or self.name))
        given = dict(self.model_extra or {})
        for key in given:
            if key in CONTEXT or (key not in named and not any_keyword):
                takes = ", ".join(k for k in named if k not in CONTEXT) or "no keywords"
                why = "dltool sets it from the data" if key in CONTEXT else "not a keyword of the class"
                raise ValueError(f"{key!r}: {why}{did_you_mean(key, named)} ({self.name} takes: {takes})")
        missing = [k for k, p in named.items() if p.default is p.empty and k not in given and k not in CONTEXT]
        if missing:
            raise ValueError(f"{self.name} needs {', '.join(missing)} (set model.{missing[0]})")
        return self


def _module_class(model_class: type) -> None:
    from torch import nn

    if not issubclass(model_class, nn.Module):
        raise ValueError(f"{model_class.__module__}.{model_class.__qualname__} is not a torch.nn.Module")


def build_custom(*, name: str, in_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> Any:
    """The user's model, with the data's context where its signature asks for it."""
    model_class = load_class(class_reference(name) or name)
    named, _ = keywords(model_class)
    context = {"num_classes": num_classes, "in_channels": in_shape[0], "in_shape": tuple(in_shape)}
    return model_class(**kwargs, **{k: v for k, v in context.items() if k in named})


@dataclass(frozen=True)
class SourceRecord:
    """Where a custom model's class came from, for the run's records."""

    reference: str
    file: str | None
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.reference, "file": self.file, "sha256": self.sha256}


def source_record(params: ModelParams) -> SourceRecord | None:
    """The class, its module's file and that file's SHA-256 of a custom model; None for the
    catalogue's own models."""
    if not isinstance(params, CustomParams):
        return None
    reference = class_reference(params.name) or params.name
    model_class = load_class(reference)
    file = inspect.getsourcefile(model_class)
    digest = hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else None
    return SourceRecord(reference, file, digest)


class CustomModels:
    """The models registry's resolver for class references and entry point names."""

    def entry(self, name: str) -> Entry[ModelParams] | None:
        if class_reference(name) is None:
            return None
        return Entry(name, BUILDER, CustomParams, "your own nn.Module class")

    def listed(self) -> list[Entry[ModelParams]]:
        return [
            Entry(ep.name, BUILDER, CustomParams, f"{ep.value} (entry point of {_distribution(ep)})")
            for ep in entry_points(group=ENTRY_POINT_GROUP)
        ]


def _distribution(ep: Any) -> str:
    return ep.dist.name if getattr(ep, "dist", None) is not None else "an installed package"
