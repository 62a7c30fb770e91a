"""Search spaces: dotted config keys (the keys of ``--set``) mapped to what to try.

```yaml
optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
model.width: {type: int, low: 32, high: 256, step: 32}
model.activation: {type: categorical, choices: [relu, tanh]}
train.batch_size: [32, 64, 128]      # a plain list: the values to try (grid) / choose from
```

Every key and every value it can take is validated against the schema on top of the base
config before anything runs, so a typo is a usage error naming the key. A key of a registry
section (``optimizer.momentum``) is tuned only in trials whose entry takes it, so a space
may switch ``optimizer.name`` and tune each entry's own keys.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltool.config.loading import merge, nest, number_or_text, read_yaml
from dltool.config.schema import Config
from dltool.config.validate import DISPATCHED, validate_config
from dltool.errors import ConfigError, did_you_mean, option, quote

FIELDS = ("type", "low", "high", "log", "step", "choices")
TYPES = ("float", "int", "categorical")
PRIMITIVE = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Param:
    """One dimension of a search space. ``choices`` hold the values themselves (lists too)."""

    key: str
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def section(self) -> str:
        return self.key.split(".")[0]

    @property
    def leaf(self) -> str:
        return self.key.split(".")[1]

    def candidates(self) -> list[Any]:
        """The values validated up front: both ends of a range, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def grid_values(self) -> list[Any]:
        """Every value a grid search tries; a float range needs a step."""
        if self.kind == "categorical":
            return list(self.choices)
        assert self.low is not None and self.high is not None  # a range has both ends
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ConfigError(f"{self.key}: grid search needs a list of values or a range with a step")
        count = math.floor((self.high - self.low) / self.step + 1e-9)
        return [round(self.low + i * self.step, 12) for i in range(count + 1)]

    def distribution(self, grid: bool = False) -> Any:
        """The Optuna distribution ``suggest`` asks for (a grid asks among its values)."""
        from optuna import distributions

        if grid or self.kind == "categorical":
            return distributions.CategoricalDistribution([encode_value(v) for v in self.grid_values()])
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return distributions.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: Any, grid: bool = False) -> Any:
        """Ask an Optuna trial for this value, as ``distribution`` describes it."""
        from optuna import distributions

        found = self.distribution(grid)
        if isinstance(found, distributions.CategoricalDistribution):
            return decode_value(trial.suggest_categorical(self.key, list(found.choices)))
        suggest = trial.suggest_int if isinstance(found, distributions.IntDistribution) else trial.suggest_float
        return suggest(self.key, found.low, found.high, step=found.step, log=found.log)


@dataclass(frozen=True)
class SearchSpace:
    """The parameters in suggestion order (registry ``name`` keys first) and the raw mapping."""

    params: tuple[Param, ...]
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def suggest(self, trial: Any, base: Mapping[str, Any], grid: bool = False) -> dict[str, Any]:
        """Dotted key → value for one trial, skipping keys its registry entries do not take."""
        values: dict[str, Any] = {}
        for param in self.params:
            if _taken(param, _entry(param.section, base, values)):
                values[param.key] = param.suggest(trial, grid)
        return values

    def apply(self, base: Mapping[str, Any], values: Mapping[str, Any]) -> Config:
        """The base config with ``values`` as one more layer on top (like ``--set``), validated."""
        return validate_config(merge(dict(base), nest(values)))

    def grid(self, base: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every point of the grid, in order; keys an entry does not take are left out, so
        such points are not repeated."""
        seen: set[str] = set()
        columns = [p.grid_values() for p in self.params]
        for combination in itertools.product(*columns):
            point: dict[str, Any] = {}
            for param, value in zip(self.params, combination):
                if _taken(param, _entry(param.section, base, point)):
                    point[param.key] = value
            identity = json.dumps(point, sort_keys=True)
            if identity not in seen:
                seen.add(identity)
                yield point

    def grid_size(self, base: Mapping[str, Any]) -> int:
        return sum(1 for _ in self.grid(base))


def load_space(path: Path, base: Mapping[str, Any]) -> SearchSpace:
    """Read and validate a space file against ``base`` (a resolved config as a dict)."""
    if not Path(path).is_file():
        raise ConfigError(f"{option('space', str(path))}: no such file")
    raw = read_yaml(Path(path))
    try:
        return parse_space(raw, base)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error.unspelled}") from None


def parse_space(raw: Mapping[str, Any], base: Mapping[str, Any]) -> SearchSpace:
    """Check each key's form and each of its values against the schema on top of ``base``."""
    if not raw:
        raise ConfigError(
            "the search space is empty: map config keys to values to try, e.g. optimizer.lr: [1.0e-3, 1.0e-2]"
        )
    params = [_param(str(key), value) for key, value in raw.items()]
    for param in params:
        _validate_values(param, params, base)
    ordered = sorted(params, key=lambda p: (p.leaf != "name",))  # entries first: they decide the rest
    return SearchSpace(tuple(ordered), dict(raw))


def _param(key: str, value: Any) -> Param:
    parts = key.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ConfigError(f"{key}: expected a dotted config key such as optimizer.lr or model.width")
    if isinstance(value, list):
        return _categorical(key, value)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{key}: expected a list of values or a mapping such as "
            f"{{type: float, low: 1.0e-4, high: 1.0e-1, log: true}} (got {quote(value)}); "
            f"to fix a value use {option('overrides', f'{key}={value}', python=f'overrides={{{key!r}: {value!r}}}')}"
        )
    for name in value:
        if name not in FIELDS:
            raise ConfigError(
                f"{key}.{name}: unknown field{did_you_mean(str(name), FIELDS)} (allowed: {', '.join(FIELDS)})"
            )
    kind = value.get("type") or _inferred_type(key, value)
    if kind not in TYPES:
        raise ConfigError(
            f"{key}.type: {quote(kind)} is not a type{did_you_mean(str(kind), TYPES)} (allowed: {', '.join(TYPES)})"
        )
    if kind == "categorical":
        extra = sorted(set(value) - {"type", "choices"})
        if extra:
            raise ConfigError(f"{key}: {', '.join(extra)} do not apply to categorical choices")
        choices = value.get("choices")
        if not isinstance(choices, list):
            raise ConfigError(f"{key}.choices: expected a list of values (got {quote(choices)})")
        return _categorical(key, choices)
    return _range(key, kind, value)


def _inferred_type(key: str, value: Mapping[str, Any]) -> str:
    if "choices" in value:
        return "categorical"
    if "low" in value or "high" in value:
        bounds = [value.get("low"), value.get("high"), value.get("step")]
        return (
            "int" if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds if b is not None) else "float"
        )
    raise ConfigError(f"{key}: give type (float, int or categorical) with low/high or choices")


def _categorical(key: str, choices: list[Any]) -> Param:
    if not choices:
        raise ConfigError(f"{key}: empty list of choices; give at least one value")
    encoded = [encode_value(c) for c in choices]
    if len(set(map(json.dumps, encoded))) != len(encoded):
        raise ConfigError(f"{key}: choices repeat a value: {quote(choices)}")
    return Param(key, "categorical", choices=tuple(choices))


def _range(key: str, kind: str, value: Mapping[str, Any]) -> Param:
    low, high = _number(key, "low", value.get("low"), kind), _number(key, "high", value.get("high"), kind)
    step = None if value.get("step") is None else _number(key, "step", value.get("step"), kind)
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{key}.log: expected true or false (got {quote(log)})")
    if low > high:
        raise ConfigError(f"{key}: low {quote(low)} is greater than high {quote(high)}")
    if log and low <= 0:
        raise ConfigError(f"{key}: a log range needs low > 0 (got low {quote(low)})")
    if step is not None and step <= 0:
        raise ConfigError(f"{key}.step: should be greater than 0 (got {quote(step)})")
    if log and step is not None and (kind == "float" or step != 1):  # Optuna's rule for an int: step 1
        raise ConfigError(
            f"{key}: a {'float' if kind == 'float' else 'whole-number'} range takes log or step, not both"
        )
    if kind == "int" and step is not None and (high - low) % step:
        raise ConfigError(f"{key}: high - low ({high - low}) is not a multiple of step {step}")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _number(key: str, name: str, value: Any, kind: str) -> Any:
    if value is None:
        raise ConfigError(f"{key}.{name}: required for a {kind} range")
    if isinstance(value, str):
        value = number_or_text(value)  # YAML reads 1e-4 (no dot) as text
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}.{name}: expected a number (got {quote(value)})")
    if kind == "int":
        if value != int(value):
            raise ConfigError(f"{key}.{name}: an int range needs whole numbers (got {quote(value)})")
        return int(value)
    return float(value)


def _validate_values(param: Param, params: Sequence[Param], base: Mapping[str, Any]) -> None:
    """Each candidate value must validate with at least one entry the space can pick."""
    entries = _possible_entries(param, params, base)
    for value in param.candidates():
        problem = None
        for entry in entries:
            layer = {param.key: value} if entry is None else {f"{param.section}.name": entry, param.key: value}
            try:
                validate_config(merge(dict(base), nest(layer)))
                break
            except ConfigError as error:
                problem = problem or error
        else:
            raise problem  # type: ignore[misc]


def _possible_entries(param: Param, params: Sequence[Param], base: Mapping[str, Any]) -> list[Any]:
    """The registry entries a key may be tuned under: the base's and the space's choices."""
    if param.section not in DISPATCHED or param.leaf == "name":
        return [None]
    names = next((p.candidates() for p in params if p.key == f"{param.section}.name"), [])
    return [None, *names]


def _entry(section: str, base: Mapping[str, Any], values: Mapping[str, Any]) -> Any:
    if f"{section}.name" in values:
        return values[f"{section}.name"]
    return (base.get(section) or {}).get("name")


def _taken(param: Param, entry: Any) -> bool:
    """Whether the registry entry ``entry`` of the param's section takes its key."""
    if param.section not in DISPATCHED or param.leaf == "name":
        return True
    registry = DISPATCHED[param.section][0]
    name = str(entry if entry is not None else DISPATCHED[param.section][1])
    return name not in registry or param.leaf in registry.get(name).params.accepted_keys(name)


def encode_value(value: Any) -> Any:
    """Optuna's categorical choices are plain scalars: lists and mappings travel as JSON text."""
    return value if isinstance(value, PRIMITIVE) else "json:" + json.dumps(value)


def decode_value(value: Any) -> Any:
    return json.loads(value[5:]) if isinstance(value, str) and value.startswith("json:") else value
