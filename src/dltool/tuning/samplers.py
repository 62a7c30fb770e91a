"""The samplers ``dltool tune --sampler`` offers: one registry entry each (as models are),
Optuna's sampler built on use, so naming or listing one never imports Optuna.

Every builder takes ``seed`` (None: unseeded) and ``parallel`` (other workers share the study).
"""

from __future__ import annotations

from typing import Any, ClassVar

from dltool._extras import require
from dltool._registry import Registry
from dltool.errors import option
from dltool.params import Params

DEFAULT = "tpe"


# Shaped like pruners.py on purpose (and like models/__init__.py): a registry per kind.
class SamplerParams(Params):
    """What dltool knows of a sampler beyond its builder."""

    # dltool queues the grid's points itself (see ``dltool.tuning.worker``): the sampler
    # then never picks a value, and the budget is the grid's size.
    grid: ClassVar[bool] = False


samplers: Registry[SamplerParams] = Registry("samplers", SamplerParams, see="dltool tune --help")


@samplers.register("tpe", "dltool.tuning.samplers:tpe")
class TPEParams(SamplerParams):
    """Tree-structured Parzen estimator: draws where good trials cluster (Optuna's default)."""


@samplers.register("random", "dltool.tuning.samplers:random")
class RandomParams(SamplerParams):
    """Independent uniform draws (log-uniform on log ranges)."""


@samplers.register("grid", "dltool.tuning.samplers:random")
class GridParams(SamplerParams):
    """Every point of the space's lists and stepped ranges, once, in order."""

    grid: ClassVar[bool] = True


@samplers.register("cmaes", "dltool.tuning.samplers:cmaes")
class CmaEsParams(SamplerParams):
    """CMA evolution strategy over the numeric keys (categorical ones drawn at random)."""


def build_sampler(name: str, seed: int | None, parallel: bool) -> Any:
    """The Optuna sampler registered as ``name``."""
    return samplers.build(samplers.get(name).params(name=name), seed=seed, parallel=parallel)


def is_grid(name: str) -> bool:
    return samplers.get(name).params.grid


def sampler_seed(seed: int | None, index: int, existing: int) -> int | None:
    """Each worker and each session draws its own sequence; a fresh single-worker study with
    the same seed draws the same one."""
    if seed is None:
        return None
    import numpy as np

    return int(np.random.SeedSequence([seed, index, existing]).generate_state(1)[0])


def tpe(seed: int | None, parallel: bool) -> Any:
    import optuna

    # constant_liar: running trials count as bad guesses, so parallel workers spread out.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)


def random(seed: int | None, parallel: bool) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def cmaes(seed: int | None, parallel: bool) -> Any:
    import optuna

    require("cmaes", "cmaes", option("sampler", "cmaes"))  # Optuna's CMA-ES sampler imports it late

    # Categorical keys fall back to independent sampling by design: no warning per trial.
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
