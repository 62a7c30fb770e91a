"""Every registry by kind, and the listing ``dltool list`` shows. Never imports torch."""

from __future__ import annotations

import fnmatch
from typing import Any

from dltool._io import json_safe
from dltool._registry import Registry
from dltool.config.recipes import list_recipes
from dltool.data import datasets
from dltool.errors import UnknownNameError
from dltool.losses import losses
from dltool.models import models
from dltool.optim import optimizers, schedulers

REGISTRIES: dict[str, Registry] = {
    "datasets": datasets,
    "models": models,
    "optimizers": optimizers,
    "schedulers": schedulers,
    "losses": losses,
}
KINDS = [*REGISTRIES, "recipes"]


def listing(kind: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{kind: [{name, description, params}]}`` for one kind or all of them."""
    if kind is not None and kind not in KINDS:
        raise UnknownNameError("kind", kind, KINDS)
    kinds = [kind] if kind else KINDS
    return {k: _recipes() if k == "recipes" else _entries(REGISTRIES[k]) for k in kinds}


def zoo_listing(family: str, pattern: str | None = None) -> dict[str, Any]:
    """The architectures of zoo ``family`` (``torchvision``, ``timm``) whose name holds ``pattern``
    (or matches it, as a glob with ``*?[``), each with its pretrained weights tags. Imports torch."""
    from dltool.models.zoo import FAMILIES, registered_architectures

    if family not in FAMILIES:
        raise UnknownNameError("zoo family", family, FAMILIES, hint="dltool list models")
    impl = FAMILIES[family].impl()
    tags = impl.all_weight_tags()
    # The family's classifiers, then the networks the registry names one by one (segmentation).
    every = [*impl.architectures(), *registered_architectures(family)]
    names = [arch for arch in every if _matches(arch, pattern)]
    return {
        "family": family,
        "models": [
            {"name": f"{family}:{arch}", "pretrained": tags.get(arch) or impl.weight_tags(arch)} for arch in names
        ],
    }


def _matches(name: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    return fnmatch.fnmatchcase(name, pattern) if any(c in pattern for c in "*?[") else pattern in name


def _entries(registry: Registry) -> list[dict[str, Any]]:
    return [
        {
            "name": e.name,
            "description": e.description,
            "params": json_safe(e.defaults()),
            **({"info": e.params.info} if getattr(e.params, "info", "") else {}),
        }
        for e in registry
    ]


def _recipes() -> list[dict[str, Any]]:
    return [{"name": r.name, "description": r.description, "path": str(r.path)} for r in list_recipes()]
