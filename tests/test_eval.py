"""`dltool eval`: numbers that match independent computations, on any weights file."""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from sklearn import metrics as skm

from conftest import make_autoencoder_run
from dltool.config import load_config
from dltool.data.prepare import prepare_data
from dltool.engine import train
from dltool.models.build import build_model
from dltool.rundir import create_run_dir

KEYS = {
    "split",
    "n",
    "loss",
    "accuracy",
    "balanced_accuracy",
    "top5_accuracy",
    "per_class",
    "macro_f1",
    "weighted_f1",
    "roc_auc",
    "average_precision",
    "confusion_matrix",
    "ece",
    "brier",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    import os

    os.environ["DLTOOL_DATA"] = str(data_dir)
    config = load_config("digits-mlp", ["train.epochs=4"])
    return train(config, create_run_dir(tmp_path_factory.mktemp("runs"), "digits-mlp")).run_dir


def pets(folder: Path) -> Path:
    """Class folders cat/ and dog/ of six 12x12 images each, one colour an image."""
    from PIL import Image

    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (12, 12), (40 * i, 200 if label == "cat" else 0, 9)).save(folder / label / f"{i}.png")
    return folder


def independent_probabilities(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """Test-split probabilities computed without dltool's evaluation code."""
    config = load_config(str(run))
    data = prepare_data(config.data)
    model = build_model(config.model, in_shape=data.in_shape, num_classes=10)
    model.load_state_dict(load_file(run / "model.safetensors"))
    model.eval()
    images = torch.from_numpy(data.splits["test"].images).float() / 255
    images = (images - torch.tensor(data.mean).view(1, -1, 1, 1)) / torch.tensor(data.std).view(1, -1, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(model(images).double(), dim=1).numpy()
    return probs, data.splits["test"].labels


def test_eval_document_matches_scikit_learn_on_the_same_predictions(cli, run: Path) -> None:
    document = json.loads(cli("eval", run, "--json").stdout)
    assert set(document) >= KEYS and document["split"] == "test"
    assert json.loads((run / "eval-test.json").read_text()) == document
    probs, labels = independent_probabilities(run)
    predicted = probs.argmax(1)
    assert document["n"] == len(labels) == 359
    assert document["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert document["accuracy"] == pytest.approx(json.loads((run / "summary.json").read_text())["test"]["accuracy"])
    assert document["loss"] == pytest.approx(skm.log_loss(labels, probs, labels=range(10)), rel=1e-5)
    assert document["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, predicted))
    top5 = np.mean([label in np.argsort(-p)[:5] for p, label in zip(probs, labels)])
    assert document["top5_accuracy"] == pytest.approx(top5)
    assert document["macro_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="macro"))
    assert document["weighted_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="weighted"))
    assert document["confusion_matrix"] == skm.confusion_matrix(labels, predicted).tolist()
    assert sum(map(sum, document["confusion_matrix"])) == 359
    for index, name in enumerate(str(c) for c in range(10)):
        row = document["per_class"][name]
        assert row["support"] == int(np.sum(labels == index))
        true_pos = np.sum((predicted == index) & (labels == index))
        assert row["recall"] == pytest.approx(true_pos / row["support"])
    onehot = np.eye(10)[labels]
    assert document["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert document["average_precision"] == pytest.approx(skm.average_precision_score(onehot, probs, average="macro"))
    for index, name in enumerate(str(c) for c in range(10)):
        assert document["per_class"][name]["roc_auc"] == pytest.approx(_auc_by_ranks(probs[:, index], labels == index))
    assert document["brier"] == pytest.approx(np.mean(np.sum((probs - onehot) ** 2, axis=1)))
    assert document["ece"] == pytest.approx(_ece(probs, labels), abs=1e-6)  # float32 logits


def _auc_by_ranks(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC as the Mann–Whitney statistic: the chance that a random positive outscores a
    random negative (ties count half), counted pair by pair."""
    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


@pytest.mark.parametrize("decimals", [1, 3, 12])  # many ties, some, none
def test_roc_auc_and_average_precision_are_scikit_learns(decimals: int) -> None:
    from dltool.tasks.metrics import ranked_scores

    rng = np.random.default_rng(decimals)
    scores, positive = np.round(rng.random(500), decimals), rng.random(500) < 0.3
    auc, ap = ranked_scores(scores, positive)
    assert auc == pytest.approx(skm.roc_auc_score(positive, scores), abs=1e-12)
    assert auc == pytest.approx(_auc_by_ranks(scores, positive), abs=1e-12)
    assert ap == pytest.approx(skm.average_precision_score(positive, scores), abs=1e-12)


def test_every_classification_score_is_scikit_learns_with_ties_and_missing_classes() -> None:
    from dltool.tasks.metrics import classification_metrics

    rng = np.random.default_rng(0)
    probs = np.round(rng.random((400, 8)), 1) + 1e-3  # many tied scores
    probs[:, 6] = 0  # class 6 is never predicted
    probs /= probs.sum(1, keepdims=True)
    labels = rng.choice([0, 1, 2, 3, 4, 5, 6], 400)  # no sample of class 7
    document = classification_metrics(probs, labels, [str(c) for c in range(8)], nll=0.5)
    predicted, indices = probs.argmax(1), list(range(8))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0
    )
    assert document["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=1e-12)
    with warnings.catch_warnings():  # scikit-learn notes the class that is predicted but absent
        warnings.simplefilter("ignore")
        balanced = skm.balanced_accuracy_score(labels, predicted)
    assert document["balanced_accuracy"] == pytest.approx(balanced, abs=1e-12)
    top5 = skm.top_k_accuracy_score(labels, probs, k=5, labels=indices)
    assert document["top5_accuracy"] == pytest.approx(top5, abs=1e-12)
    for c, row in enumerate(document["per_class"].values()):
        assert [row["precision"], row["recall"], row["f1"]] == pytest.approx(
            [precision[c], recall[c], f1[c]], abs=1e-12
        )
        assert row["support"] == support[c]
    assert document["macro_f1"] == pytest.approx(skm.f1_score(labels, predicted, labels=indices, average="macro"))
    weighted = skm.f1_score(labels, predicted, labels=indices, average="weighted", zero_division=0)
    assert document["weighted_f1"] == pytest.approx(weighted, abs=1e-12)
    assert document["confusion_matrix"] == skm.confusion_matrix(labels, predicted, labels=indices).tolist()
    assert document["brier"] == pytest.approx(skm.brier_score_loss(labels, probs, labels=indices), abs=1e-12)


def test_roc_auc_and_ap_are_undefined_for_a_class_the_split_lacks() -> None:
    from dltool.tasks.metrics import classification_metrics

    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    labels = np.array([0, 1, 0, 1])  # no sample of class c
    document = classification_metrics(probs, labels, ["a", "b", "c"], nll=0.5)
    assert math.isnan(document["per_class"]["c"]["roc_auc"]) and math.isnan(
        document["per_class"]["c"]["average_precision"]
    )
    assert document["per_class"]["a"]["roc_auc"] == 1.0 and document["per_class"]["b"]["average_precision"] == 1.0
    assert document["roc_auc"] == 1.0 and document["average_precision"] == 1.0  # over the classes it has


def _ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE written as a plain loop over samples, for the cross-check."""
    totals = [[0, 0.0, 0.0] for _ in range(bins)]  # count, confidence sum, correct sum
    for p, label in zip(probs, labels):
        confidence = float(p.max())
        b = min(bins - 1, max(0, math.ceil(confidence * bins) - 1))
        totals[b][0] += 1
        totals[b][1] += confidence
        totals[b][2] += float(p.argmax() == label)
    return sum(abs(c / n - a / n) * n for n, a, c in totals if n) / len(labels)


def test_eval_val_split_and_last_checkpoint(cli, run: Path) -> None:
    cli("eval", run)
    val = json.loads(cli("eval", run, "--split", "val", "--checkpoint", "last", "--json").stdout)
    assert val["split"] == "val" and val["n"] == 143
    # Beside the checkpoint: the run's own eval-val.json (the best weights', which reports and
    # plots read) was replaced by the last checkpoint's scores.
    assert (run / "checkpoints" / "last.pt.eval-val.json").is_file() and not (run / "eval-val.json").exists()
    epoch = json.loads(cli("eval", run / "checkpoints" / "last.pt", "--json").stdout)
    assert epoch["checkpoint"] == str(run / "checkpoints" / "last.pt")
    assert json.loads((run / "eval-test.json").read_text())["checkpoint"] == str(run / "model.safetensors")
    assert "unknown split 'train2'; did you mean 'train'?" in cli("eval", run, "--split", "train2", code=2).stderr
    # Evaluated from the runs folder as `dltool eval NAME`: the file said "NAME/model.safetensors",
    # which read from the run dir (or anywhere but that folder) names no file.
    os.chdir(run.parent)
    cli("eval", run.name)
    assert json.loads((run / "eval-test.json").read_text())["checkpoint"] == str(run / "model.safetensors")


def test_scores_that_cannot_be_saved_are_still_printed_then_one_line(cli, run: Path, tmp_path: Path) -> None:
    # A run dir where eval-test.json cannot be written (read-only, full; here the name is
    # taken by a folder): eval scored every image, then failed with nothing on stdout.
    copy = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("eval-*"))
    (copy / "eval-test.json").mkdir()
    result = cli("eval", copy, "--json", code=1)
    document = json.loads(result.stdout)
    assert document["split"] == "test" and document["n"] == 359
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: could not write {copy / 'eval-test.json'} (Is a directory); the scores are shown here only"
    ]
    assert "Traceback" not in result.stderr and "wrote" not in result.stderr and not list(copy.glob(".eval-*"))


def test_a_damaged_summary_does_not_stop_eval(cli, run: Path, tmp_path: Path) -> None:
    # eval read summary.json only for the split sizes it trained with, and a damaged one was
    # "summary.json: not readable JSON": nothing scored, though the weights carry it all.
    copy = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("eval-*"))
    (copy / "summary.json").write_text((run / "summary.json").read_text()[:100])
    document = json.loads(cli("eval", copy, "--json").stdout)
    assert document == json.loads((copy / "eval-test.json").read_text()) and document["n"] == 359


def test_weights_outside_their_run_dir_carry_their_config(cli, run: Path, tmp_path: Path) -> None:
    alone = tmp_path / "shared" / "digits.safetensors"
    alone.parent.mkdir()
    shutil.copy(run / "model.safetensors", alone)
    document = json.loads(cli("eval", alone, "--json").stdout)
    assert document["accuracy"] == json.loads(cli("eval", run, "--json").stdout)["accuracy"]
    assert (alone.parent / "digits.safetensors.eval-test.json").is_file()  # named for it: the folder may hold others
    checkpoint = tmp_path / "last.pt"
    shutil.copy(run / "checkpoints" / "last.pt", checkpoint)
    assert json.loads(cli("eval", checkpoint, "--json").stdout)["n"] == 359


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("case", ["truncated", "random", "pickle", "wrong-suffix", "missing"])
def test_bad_weight_files_are_one_line_and_run_nothing(cli, run: Path, tmp_path: Path, case: str) -> None:
    marker = tmp_path / "code-ran"
    if case == "truncated":
        target = tmp_path / "model.safetensors"
        target.write_bytes((run / "model.safetensors").read_bytes()[:1000])
    elif case == "random":
        target = tmp_path / "last.pt"
        target.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "pickle":
        target = tmp_path / "last.pt"
        torch.save({"model": _RunsCode(str(marker))}, target, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    elif case == "wrong-suffix":
        target = tmp_path / "weights.bin"
        target.write_bytes(b"x")
    else:
        target = tmp_path / "nowhere"
    result = cli("eval", target, code=2 if case == "missing" else 1)  # a path that is not there: a usage error
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr and not marker.exists()


def test_reconstruction_eval_reports_mse_and_psnr(cli, tmp_path: Path) -> None:
    run = cli(
        "train", "digits-mlp", "--model", "autoencoder", "--set", "loss.name=mse", "--epochs", "2", "-q"
    ).stdout.strip()
    document = json.loads(cli("eval", run, "--json").stdout)
    assert {"mse", "psnr", "loss", "n"} <= set(document) and "accuracy" not in document
    assert document["psnr"] == pytest.approx(10 * math.log10(1 / document["mse"]))
    summary = json.loads((Path(run) / "summary.json").read_text())
    assert document["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-5)


def test_eval_on_an_image_folder_with_the_same_classes(cli, run: Path, tmp_path: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = tmp_path / "scans"
    for i in range(1500, 1797):  # some of these are in the run's test split, some in train
        (folder / str(digits.target[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 16).astype(np.uint8)).resize((24, 24)).convert("RGB").save(
            folder / str(digits.target[i]) / f"{i}.png"
        )
    document = json.loads(cli("eval", run, "--data", folder, "--json").stdout)
    assert document["n"] == 297 and document["split"] == "all" and document["accuracy"] > 0.5
    assert (run / "eval-scans-all.json").is_file()
    assert len(document["confusion_matrix"]) == 10
    # The table's title names the folder whole, however long its path (it wrapped mid-name).
    assert f"{folder} / all" in cli("eval", run, "--data", folder).stderr


def test_eval_reports_of_two_folders_of_one_name_are_both_kept(cli, run: Path, tmp_path: Path) -> None:
    # /2024/batch and /2025/batch both wrote eval-batch-all.json: the second replaced the first.
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folders = [tmp_path / year / "batch" for year in ("2024", "2025")]
    for offset, folder in enumerate(folders):
        for i in range(offset * 20, offset * 20 + 20):
            (folder / str(digits.target[i])).mkdir(parents=True, exist_ok=True)
            Image.fromarray((digits.images[i] * 16).astype(np.uint8)).save(folder / str(digits.target[i]) / f"{i}.png")
    documents = [json.loads(cli("eval", run, "--data", folder, "--json").stdout) for folder in (*folders, folders[0])]
    reports = sorted(run.glob("eval-batch*-all.json"))
    assert "eval-batch-all.json" in {report.name for report in reports} and len(reports) == 2
    assert {json.loads(report.read_text())["dataset"] for report in reports} == {str(folder) for folder in folders}
    assert documents[0] == documents[2]  # the first folder again: its own report, replaced
    # The same folder named relatively from two working directories: "batch" and "2024/batch"
    # were recorded as typed, so the second run took the first report for another folder's.
    os.chdir(folders[0].parent)
    cli("eval", run, "--data", "batch")
    os.chdir(tmp_path)
    cli("eval", run, "--data", "2024/batch")
    assert len(sorted(run.glob("eval-batch*-all.json"))) == 2
    assert json.loads((run / "eval-batch-all.json").read_text())["dataset"] == str(folders[0])


def test_a_run_whose_image_folder_is_gone_says_so_and_how_to_score_another(cli, tmp_path: Path) -> None:
    folder = pets(tmp_path / "photos")
    config = load_config("digits-mlp", [f"data.name={folder}", "train.epochs=1", "data.test_fraction=0.3"])
    run = train(config, create_run_dir(tmp_path / "runs", "photos")).run_dir
    folder.rename(tmp_path / "moved")
    gone = cli("eval", run, code=1)
    assert f"{folder}: the run's image folder is gone (moved or deleted); dltool eval RUN --data FOLDER" in gone.stderr
    assert json.loads(cli("eval", run, "--data", tmp_path / "moved", "--json").stdout)["n"] == 12
    # visualize scores the run too, and has no --data: it names eval's (it said "--data FOLDER").
    note = cli("visualize", run, "--out", tmp_path / "plots").stderr
    assert "no test scores or their plots" in note and "; dltool eval RUN --data FOLDER scores" in note


def test_eval_data_scores_every_image_of_a_few_shot_runs_other_folder(cli, tmp_path: Path) -> None:
    # A run trained on data.train_per_class images a class passed that cut on to --data:
    # 12 photos scored as 6 (n 6), as though the folder held no more.
    pets(tmp_path / "photos"), pets(tmp_path / "other")
    sets = [f"data.name={tmp_path / 'photos'}", "train.epochs=1", "data.test_fraction=0.3", "data.train_per_class=2"]
    run = train(load_config("digits-mlp", sets), create_run_dir(tmp_path / "runs", "few")).run_dir
    assert json.loads(cli("eval", run, "--data", tmp_path / "other", "--json").stdout)["n"] == 12


def test_eval_data_names_the_files_it_could_not_read(cli, tmp_path: Path) -> None:
    # A folder's unreadable files were left out without a word (n 12 of 14, "skipped": null);
    # train names them, and so does eval now: on stderr and in the document, those of the
    # scored split only.
    pets(tmp_path / "photos")
    config = load_config("digits-mlp", [f"data.name={tmp_path / 'photos'}", "train.epochs=1", "data.test_fraction=0.3"])
    run = train(config, create_run_dir(tmp_path / "runs", "photos")).run_dir
    other = pets(tmp_path / "other")
    (other / "cat" / "corrupt.jpg").write_bytes(b"not a jpeg")
    result = cli("eval", run, "--data", other, "--json")
    document = json.loads(result.stdout)
    assert document["n"] == 12 and [item["path"] for item in document["skipped"]] == [f"{other}/cat/corrupt.jpg"]
    assert f"skipped {other}/cat/corrupt.jpg: " in result.stderr
    split = tmp_path / "split"
    pets(split / "train"), pets(split / "test")
    (split / "train" / "dog" / "empty.png").write_bytes(b"")
    (split / "test" / "dog" / "empty.png").write_bytes(b"")
    document = json.loads(cli("eval", run, "--data", split, "--json").stdout)
    assert [item["path"] for item in document["skipped"]] == [f"{split}/test/dog/empty.png"]


def test_eval_data_of_the_runs_own_folder_warns_that_it_scores_training_images(cli, tmp_path: Path) -> None:
    # `dltool eval RUN --data photos/` on the folder the run trained on scored every image in
    # it, training images included, as though it were new data: an accuracy without a word.
    folder = pets(tmp_path / "photos")
    config = load_config("digits-mlp", [f"data.name={folder}", "train.epochs=1", "data.test_fraction=0.3"])
    run = train(config, create_run_dir(tmp_path / "runs", "pets")).run_dir
    for given in (str(folder), f"{folder}/../photos/"):  # however it is spelt
        result = cli("eval", run, "--data", given, "--json")
        assert json.loads(result.stdout)["includes_training_images"] is True
        assert f"warning: {folder}: the run trained on images of this folder" in result.stderr  # named whole
    shutil.copytree(folder, tmp_path / "copy")
    assert "includes_training_images" not in json.loads(cli("eval", run, "--data", tmp_path / "copy", "--json").stdout)


def test_eval_data_of_a_class_subset_run_leaves_out_the_other_classes_and_says_so(cli, tmp_path: Path) -> None:
    # A run trained on data.classes [cat, dog]: a folder without dogs was refused ("data.classes:
    # 'dog' not a class of the dataset", exit 2), and the birds of one with them dropped unsaid.
    from PIL import Image

    for folder, labels in ((tmp_path / "photos", ("bird", "cat", "dog")), (tmp_path / "other", ("bird", "cat"))):
        for label in labels:
            (folder / label).mkdir(parents=True)
            for i in range(6 if label == "cat" else 4):
                Image.new("RGB", (12, 12), (40 * i, 200 if label == "cat" else 0, 9)).save(folder / label / f"{i}.png")
    sets = [f"data.name={tmp_path / 'photos'}", "train.epochs=1", "data.test_fraction=0.3", "data.classes=[cat, dog]"]
    run = train(load_config("digits-mlp", sets), create_run_dir(tmp_path / "runs", "pets")).run_dir
    result = cli("eval", run, "--data", tmp_path / "other", "--json")
    document = json.loads(result.stdout)
    assert document["n"] == 6 and document["classes_left_out"] == {"bird": 4}
    assert document["per_class"]["cat"]["support"] == 6 and document["per_class"]["dog"]["support"] == 0
    note = "4 images of classes the run did not train on (data.classes) left out: bird 4"
    assert f"note: {tmp_path / 'other'}: {note}" in result.stderr


def test_eval_data_matches_classes_however_unicode_composes_their_names(cli, tmp_path: Path) -> None:
    # A folder copied through a Mac names "Äpfel" decomposed (A, U+0308): "classes the model
    # does not know: Äpfel (the model knows: Birnen, Äpfel)"; decomposed, it also sorts first.
    import unicodedata

    from PIL import Image

    def folder(root: Path, form: str) -> Path:
        for label, green in (("Birnen", 200), ("Äpfel", 0)):
            (root / unicodedata.normalize(form, label)).mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (12, 12), (40 * i, green, 9)).save(
                    root / unicodedata.normalize(form, label) / f"{i}.png"
                )
        return root

    sets = [f"data.name={folder(tmp_path / 'typed', 'NFC')}", "train.epochs=2", "data.test_fraction=0.3"]
    run = train(load_config("digits-mlp", sets), create_run_dir(tmp_path / "runs", "fruit")).run_dir
    scores = [
        json.loads(cli("eval", run, "--data", folder(tmp_path / f"{form}-copy", form), "--json").stdout)
        for form in ("NFC", "NFD")
    ]
    assert scores[0]["per_class"] == scores[1]["per_class"] and scores[0]["n"] == scores[1]["n"] == 12
    assert list(scores[1]["per_class"]) == ["Birnen", "Äpfel"]  # the run's names, in its order


@pytest.mark.parametrize(
    ("split_by", "why"),
    [("shuffle", "may hold images the model trained on"), ("name", "so no file moved between splits")],
)
def test_eval_after_photos_were_added_says_what_the_drawn_splits_hold(
    cli, tmp_path: Path, split_by: str, why: str
) -> None:
    # The val and test splits are drawn from the folder's files: shuffled, they are drawn
    # again with more files, and training images can land in them (eval scored them without a
    # word); drawn by file name, each file keeps its split.
    from PIL import Image

    folder = tmp_path / "photos"
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (12, 12), (20 * i, 200 if label == "cat" else 0, 9 * i)).save(folder / label / f"{i}.png")
    overrides = [f"data.name={folder}", "train.epochs=1", "data.test_fraction=0.2", f"data.split_by={split_by}"]
    run = train(load_config("digits-mlp", overrides), create_run_dir(tmp_path / "runs", "photos")).run_dir
    sizes = json.loads((run / "summary.json").read_text())["split_sizes"]
    same = cli("eval", run, "--json")
    assert "data_changed" not in json.loads(same.stdout) and "warning" not in same.stderr
    for i in range(10, 15):
        Image.new("RGB", (12, 12), (20, 200, 9 * i)).save(folder / "cat" / f"{i}.png")
    changed = cli("eval", run, "--json")
    record = json.loads(changed.stdout)["data_changed"]
    assert record["split_by"] == split_by and record["train"]["trained"] == sizes["train"] < record["train"]["now"]
    assert f"warning: the data changed since the run trained (train {sizes['train']} → " in changed.stderr
    assert why in changed.stderr


def test_eval_of_a_folder_whose_most_common_size_changed_fits_it_to_the_model(cli, tmp_path: Path) -> None:
    # Trained without data.image_size, the images took their most common size (16x12 here);
    # photos of another size added since made that 20x10, and eval failed with an internal
    # error ("mat1 and mat2 shapes cannot be multiplied").
    from PIL import Image

    folder = tmp_path / "photos"
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for i in range(8):
            size = (16, 12) if i < 5 else (20 + i, 10)
            Image.new("RGB", size, (20 * i, 200 if label == "cat" else 0, 9 * i)).save(folder / label / f"{i}.png")
    config = load_config("digits-mlp", [f"data.name={folder}", "train.epochs=1", "data.test_fraction=0.25"])
    run = train(config, create_run_dir(tmp_path / "runs", "photos")).run_dir
    for i in range(8, 20):
        Image.new("RGB", (20, 10), (7 * i, 200, 9)).save(folder / "cat" / f"{i}.png")
    document = json.loads(cli("eval", run, "--json").stdout)
    assert document["data_changed"]["train"]["now"] > document["data_changed"]["train"]["trained"]
    assert document["n"] == 11 and sum(sum(row) for row in document["confusion_matrix"]) == 11
    cli("visualize", run, "--out", tmp_path / "report")  # the same split batches: exit 0


def test_eval_of_another_folder_for_a_non_square_model_decodes_it_once(cli, tmp_path: Path, data_dir: Path) -> None:
    # It was decoded at its own size rule (into a memory cache written to the data root that
    # nothing reads again), found to be the wrong shape, then read again fitted to the model.
    from PIL import Image

    from dltool.data.cache import folder_cache_dir

    folders = tmp_path / "photos", tmp_path / "other"
    for folder, size in zip(folders, ((16, 12), (40, 30)), strict=True):
        for label in ("cat", "dog"):
            (folder / label).mkdir(parents=True)
            for i in range(6):
                colour = (20 * i, 200 if label == "cat" else 0, 9 * i)
                Image.new("RGB", size, colour).save(folder / label / f"{i}.png")
    config = load_config("digits-mlp", [f"data.name={folders[0]}", "train.epochs=1"])
    run = train(config, create_run_dir(tmp_path / "runs", "photos")).run_dir
    document = json.loads(cli("eval", run, "--data", folders[1], "--json").stdout)
    assert document["split"] == "all" and document["n"] == 12
    assert not folder_cache_dir(folders[1], data_dir).exists()  # nothing decoded to a cache


def test_per_class_scores_as_csv_and_parquet_tables(cli, run: Path, tmp_path: Path) -> None:
    document = json.loads(cli("eval", run, "--json", "--per-class-out", tmp_path / "classes.csv").stdout)
    cli("eval", run, "--per-class-out", tmp_path / "tables" / "classes.parquet")  # its folder is made
    as_csv = pd.read_csv(tmp_path / "classes.csv", index_col="class", dtype={"class": str})
    as_parquet = pd.read_parquet(tmp_path / "tables" / "classes.parquet")
    assert as_csv.index.tolist() == as_parquet.index.tolist() == [str(d) for d in range(10)]
    assert as_parquet.to_dict("index") == document["per_class"]
    assert as_csv["support"].tolist() == [document["per_class"][c]["support"] for c in as_csv.index]
    assert np.allclose(as_csv["f1"], as_parquet["f1"])
    cli("eval", run, "--per-class-out", tmp_path / "classes.csv")  # its own earlier table: replaced
    error = cli("eval", run, "--per-class-out", tmp_path / "classes.txt", code=2).stderr
    assert "--per-class-out" in error and "must end in .csv or .parquet" in error
    assert not (tmp_path / "classes.txt").exists()


def test_per_class_out_of_an_autoencoder_is_refused_before_anything_is_scored(cli, tmp_path: Path) -> None:
    run = make_autoencoder_run(tmp_path / "ae", (1, 8, 8))  # digits are 1×8×8
    (run / "classes.json").write_text(json.dumps([str(d) for d in range(10)]))
    result = cli("eval", run, "--per-class-out", tmp_path / "scores.csv", code=2)
    assert "model 'autoencoder' is a reconstruction model: its evaluation has no scores per class" in result.stderr
    # It was scored first, its report written and its table shown, then refused.
    assert "mse" not in result.stderr and not list(run.glob("eval-*.json")) and result.stdout == ""
    assert not (tmp_path / "scores.csv").exists()
