"""dltool tune --folds K: each trial's value is the mean of its K folds' runs, pruned between folds."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml

from conftest import folder_with_val
from dltool.tuning import open_study
from dltool.tuning.records import StudyRecord
from studies import study_json, trials_csv, write

ONE_EPOCH = ["--epochs", "1", "--limit-batches", "2"]


def _best_value(run: Path) -> float:
    """The run's best val_acc (the study's metric), from its metrics.jsonl."""
    return max(json.loads(line)["val_acc"] for line in (run / "metrics.jsonl").read_text().splitlines())


def test_each_trial_is_the_mean_of_its_folds_runs(cli, tmp_path: Path) -> None:
    space = write(tmp_path / "space.yaml", "optimizer.lr: [3.0e-2, 1.0e-3]\n")
    args = ["--space", space, "--sampler", "grid", "--pruner", "none", "--folds", "3", *ONE_EPOCH]
    result = cli("tune", "digits-mlp", *args)
    study = Path(result.stdout.strip())
    rows = trials_csv(study)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    for row in rows:
        trial = study / row["run_dir"]
        assert sorted(p.name for p in trial.iterdir()) == ["cv.json", "fold-1", "fold-2", "fold-3"]
        folds = [trial / f"fold-{k}" for k in (1, 2, 3)]
        values = [_best_value(run) for run in folds]
        assert json.loads(row["fold_values"]) == values and float(row["value"]) == statistics.fmean(values)
        held_out = [yaml.safe_load((run / "config.yaml").read_text())["data"]["cv_fold"] for run in folds]
        assert held_out == [0, 1, 2]
        assert json.loads((trial / "cv.json").read_text())["metrics"]["val_acc"]["values"] == values
        assert f"after 3 folds ({' '.join(f'{v:.4f}' for v in values)})" in result.stderr
    document = study_json(study)
    assert document["folds"] == 3 and len(document["best"]["fold_values"]) == 3
    optuna_study = open_study(study)
    assert optuna_study.user_attrs["folds"] == 3
    assert optuna_study.trials[0].user_attrs["fold_values"] == json.loads(rows[0]["fold_values"])
    assert "--folds 3` trains this configuration again" in (study / "best.yaml").read_text()
    assert "as the mean of 3 folds" in result.stderr and "the mean of folds" in result.stderr
    plots = cli("visualize", str(study)).stdout.split()  # one tuned key: one slice panel
    assert str(study / "plots" / "slice.png") in plots


def test_the_pruner_stops_a_hopeless_trial_between_folds(cli, tmp_path: Path) -> None:
    # Five useful rates first (the median pruner's startup trials), then two hopeless ones.
    space = write(tmp_path / "space.yaml", "optimizer.lr: [3.0e-2, 2.0e-2, 1.0e-2, 5.0e-3, 3.0e-3, 1.0e-8, 5.0e-9]\n")
    args = ["--space", space, "--sampler", "grid", "--pruner", "median", "--folds", "3", *ONE_EPOCH, "-q"]
    study = Path(cli("tune", "digits-mlp", *args).stdout.strip())
    rows = trials_csv(study)
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert pruned and all(float(r["optimizer.lr"]) < 1e-6 for r in pruned), rows
    for row in pruned:
        trial = study / row["run_dir"]
        folds_run = sorted(p.name for p in trial.iterdir() if p.name.startswith("fold-"))
        assert folds_run == ["fold-1"]  # stopped before its second fold
        assert float(row["value"]) == json.loads(row["fold_values"])[0] == _best_value(trial / "fold-1")
    reported = {t.number: t.intermediate_values for t in open_study(study).trials}
    assert all(set(steps) <= {1, 2, 3} for steps in reported.values())  # folds, not epochs


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--folds", "1"], "Invalid value for '--folds'"),
        (["--folds", "2", "--set", "data.cv_folds=3"], "--folds 2 sets data.cv_folds and data.cv_fold"),
        (["--folds", "2", "--dataset", "FOLDER"], "has a val split of its own, and k-fold cross-validation"),
        (["--folds", "2", "--space", "CV_SPACE"], "--folds 2 sets data.cv_fold for each fold's run: drop it"),
    ],
)
def test_bad_folds_are_usage_errors_and_make_nothing(cli, tmp_path: Path, extra: list[str], message: str) -> None:
    folder = str(folder_with_val(tmp_path / "pics"))
    cv_space = str(write(tmp_path / "cv.yaml", "data.cv_fold: [0, 1]\n"))
    space = write(tmp_path / "space.yaml", "optimizer.lr: [1.0e-2]\n")
    extra = [{"FOLDER": folder, "CV_SPACE": cv_space}.get(arg, arg) for arg in extra]
    result = cli("tune", "digits-mlp", "--space", space, *extra, code=2)
    assert message in result.stderr and not (tmp_path / "runs").exists(), result.stderr


def test_a_study_keeps_its_folds_and_a_dry_run_checks_the_first_fold(cli, tmp_path: Path) -> None:
    space = write(tmp_path / "space.yaml", "optimizer.lr: [1.0e-2, 2.0e-2]\n")
    grid = ["tune", "digits-mlp", "--space", space, "--sampler", "grid", *ONE_EPOCH, "-q"]
    base = [*grid, "--name", "s"]
    dry = cli(*base, "--folds", "2", "--trials", "1", "--dry-run")
    assert "1 trials × 2 folds" in dry.stderr and "fold 1 (" in dry.stderr and not (tmp_path / "runs").exists()
    cli(*base, "--folds", "2", "--trials", "1")
    result = cli(*base, "--folds", "3", code=2)
    assert "--folds 3: this study scores its trials with 2-fold cross-validation" in result.stderr
    cli(*base, "--trials", "2")  # continued without --folds: its second trial has 2 folds too
    assert [len(json.loads(r["fold_values"])) for r in trials_csv(tmp_path / "runs" / "s")] == [2, 2]
    # Another study dir on the same storage cannot score the study's trials otherwise.
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    shared = [*grid, "--storage", storage, "--study-name", "x", "--trials", "1"]
    cli(*shared, "--name", "a", "--folds", "2")
    result = cli(*shared, "--name", "b", code=2)
    assert "scores its trials with 2-fold cross-validation, not one run each" in result.stderr


def test_a_study_record_from_before_folds_reads_as_one_run_a_trial(cli, tmp_path: Path) -> None:
    space = write(tmp_path / "space.yaml", "optimizer.lr: [1.0e-2]\n")
    study = Path(cli("tune", "digits-mlp", "--space", space, "--trials", "1", *ONE_EPOCH, "-q").stdout.strip())
    document = study_json(study)
    del document["folds"], document["best"]["fold_values"]
    record = StudyRecord.from_dict(document, study / "study.json")
    assert record.folds == 0 and record.best is not None and record.best.fold_values is None
    assert "fold_values" not in trials_csv(study)[0]


def test_the_python_api_takes_folds(isolated: Path) -> None:
    from dltool import tune

    overrides = {"train.epochs": 1, "train.limit_batches": 2}
    result = tune("digits-mlp", space={"optimizer.lr": [1.0e-2]}, sampler="grid", folds=2, overrides=overrides)
    assert result.study["folds"] == 2 and len(result.best["fold_values"]) == 2
    assert result.trials["fold_values"][0] == result.best["fold_values"]
