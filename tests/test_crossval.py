"""k-fold cross-validation: train --folds K, stratified folds, cv.json with mean ± std."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import yaml

from conftest import folder_with_val
from dltool.config import load_config
from dltool.data.prepare import prepare_data
from dltool.data.splits import for_new_run, stratified_fold

FAST = ["--epochs", "1", "--set", "train.limit_batches=2"]


def test_folds_partition_the_pool_and_keep_each_class_share() -> None:
    labels = np.repeat(np.arange(3), [10, 7, 5])
    folds = [stratified_fold(labels, 4, k, seed=3) for k in range(4)]
    together = np.concatenate(folds)
    assert sorted(together.tolist()) == list(range(len(labels)))  # each sample in one fold
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for fold in folds:
        counts = np.bincount(labels[fold], minlength=3)
        assert all(abs(c - n / 4) < 1 for c, n in zip(counts, [10, 7, 5]))
    assert np.array_equal(folds[1], stratified_fold(labels, 4, 1, seed=3))
    assert not np.array_equal(folds[1], stratified_fold(labels, 4, 1, seed=4))


def test_a_folds_val_is_out_of_its_train_and_every_fold_has_the_same_test_split() -> None:
    def images(split) -> list[bytes]:  # rows are not stable identities (a cache remaps them): pixels are
        return sorted(image.tobytes() for image in split.images)

    splits = []
    for fold in range(3):
        config = load_config("digits-mlp", ["data.cv_folds=3", f"data.cv_fold={fold}"])
        data = prepare_data(for_new_run(config.data))
        splits.append({name: images(split) for name, split in data.splits.items()})
    pool = sorted(splits[0]["train"] + splits[0]["val"])
    for fold in splits:
        assert sorted(fold["train"] + fold["val"]) == pool and fold["test"] == splits[0]["test"]
    assert sorted(sum((fold["val"] for fold in splits), [])) == pool  # the vals tile the pool


def test_train_folds_writes_k_runs_and_cv_json_with_mean_and_std(cli, tmp_path: Path) -> None:
    result = cli("train", "digits-mlp", "--folds", "3", *FAST)
    parent = Path(result.stdout.strip())
    assert parent.name == "digits-mlp-cv-1" and sorted(p.name for p in parent.iterdir()) == [
        "cv.json",
        "fold-1",
        "fold-2",
        "fold-3",
    ]
    cv = json.loads((parent / "cv.json").read_text())
    assert cv["folds"] == 3 and len(cv["runs"]) == 3
    accuracies = [json.loads(Path(run, "summary.json").read_text())["test"]["accuracy"] for run in cv["runs"]]
    test = cv["metrics"]["test_accuracy"]
    assert test["values"] == accuracies
    assert test["mean"] == statistics.fmean(accuracies) and test["std"] == statistics.stdev(accuracies)
    assert {"test_loss", "val_loss", "val_acc"} <= set(cv["metrics"])
    folds = [yaml.safe_load(Path(run, "config.yaml").read_text())["data"] for run in cv["runs"]]
    assert [(f["cv_folds"], f["cv_fold"]) for f in folds] == [(3, 0), (3, 1), (3, 2)]
    assert "test_accuracy" in result.stderr and "± " in result.stderr and "(3 of 3 folds)" in result.stderr


def test_a_cv_parent_named_where_one_run_goes_is_a_usage_error_naming_a_fold(cli, tmp_path: Path) -> None:
    parent = cli("train", "digits-mlp", "--folds", "2", *FAST).stdout.strip()
    # they said "no best weights", "no class folders" or "not a run dir ... train on the images in it"
    for command in (["eval", parent], ["stats", parent], ["summary", parent], ["visualize", parent]):
        result = cli(*command, code=2)
        assert f"{parent} holds the fold runs of a cross-validation, not one run: name one, e.g. {parent}/fold-1" in (
            result.stderr
        ), command
    cli("eval", f"{parent}/fold-1")  # as the message says


def test_bad_fold_settings_are_usage_errors(cli, tmp_path: Path) -> None:
    assert "--folds" in cli("train", "digits-mlp", "--folds", "1", code=2).stderr
    result = cli("train", "digits-mlp", "--set", "data.cv_folds=3", "--set", "data.cv_fold=3", code=2)
    assert "data: cv_fold 3 of cv_folds 3" in result.stderr
    folder = str(folder_with_val(tmp_path / "pics"))
    result = cli("train", "digits-mlp", "--dataset", folder, "--folds", "2", code=2)
    assert f"--folds 2: {folder} has a val split of its own" in result.stderr
    result = cli("train", "digits-mlp", "--folds", "2", "--set", "data.cv_folds=3", code=2)
    assert "drop data.cv_folds=3" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing was made
    # A fold that fails while its data is prepared: the folder and its fold-1 stayed, empty,
    # and so did the runs folder made for them.
    result = cli("train", "digits-mlp", "--folds", "2", "--set", "data.classes=[1,99]", code=2)
    assert "data.classes: '99' not a class" in result.stderr
    assert not (tmp_path / "runs").exists()
