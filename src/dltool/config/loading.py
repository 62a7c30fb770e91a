"""Resolve a config from its layers, lowest first:

schema defaults < recipe YAML (via ``base:``) < user YAML < ``--set key.path=value`` < flags.

A YAML file may start from another recipe or file with a top-level ``base: NAME|PATH``.
When a layer switches a registry section to another entry (``--model cnn``), the keys of
lower layers that the new entry does not take are dropped: an MLP's ``depth`` says nothing
about a CNN, while ``optimizer.lr`` carries over from adam to sgd. Likewise a layer that
gives the model another task (``model.head: regression``, ``--model autoencoder``) without
naming a loss replaces a lower layer's loss that cannot train that task by the task's default
(a classifier recipe's ``cross_entropy`` becomes ``mse``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import dltool.tasks as tasks
from dltool._yaml import YamlLimitError, YamlRepeatedKeyError, load_yaml
from dltool.config.recipes import find_recipe, list_recipes
from dltool.config.schema import Config
from dltool.config.validate import DISPATCHED, loss_suits, raw_task, sections_taking, validate_config
from dltool.errors import (
    ConfigError,
    DltoolError,
    MissingPathError,
    UnknownNameError,
    UnreadableError,
    UsageError,
    os_reason,
    quote,
)
from dltool.rundir import RunDir, is_run_dir, refuse_parent_of_runs, runs_named_after

Layer = dict[str, Any]


@dataclass(frozen=True)
class Source:
    """Where a config came from: ``name`` is used to name its runs (``runs/<name>-<n>``)."""

    name: str
    path: Path


def resolve_source(ref: str) -> Source:
    """A recipe name, a YAML file, or a run directory (its ``config.yaml``)."""
    if recipe := find_recipe(ref):
        return Source(recipe.name, recipe.path)
    path = Path(ref)
    if is_run_dir(path):
        path = RunDir(path).config
    if path.is_file():
        return Source(runs_named_after(path), path)
    if path.is_dir():
        refuse_parent_of_runs(path)
        raise UsageError(
            f"{ref} is a folder, not a run dir (no config.yaml) nor a config file; to train on the images "
            f"in it, name a recipe and the folder: dltool train photos-resnet18 --dataset {ref} "
            "(see: dltool list recipes)"
        )
    if path.suffix in {".yaml", ".yml"} or "/" in ref:
        raise MissingPathError(ref, "config file or run dir")
    raise UnknownNameError("recipe", ref, [r.name for r in list_recipes()], hint="dltool list recipes")


def load_config(
    ref: str | Config | None = None,
    sets: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> Config:
    """The validated config for recipe/file ``ref`` (or a ``Config`` already loaded) with
    ``--set`` strings and flag values.

    ``flags`` maps dotted keys to values (``None`` is a value: ``train.early_stopping.patience``
    takes it), so leave out the flags that were not given; a path object is its text
    (``data.name``, ``model.init_from`` from Python).
    """
    layers = [ref.to_dict()] if isinstance(ref, Config) else read_layers(resolve_source(ref).path) if ref else []
    layers += [parse_set(s) for s in sets]
    layers.append(nest({key: os.fspath(v) if isinstance(v, os.PathLike) else v for key, v in (flags or {}).items()}))
    merged: Layer = {}
    for layer in layers:
        merged = merge(merged, layer)
    return validate_config(merged)


def read_layers(path: Path, seen: tuple[Path, ...] = ()) -> list[Layer]:
    """The layers of a YAML file: those of its ``base`` first, then its own."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    document = read_yaml(path)
    base = document.pop("base", None)
    if base is None:
        return [document]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected a recipe name or a file path, got {quote(base)}")
    return read_layers(_base_path(base, path), (*seen, path)) + [document]


def _base_path(base: str, path: Path) -> Path:
    """A recipe name, else a file beside ``path`` (a bare name that is neither: a misspelt recipe)."""
    beside = path.parent / base
    if find_recipe(base) or beside.exists():
        return resolve_source(base if find_recipe(base) else str(beside)).path
    raise ConfigError(f"{path}: base: {_missing_base(base, beside)}")


def _missing_base(base: str, beside: Path) -> str:
    if "/" in base or beside.suffix in {".yaml", ".yml"}:
        return f"file not found: {beside}"
    return str(UnknownNameError("recipe", base, [r.name for r in list_recipes()], hint="dltool list recipes"))


def read_yaml(path: Path) -> Layer:
    try:
        document = load_yaml(path.read_text(encoding="utf-8"))
    except YamlLimitError as error:
        raise ConfigError(f"{path}: refused: {error}") from None
    except YamlRepeatedKeyError as error:
        raise ConfigError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a YAML file (not UTF-8 text: a binary file?)") from None
    except OSError as error:
        raise _unreadable(path, error) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(document).__name__}")
    return document


def _unreadable(path: Path, error: OSError) -> DltoolError:
    if UnreadableError.caused(error):  # the file is fine: the user's permissions are not
        return UnreadableError(error)
    return UsageError(f"{path}: cannot read it ({os_reason(error)})")


# Sections whose ``name`` picks a registry entry: ``--set scheduler=cosine`` is ``scheduler.name=cosine``.
NAMED_SECTIONS = ("model", "optimizer", "scheduler", "loss")


def parse_set(assignment: str) -> Layer:
    """``'optimizer.lr=1e-3'`` → ``{'optimizer': {'lr': 0.001}}`` (the value read as YAML)."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    key += ".name" if key in NAMED_SECTIONS else ""
    if not sep or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", key):
        raise UsageError(f"--set {quote(assignment)}: expected section.key=value{_section_hint(key, text)}")
    try:
        value = load_yaml(text) if text.strip() else None
    except YamlLimitError as error:
        raise ConfigError(f"--set {key}: refused: {error}") from None
    except yaml.YAMLError:
        value = text
    if isinstance(value, str):
        value = number_or_text(value)
    return nest({key: value})


def _section_hint(key: str, text: str) -> str:
    """Where a key given without its section belongs (``epochs=3``: ``train.epochs=3``), else
    the forms ``--set`` takes."""
    if sections := sections_taking(key):
        return "; did you mean " + " or ".join(f"--set {section}.{key}={text}" for section in sections) + "?"
    return f", e.g. --set optimizer.lr=0.01 (or {'|'.join(NAMED_SECTIONS)}=NAME, e.g. --set scheduler=cosine)"


def number_or_text(text: str) -> Any:
    """``text`` as a float when it is a number in exponent notation, else ``text``: YAML 1.1
    reads '1e-3' as a string; on the command line (and in a search space) it is a number."""
    try:
        return float(text) if re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", text) else text
    except ValueError:
        return text


def nest(dotted: Mapping[str, Any]) -> Layer:
    """``{'a.b': 1}`` → ``{'a': {'b': 1}}``."""
    out: Layer = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (the inverse of ``nest``); lists and other values stay as they are."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def merge(lower: Layer, upper: Layer) -> Layer:
    """Overlay ``upper`` on ``lower``, section by section (see the module docstring)."""
    out = dict(lower)
    for section, values in upper.items():
        if section in DISPATCHED and isinstance(values, str):
            values = {"name": values}  # shorthand: `model: cnn`
        base = out.get(section)
        if isinstance(values, Mapping) and isinstance(base, Mapping):
            if section in DISPATCHED and "name" in values and values["name"] != base.get("name"):
                base = _keys_taken_by(section, values["name"], base)
            out[section] = _deep_merge(base, values)
        else:
            out[section] = values
    return _loss_for_new_task(lower, upper, out)


def _loss_for_new_task(lower: Layer, upper: Layer, out: Layer) -> Layer:
    """``out``, with the task's default loss where ``upper`` changed the model's task and named
    no loss, and the loss of the lower layers cannot train the new task."""
    named = isinstance(upper.get("loss"), Mapping) and "name" in upper["loss"] or isinstance(upper.get("loss"), str)
    task = raw_task(out.get("model"))
    if named or "model" not in upper or task is None or task == raw_task(lower.get("model")):
        return out
    loss = out.get("loss")
    if not isinstance(loss, Mapping) or loss_suits(loss.get("name", DISPATCHED["loss"][1]), task):
        return out
    default = tasks.info(task).default_loss
    return {**out, "loss": {**_keys_taken_by("loss", default, loss), "name": default}}


def _keys_taken_by(section: str, name: Any, values: Mapping[str, Any]) -> Layer:
    registry = DISPATCHED[section][0]
    if str(name) not in registry:
        return dict(values)  # validation reports the unknown name
    try:
        accepted = registry.get(str(name)).params.accepted_keys(str(name))
    except ConfigError:
        return dict(values)  # validation reports what is wrong with the entry
    return {k: v for k, v in values.items() if k in accepted}


def _deep_merge(lower: Mapping[str, Any], upper: Mapping[str, Any]) -> Layer:
    out = dict(lower)
    for key, value in upper.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
