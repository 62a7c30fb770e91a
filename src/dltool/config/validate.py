"""Turn a raw config mapping into a validated ``Config``, with errors users can act on.

Every error names the dotted key, the bad value and what is allowed; unknown keys come
with "did you mean" suggestions.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

import dltool.tasks as tasks
from dltool._registry import Registry
from dltool.config.schema import Config, DataConfig, TrainConfig
from dltool.errors import ConfigError, UnknownNameError, did_you_mean, quote, suggest
from dltool.losses import check_task, losses
from dltool.models import models
from dltool.optim import optimizers, schedulers

# Sections that name a registry entry, with the entry used when the name is left out.
DISPATCHED: dict[str, tuple[Registry[Any], str]] = {
    "model": (models, "mlp"),
    "optimizer": (optimizers, "adam"),
    "scheduler": (schedulers, "none"),
    "loss": (losses, "cross_entropy"),
}
FIXED: dict[str, type[BaseModel]] = {"data": DataConfig, "train": TrainConfig}
SECTIONS = ["data", "model", "optimizer", "scheduler", "loss", "train"]


def sections_taking(key: str) -> list[str]:
    """The sections that have ``key`` (in a registry section: that some entry takes)."""
    return [section for section in SECTIONS if key in _keys_of(section)]


def _keys_of(section: str) -> set[str]:
    if section in FIXED:
        return set(FIXED[section].model_fields)
    return {key for entry in DISPATCHED[section][0] for key in entry.params.model_fields}


def raw_task(model: Any) -> str | None:
    """The task of an unvalidated model section (its head's, else its entry's); None when it
    names no known entry or head (validation will say so)."""
    model = {"name": model} if isinstance(model, str) else model if isinstance(model, Mapping) else {}
    name, head = str(model.get("name", DISPATCHED["model"][1])), model.get("head", "classifier")
    if name not in models or (head != "classifier" and head not in tasks.tasks):
        return None
    return str(models.get(name).params.task) if head == "classifier" else str(head)


def loss_suits(name: Any, task: str) -> bool:
    """Whether loss ``name`` can train ``task`` (an unknown name: validation will say so)."""
    if str(name) not in losses:
        return True
    try:
        check_task(str(name), task)
    except ConfigError:
        return False
    return True


def validate_config(raw: Mapping[str, Any]) -> Config:
    """Validate a merged config mapping; raise ``ConfigError`` naming every bad key."""
    for section in raw:
        if section not in SECTIONS:
            raise ConfigError(f"{section}: unknown section{suggest(str(section), SECTIONS)}")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for section in SECTIONS:
        given = raw.get(section) or {}
        if not isinstance(given, Mapping):
            problems.append(f"{section}: expected a mapping of keys to values, got {quote(given)}")
            continue
        if section == "loss" and "name" not in given and "model" in values:  # the model's task's default
            given = {"name": tasks.info(tasks.task_name(values["model"])).default_loss, **given}
        schema = FIXED.get(section) or entry_params(section, given)
        try:
            values[section] = schema.model_validate(_with_name(section, given))
        except ValidationError as error:
            problems.extend(describe(e, section, schema) for e in error.errors())
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ConfigError("; ".join(problems[:3]) + more)
    config = _with_model_data_defaults(Config(**values))
    _check_loss_suits_model(config)
    _check_unfreeze_has_freeze(config)
    return config


def _check_unfreeze_has_freeze(config: Config) -> None:
    if config.train.unfreeze_epoch is not None and config.model.freeze == "none":
        raise ConfigError(
            f"train.unfreeze_epoch: {config.train.unfreeze_epoch} unfreezes what model.freeze fixes, "
            "and model.freeze is none (set model.freeze: backbone)"
        )


def _with_model_data_defaults(config: Config) -> Config:
    """``data`` keys the config leaves unset, filled from the model (the input its pretrained
    weights expect), so the run's config.yaml records them for eval, predict and export."""
    unset = {key: value for key, value in config.model.data_defaults().items() if getattr(config.data, key) is None}
    if not unset:
        return config
    try:
        data = DataConfig.model_validate({**config.data.model_dump(), **unset})
    except ValidationError as error:  # e.g. the config's own mean beside the weights' std
        raise ConfigError("; ".join(describe(e, "data", DataConfig) for e in error.errors())) from None
    return config.model_copy(update={"data": data})


def _check_loss_suits_model(config: Config) -> None:
    """The model's task (``dltool.tasks``) takes the loss, measures the monitored metric and
    allows the test-time augmentation."""
    task = tasks.task_name(config.model)
    try:
        check_task(config.loss.name, task)
    except ConfigError as error:
        raise ConfigError(f"{error} (model {config.model.name!r} is a {task} model)") from None
    tasks.check_metric(config.train.monitor.metric, task, "train.monitor.metric")
    _check_sampler(config, task)
    allowed = tasks.info(task).tta
    if config.train.tta not in allowed:
        raise ConfigError(
            f"train.tta: {config.train.tta!r} averages a classifier's logits; model {config.model.name!r} "
            f"is a {task} model (use {' or '.join(allowed)})"
        )
    _check_augment_suits(config, task)


def _check_augment_suits(config: Config, task: str) -> None:
    """No augmentation the task cannot use (MixUp on masks, say) is switched on."""
    defaults = type(config.data.augment)()
    for key in tasks.info(task).augment_off:
        if getattr(config.data.augment, key) != getattr(defaults, key):
            raise ConfigError(
                f"data.augment.{key}: moves or mixes the images without their {tasks.info(task).target}; "
                f"model {config.model.name!r} is a {task} model (leave it off)"
            )


def _check_sampler(config: Config, task: str) -> None:
    """The balanced sampler weighs images by their class: not for points or values."""
    data = tasks.info(task).data
    if config.data.sampler == "balanced" and data in ("points", "values"):
        raise ConfigError(
            f"data.sampler: 'balanced' weighs images by their class; the {task} task of model "
            f"{config.model.name!r} has {data}, no class per image (use random)"
        )


def entry_params(section: str, given: Mapping[str, Any]) -> type[BaseModel]:
    """The parameter schema of the registry entry a dispatched section names."""
    registry, default = DISPATCHED[section]
    name = given.get("name", default)
    try:
        return registry.get(str(name)).params
    except UnknownNameError as error:
        raise ConfigError(f"{section}.name: {error}") from None


def _with_name(section: str, given: Mapping[str, Any]) -> dict[str, Any]:
    if section in DISPATCHED:
        return {"name": DISPATCHED[section][1], **given}
    return dict(given)


def describe(error: Mapping[str, Any], section: str, schema: type[BaseModel]) -> str:
    """One pydantic error as 'key: problem (got value)'."""
    key = ".".join([section, *(str(part) for part in error["loc"])])
    if error["type"] == "extra_forbidden":
        return unknown_key(key, section, schema, error["loc"])
    if error["type"] == "missing":
        return f"{key}: required"
    if error["type"] == "model_type":  # pydantic's words name our class: "instance of BlurConfig"
        return f"{key}: should be a mapping of {', '.join(allowed_keys(schema, error['loc']))} (got {quote(error['input'])})"
    message = error["msg"].removeprefix("Value error, ").replace("Input should be", "should be")
    # A whole-section check (e.g. mean without std) has no single value to show.
    return f"{key}: {message}" + (f" (got {quote(error['input'])})" if error["loc"] else "")


def unknown_key(key: str, section: str, schema: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Suggest close keys of this entry, else close keys that other entries of the kind take."""
    leaf = str(loc[-1])
    allowed = allowed_keys(schema, loc[:-1])
    hint = did_you_mean(leaf, allowed)
    if not hint and section in DISPATCHED and len(loc) == 1:
        entry = next(e.name for e in DISPATCHED[section][0] if e.params is schema)
        hint = _key_of_other_entries(section, leaf, entry)
    return f"{key}: unknown key{hint} (allowed: {', '.join(allowed)})"


def _key_of_other_entries(section: str, leaf: str, entry: str) -> str:
    """Where the key belongs when another entry of the kind takes it (or a close one)."""
    entries = list(DISPATCHED[section][0])
    keys = {k for e in entries for k in e.params.model_fields}
    close = difflib.get_close_matches(leaf, sorted(keys), n=1, cutoff=0.6)
    if not close:
        return ""
    owners = ", ".join(e.name for e in entries if close[0] in e.params.model_fields)
    if close[0] == leaf:
        return f"; {leaf!r} is a key of {section} {owners}, not of {entry!r}"
    return f"; did you mean {close[0]!r} (a key of {section} {owners})?"


def allowed_keys(schema: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model at ``loc`` inside ``schema``."""
    model: Any = schema
    for part in loc:
        annotation = model.model_fields[part].annotation
        candidates = (annotation, *typing.get_args(annotation))
        model = next((a for a in candidates if _is_model(a)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
