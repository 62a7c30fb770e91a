"""The pruners ``dltool tune --pruner`` offers: one registry entry each (as models are),
Optuna's pruner built on use, so naming or listing one never imports Optuna.

Every builder takes ``epochs``, a trial's epoch budget: the resource the pruner divides (a
study that scores trials by k-fold cross-validation passes its number of folds).
"""

from __future__ import annotations

from typing import Any

from dltool._registry import Registry
from dltool.params import Params

DEFAULT = "median"


# Shaped like samplers.py on purpose (and like models/__init__.py): a registry per kind.
class PrunerParams(Params):
    """What dltool knows of a pruner beyond its builder."""


pruners: Registry[PrunerParams] = Registry("pruners", PrunerParams, see="dltool tune --help")


@pruners.register("median", "dltool.tuning.pruners:median")
class MedianParams(PrunerParams):
    """Stops a trial whose metric is worse than the median of earlier trials at the same epoch."""


@pruners.register("hyperband", "dltool.tuning.pruners:hyperband")
class HyperbandParams(PrunerParams):
    """Successive halving over brackets of 1 to ``train.epochs`` epochs (with --folds: 1 to K folds)."""


@pruners.register("none", "dltool.tuning.pruners:none")
class NoneParams(PrunerParams):
    """Every trial runs all its epochs."""


def build_pruner(name: str, epochs: int) -> Any:
    """The Optuna pruner registered as ``name``."""
    return pruners.build(pruners.get(name).params(name=name), epochs=epochs)


def median(epochs: int) -> Any:
    import optuna

    return optuna.pruners.MedianPruner()


def hyperband(epochs: int) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)


def none(epochs: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()
