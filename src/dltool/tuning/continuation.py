"""Continuing a study dir: what it records, refusing a storage that lost those trials, and
setting the records aside when the user starts the study afresh (``--restart-study``).

A storage loses trials when its journal is deleted, emptied or replaced by an older copy,
or a database is another one than before. Continuing then would start the study over and
mistake the old trial dirs for the new trials': the study dir's own records (study.json,
trials.csv, ``trial-NNNN`` dirs) say how many trials the storage must hold at least.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

from dltool.errors import CheckpointError, StorageError, UsageError, option, quote
from dltool.tuning._optuna import quiet_optuna
from dltool.tuning.records import StudyRecord
from dltool.tuning.settings import TuneSettings
from dltool.tuning.space import parse_space
from dltool.tuning.storage import (
    JOURNAL,
    JOURNAL_FILE,
    RESTART_HINT,
    open_storage,
    public_url,
    same_storage,
    storage_errors,
)
from dltool.tuning.study import BEST_YAML, STUDY_JSON, TRIALS_CSV, read_study_record

TRIAL_DIR_PATTERN = re.compile(r"trial-(\d{4,})")
RECORDS = (STUDY_JSON, TRIALS_CSV, BEST_YAML, JOURNAL_FILE, "workers")  # set aside with the trial dirs


def stored_record(study_dir: Path) -> StudyRecord:
    """The study.json of a study dir to continue (a usage error when it is not one)."""
    try:
        return read_study_record(study_dir)
    except CheckpointError as error:
        raise UsageError(
            f"{study_dir} exists and is not a study to continue ({error}); choose another {option('name')}"
        ) from None


def check_continuation(stored: StudyRecord, storage: str, study_name: str | None) -> None:
    if not same_storage(storage, stored.storage):
        raise UsageError(f"{option('storage', public_url(storage))}: this study lives in {stored.storage}")
    if study_name is not None and study_name != stored.study_name:
        raise UsageError(f"{option('study', study_name)}: this study dir holds study {stored.study_name!r}")


def refuse_lost_trials(settings: TuneSettings, stored: StudyRecord) -> None:
    """A storage with fewer trials than the study dir records is refused (exit 1), naming them."""
    recorded, evidence = recorded_trials(settings.study_dir, stored)
    held = _trials_in_storage(settings)
    if held is not None and held >= recorded:
        return
    has = "no study " + repr(settings.study_name) if held is None else f"{held} trial{'s' * (held != 1)}"
    raise StorageError(
        f"{settings.study_dir}: its storage {_where(settings)} has {has}, but the study dir records "
        f"{recorded} trials ({evidence}): the storage was lost or emptied. Restore it, {RESTART_HINT}"
    )


def recorded_trials(study_dir: Path, stored: StudyRecord) -> tuple[int, str]:
    """How many trials the study dir's records show at least, and what shows it."""
    dirs = sorted(int(m[1]) for p in study_dir.iterdir() if (m := TRIAL_DIR_PATTERN.fullmatch(p.name)) and p.is_dir())
    rows = _csv_numbers(study_dir / TRIALS_CSV)
    evidence = [f"{STUDY_JSON}: {stored.trials} trials"]
    if stored.best is not None:
        evidence.append(f"best trial {stored.best.number}, {stored.metric} {stored.best.value:.4g}")
    if rows:
        evidence.append(f"{TRIALS_CSV}: {len(rows)} rows")
    if dirs:
        evidence.append(f"trial dirs trial-{dirs[0]:04d} to trial-{dirs[-1]:04d}")
    recorded = max(stored.trials, 1 + max(dirs + rows, default=-1))
    return recorded, "; ".join(evidence)


def _csv_numbers(path: Path) -> list[int]:
    try:
        with open(path, newline="", encoding="utf-8") as file:
            return [int(row["number"]) for row in csv.DictReader(file) if (row.get("number") or "").isdigit()]
    except (OSError, ValueError, KeyError):
        return []  # no readable trials.csv: the other records still count


def refuse_changed_space(settings: TuneSettings) -> None:
    """A space that gives a key another kind, log scale or choices than the study's trials
    sampled it with is a usage error: Optuna would fail every new trial on that key."""
    from optuna.distributions import check_distribution_compatibility

    sampled = _sampled_distributions(_stored_trials(settings) or [])
    for param in parse_space(settings.space, settings.base).params:
        if param.key not in sampled:
            continue
        try:
            check_distribution_compatibility(sampled[param.key], param.distribution(settings.grid))
        except ValueError as error:
            raise UsageError(
                f"{option('space')}: {param.key}: study {settings.study_name!r} sampled it as {sampled[param.key]}, "
                f"which this space cannot continue ({error}); keep that for {param.key}, or tune under "
                f"another {option('name')} (or {option('restart_study', True)})"
            ) from None


# The data keys that decide which images are val (what trials are scored on) and test:
# first the dataset itself (another one under the same study compared nothing).
SPLIT_KEYS = ("name", "val_fraction", "test_fraction", "split_seed", "split_by", "classes")


def refuse_changed_splits(settings: TuneSettings) -> None:
    """A config whose val and test splits are drawn otherwise than those the study's trials
    were scored on is a usage error: their values would not compare (keys the space tunes
    excepted: the user asked for that)."""
    configs = [trial.user_attrs["config"] for trial in _stored_trials(settings) or [] if "config" in trial.user_attrs]
    if not configs:
        return
    before, now = _splits(configs[-1].get("data", {})), _splits(settings.base["data"])
    for key in SPLIT_KEYS:
        if f"data.{key}" not in settings.space and before.get(key) != now.get(key):
            raise UsageError(
                f"data.{key}: study {settings.study_name!r} scored its trials on the val split of "
                f"data.{key} {quote(before.get(key))}, and {quote(now.get(key))} may draw another, so new "
                f"trials would not compare with them; keep data.{key}: {quote(before.get(key))}, or tune "
                f"under another {option('name')} (or {option('restart_study', True)})"
            )


def _splits(data: Any) -> dict[str, Any]:
    """The split keys of a trial's data section as a new run resolves them (unset
    ``split_by`` is name); none of a section that no longer validates (an older dltool's)."""
    from pydantic import ValidationError

    from dltool.config.schema import DataConfig
    from dltool.data.splits import for_new_run

    try:
        resolved = for_new_run(DataConfig.model_validate(data))
    except ValidationError:
        return {}
    return {key: getattr(resolved, key) for key in SPLIT_KEYS}


def _sampled_distributions(trials: list[Any]) -> dict[str, Any]:
    return {key: dist for trial in trials for key, dist in trial.distributions.items()}


def _trials_in_storage(settings: TuneSettings) -> int | None:
    """The number of trials of the study in its storage; None when it has no such study."""
    trials = _stored_trials(settings)
    return None if trials is None else len(trials)


def _stored_trials(settings: TuneSettings) -> list[Any] | None:
    """The study's trials in its storage; None when it has no such study."""
    import optuna

    with quiet_optuna(), storage_errors(settings.storage, settings.study_dir):
        storage = open_storage(settings.storage, settings.study_dir)
        if settings.study_name not in optuna.get_all_study_names(storage):
            return None
        study = optuna.load_study(study_name=settings.study_name, storage=storage)
        return list(study.get_trials(deepcopy=False))


def set_records_aside(settings: TuneSettings) -> Path:
    """Move the study dir's records (study.json, trials.csv, best.yaml, the journal, trial
    dirs) into a new ``restarted-N`` folder inside it; nothing is deleted.

    A database study of the same name is left alone, so it must be gone from its storage.
    """
    if settings.storage != JOURNAL and _trials_in_storage(settings) is not None:
        raise UsageError(
            f"{option('restart_study', True)}: study {settings.study_name!r} still exists in "
            f"{public_url(settings.storage)}; pass {option('study', 'NEW')} to start afresh under another name"
        )
    study_dir = settings.study_dir
    aside = _new_folder(study_dir)
    for path in sorted(study_dir.iterdir()):
        if path.name in RECORDS or TRIAL_DIR_PATTERN.fullmatch(path.name):
            os.replace(path, aside / path.name)
    return aside


def _new_folder(study_dir: Path) -> Path:
    number = 1
    while True:
        try:
            (study_dir / f"restarted-{number}").mkdir()
            return study_dir / f"restarted-{number}"
        except FileExistsError:
            number += 1


def _where(settings: TuneSettings) -> Any:
    return settings.study_dir / JOURNAL_FILE if settings.storage == JOURNAL else public_url(settings.storage)
