"""`dltool visualize`: plot files of the expected sizes and formats whose numbers match the
eval documents, a report that a real browser renders offline, several runs, studies, datasets."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import Chromium, file_url, find_chromium
from conftest import run_dltool
from dltool.config import load_config
from dltool.engine import train
from dltool.figures import eval_plots
from dltool.figures.canvas import DPI
from dltool.figures.confusion import confusion_size
from dltool.figures.points import worst_points_figure
from dltool.rundir import create_run_dir
from dltool.tasks.reconstruction import RECONSTRUCTIONS_SHOWN
from dltool.viz import augmentations, curves, dataset, inside, report, study
from shapes import shapes_dataset

SVG = "{http://www.w3.org/2000/svg}"
RUN_PLOTS = [
    "loss",
    "accuracy",
    "lr",
    "confusion",
    "confusion_normalised",
    "per_class_f1",
    "reliability",
    "wrong",
    "roc",
    "precision_recall",
    "filters",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> list[Path]:
    """Two short digits-mlp runs that differ in lr, width and epochs."""
    os.environ["DLTOOL_DATA"] = str(data_dir)
    folder = tmp_path_factory.mktemp("runs")
    first = train(load_config("digits-mlp", [], {"train.epochs": 3}), create_run_dir(folder, "digits-mlp"))
    second = train(
        load_config("digits-mlp", [], {"train.epochs": 2, "optimizer.lr": 3e-3, "model.width": 128}),
        create_run_dir(folder, "digits-mlp"),
    )
    return [first.run_dir, second.run_dir]


@pytest.fixture
def run(runs: list[Path], tmp_path: Path) -> Path:
    """A fresh copy of the first run (no eval-test.json, no plots yet)."""
    return Path(shutil.copytree(runs[0], tmp_path / runs[0].name))


def expected_pixels(size: tuple[float, float]) -> tuple[int, int]:
    return round(size[0] * DPI), round(size[1] * DPI)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()  # a whole, valid PNG
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def written(result) -> list[Path]:
    return [Path(line) for line in result.stdout.splitlines()]


def test_run_plots_are_images_of_their_size_and_eval_is_made_on_the_fly(cli, run: Path) -> None:
    assert not (run / "eval-test.json").exists()
    paths = written(cli("visualize", run))
    plots = run / "plots"
    assert paths == [plots / f"{n}.png" for n in RUN_PLOTS[:3]] + [run / "eval-test.json"] + [
        plots / f"{n}.png" for n in RUN_PLOTS[3:]
    ] + [plots / "report.html"]
    document = json.loads((run / "eval-test.json").read_text())
    assert document == json.loads(cli("eval", run, "--json").stdout)  # as `dltool eval` writes it
    wrong = document["n"] - int(np.trace(document["confusion_matrix"]))
    sizes = {
        "loss": curves.CURVE_SIZE,
        "accuracy": curves.CURVE_SIZE,
        "lr": curves.CURVE_SIZE,
        "confusion": confusion_size(10),
        "confusion_normalised": confusion_size(10),
        "per_class_f1": eval_plots.per_class_size(10),
        "reliability": eval_plots.RELIABILITY_SIZE,
        "wrong": eval_plots.wrong_size(min(wrong, eval_plots.WRONG_SHOWN)),
        "roc": eval_plots.CURVE_SIZE,
        "precision_recall": eval_plots.CURVE_SIZE,
        "filters": (8 * inside.TILE, 8 * inside.TILE + 0.4),  # 64 of the 256 first-layer rows
    }
    for name, size in sizes.items():
        assert png_size(plots / f"{name}.png") == expected_pixels(size), name
    again = written(cli("visualize", run))
    assert run / "eval-test.json" not in again  # current: reused, not rewritten


@pytest.mark.parametrize("wrong", [1, 2])
def test_the_wrong_images_title_fits_however_few_they_are(wrong: int) -> None:
    # One wrong image drew a 1.5-inch figure, its title cut to "dently wrong (test): 1".
    from dltool.data.arrays import Split

    labels = np.zeros(3, np.int64)
    probs = np.array([[0.1, 0.9]] * wrong + [[0.9, 0.1]] * (3 - wrong))
    samples = Split(np.zeros((3, 3, 8, 8), np.uint8), labels)
    points = np.full((wrong, 1, 2), 4.0)
    worst = worst_points_figure([np.zeros((3, 8, 8), np.uint8)] * wrong, points, points + 1, np.ones(wrong))
    for figure in (eval_plots.wrong_figure(samples, probs, ["cat", "dog"]), worst):
        figure.canvas.draw()
        title = figure._suptitle.get_window_extent()
        assert title.x0 >= 0 and title.x1 <= figure.bbox.x1


def svg_texts(path: Path) -> dict[str, str]:
    """Text of every SVG group that has an id and holds a <text> element."""
    root = ET.parse(path).getroot()
    return {
        g.get("id"): "".join(g.find(f"{SVG}text").itertext())
        for g in root.iter(f"{SVG}g")
        if g.get("id") and g.find(f"{SVG}text") is not None
    }


def test_confusion_matrix_svg_cells_match_the_eval_document(cli, run: Path, tmp_path: Path) -> None:
    paths = written(cli("visualize", run, "--image-format", "svg", "--out", tmp_path / "svg"))
    for path in paths:
        if path.suffix == ".svg":
            assert ET.parse(path).getroot().tag == f"{SVG}svg"
    document = json.loads((run / "eval-test.json").read_text())
    matrix = np.array(document["confusion_matrix"])
    counts = svg_texts(tmp_path / "svg" / "confusion.svg")
    shown = np.array([[int(counts[f"cell-{i}-{j}"]) for j in range(10)] for i in range(10)])
    assert (shown == matrix).all() and shown.sum() == document["n"] == 359
    fractions = svg_texts(tmp_path / "svg" / "confusion_normalised.svg")
    for i in range(10):
        for j in range(10):
            assert float(fractions[f"cell-{i}-{j}"]) == pytest.approx(matrix[i, j] / matrix[i].sum(), abs=0.005)
    text = (tmp_path / "svg" / "reliability.svg").read_text()
    assert f"ECE {document['ece']:.4f}" in text
    per_class = (tmp_path / "svg" / "per_class_f1.svg").read_text()
    assert all(f">{row['f1']:.3f}<" in per_class for row in document["per_class"].values())


def test_pdf_files(cli, run: Path, tmp_path: Path) -> None:
    paths = written(cli("visualize", run, "--image-format", "pdf", "--out", tmp_path / "pdf"))
    assert [p.name for p in paths if p.suffix == ".pdf"] == [f"{name}.pdf" for name in RUN_PLOTS]
    for name in RUN_PLOTS:
        data = (tmp_path / "pdf" / f"{name}.pdf").read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")


def test_a_stale_eval_document_is_scored_again_and_files_are_reproducible(cli, run: Path) -> None:
    cli("visualize", run)
    before = {p.name: p.read_bytes() for p in (run / "plots").iterdir()}
    later = (run / "eval-test.json").stat().st_mtime_ns + 10**9
    os.utime(run / "model.safetensors", ns=(later, later))  # weights newer than the document
    assert run / "eval-test.json" in written(cli("visualize", run))
    assert {p.name: p.read_bytes() for p in (run / "plots").iterdir()} == before  # byte for byte


def test_report_is_self_contained_and_renders_in_headless_chromium(cli, run: Path, tmp_path: Path) -> None:
    executable = find_chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    cli("visualize", run)
    page = (run / "plots" / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    with Chromium(executable) as browser:
        browser.open(file_url(run / "plots" / "report.html"), width=1280, height=1600)
        state = browser.evaluate("""(async () => {
            const images = [...document.images];
            await Promise.all(images.map(i => i.decode().catch(() => null)));
            return {count: images.length,
                    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
                    requests: performance.getEntriesByType('resource').map(e => e.name),
                    title: document.title};
        })()""")
        screenshot = browser.screenshot()
    (tmp_path / "report.png").write_bytes(screenshot)
    assert state == {"count": len(RUN_PLOTS), "broken": [], "requests": [], "title": f"Run {run.name}"}
    rgb = np.asarray(Image.open(io.BytesIO(screenshot)).convert("RGB"), dtype=float)
    grey, colourful = rgb.mean(2), rgb.max(2) - rgb.min(2) > 60
    assert grey.shape == (1600, 1280)
    # Text, tables and plots, not a blank page: some contrast, ink, and the plots' coloured lines.
    assert grey.std() > 10 and (grey < 250).mean() > 0.03 and colourful.mean() > 0.002


def test_a_wide_table_scrolls_in_its_box_and_the_page_keeps_the_windows_width(tmp_path: Path) -> None:
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium is not installed")
    page = report.Report("Wide")  # as a comparison of runs whose configs differ in 40 keys
    page.add("Differences", report.table([f"section.key_{i}" for i in range(40)], [list(range(40))]))
    page.write(tmp_path / "wide.html")
    with Chromium(executable) as browser:
        browser.open(file_url(tmp_path / "wide.html"), width=1280, height=900)
        widths = browser.evaluate("""({page: document.documentElement.scrollWidth,
            window: document.documentElement.clientWidth,
            box: [...document.querySelectorAll('.scroll')].map(d => d.scrollWidth > d.clientWidth)})""")
    assert widths["page"] == widths["window"] == 1280  # the page was as wide as the table (7,000 px)
    assert widths["box"] == [True]


def test_several_runs_overlay_and_table_of_differences(cli, runs: list[Path], tmp_path: Path) -> None:
    paths = written(cli("visualize", *runs))
    out = Path("plots") / f"compare-{runs[0].name}+{runs[1].name}"
    assert paths == [out / n for n in ("loss.png", "accuracy.png", "lr.png", "runs.csv", "runs.md", "report.html")]
    for name in ("loss", "accuracy", "lr"):
        assert png_size(out / f"{name}.png") == expected_pixels(curves.OVERLAY_SIZE)
    rows = list(csv.DictReader((out / "runs.csv").open()))
    header = list(rows[0])
    assert header[:4] == ["run", "model.width", "optimizer.lr", "train.epochs"]  # what differs, nothing else
    assert "model.depth" not in header and "data.name" not in header
    for row, path in zip(rows, runs):
        summary = json.loads((path / "summary.json").read_text())
        assert row["run"] == path.name
        assert float(row["test_accuracy"]) == summary["test"]["accuracy"]
        assert float(row["test_loss"]) == summary["test"]["loss"]
        assert int(row["best_epoch"]) == summary["best"]["epoch"]
        # beside status: a pruned tune trial read "interrupted" like one stopped by Ctrl-C
        assert (
            (row["status"], row["stop_reason"])
            == (summary["status"], summary["stop_reason"])
            == ("completed", "epochs")
        )
    assert [float(r["optimizer.lr"]) for r in rows] == [1e-3, 3e-3]
    markdown = (out / "runs.md").read_text().splitlines()
    assert markdown[0].startswith("| run | model.width | optimizer.lr | train.epochs |") and len(markdown) == 4
    assert "<table>" in (out / "report.html").read_text()


def make_study(folder: Path, storage: str = "journal:study.journal", trials: int = 6) -> Path:
    """A study dir in the format `dltool tune` writes, made with Optuna directly."""
    import optuna

    folder.mkdir(parents=True)
    if storage.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        backend: object = optuna.storages.JournalStorage(
            JournalFileBackend(str(folder / storage.removeprefix("journal:")))
        )
    else:
        backend = "sqlite:///" + str(folder / storage.removeprefix("sqlite:///"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    made = optuna.create_study(
        study_name="digits-mlp-tune-1",
        storage=backend,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    made.optimize(
        lambda t: (
            1
            - abs(np.log10(t.suggest_float("optimizer.lr", 1e-4, 1e-1, log=True)) + 2.5) / 10
            + t.suggest_int("model.width", 32, 256, step=32) / 2560
        ),
        n_trials=trials,
    )
    best = made.best_trial
    (folder / "study.json").write_text(
        json.dumps(
            {
                "study_name": made.study_name,
                "storage": storage,
                "metric": "val_acc",
                "direction": "maximize",
                "n_trials": trials,
                "states": {"complete": trials},
                "sampler": "random",
                "pruner": "none",
                "best": {"trial": best.number, "value": best.value, "params": best.params},
            }
        )
    )
    (folder / "best.yaml").write_text(f"optimizer:\n  lr: {best.params['optimizer.lr']}\n")
    (folder / "trials.csv").write_text("number,value\n" + "".join(f"{t.number},{t.value}\n" for t in made.trials))
    return folder


def test_study_plots_from_a_journal_study_dir(cli, tmp_path: Path) -> None:
    folder = make_study(tmp_path / "digits-mlp-tune-1")
    paths = written(cli("visualize", folder))
    names = ["history", "importances", "parallel_coordinate", "slice"]
    assert paths == [folder / "plots" / f"{n}.png" for n in names] + [folder / "plots" / "report.html"]
    slice_size = (study.SLICE_PANEL[0] * 2 + 0.6, study.SLICE_PANEL[1])
    for name, size in zip(names, [study.HISTORY_SIZE, study.IMPORTANCES_SIZE, study.PARALLEL_SIZE, slice_size]):
        assert png_size(folder / "plots" / f"{name}.png") == expected_pixels(size), name
    page = (folder / "plots" / "report.html").read_text()
    assert "val_acc" in page and page.count("data:image/png;base64,") == 4
    loaded = study.open_study(folder)
    assert len(loaded.trials) == 6 and loaded.direction.name == "MAXIMIZE"


def test_a_study_reports_trials_as_trials_csv_lists_them(cli, tmp_path: Path) -> None:
    # The report showed Optuna's encoding of a list choice ("json:[16, 32]") and no reason for
    # a failed trial ("lost: ...", a NaN loss): trials.csv had both right.
    from dltool.tuning.space import encode_value
    from dltool.tuning.trial import stop_trial

    folder = make_study(tmp_path / "s", trials=5)
    made = study.open_study(folder)
    choices = [encode_value([8, 16]), encode_value([16, 32])]
    trials = []
    for widths in choices:
        made.enqueue_trial({"model.widths": widths})
        trials.append(made.ask())
        trials[-1].suggest_float("optimizer.lr", 1e-4, 1e-1, log=True)
        trials[-1].suggest_categorical("model.widths", choices)
        trials[-1].suggest_int("model.width", 32, 256, step=32)
    made.tell(trials[0], 0.5)
    stop_trial(made, trials[1], "lost: worker process 7 on vm is gone")
    cli("visualize", folder)
    page = (folder / "plots" / "report.html").read_text()
    assert "json:" not in page and "<td>[8, 16]</td>" in page
    assert "<td>lost: worker process 7 on vm is gone</td>" in page
    assert "<th>epochs</th><th>seconds</th><th>error</th>" in page


def test_study_loader_takes_sqlite_urls_and_creates_nothing(cli, tmp_path: Path) -> None:
    folder = make_study(tmp_path / "sqlite-study", storage="sqlite:///study.db", trials=3)
    assert len(study.open_study(folder).trials) == 3  # relative to the study dir
    cli("visualize", folder, "--format", "svg")  # 0.1.0's spelling of --image-format still works
    assert (folder / "plots" / "history.svg").is_file()
    broken = make_study(tmp_path / "no-journal")
    (broken / "study.journal").unlink()
    result = cli("visualize", broken, code=1)
    assert "study.journal is missing" in result.stderr and not (broken / "study.journal").exists()


def test_dataset_samples_and_balance(cli) -> None:
    paths = written(cli("visualize", "digits"))
    out = Path("plots") / "digits"
    assert paths == [out / "samples.png", out / "balance.png", out / "report.html"]
    assert png_size(out / "samples.png") == expected_pixels(dataset.samples_size(10))
    assert png_size(out / "balance.png") == expected_pixels(dataset.balance_size(10, 3))
    page = (out / "report.html").read_text()
    assert "1295" in page and "143" in page and "359" in page  # train, drawn val, test


def test_a_segmentation_datasets_balance_counts_pixels_and_says_so(cli, tmp_path: Path) -> None:
    root = shapes_dataset(tmp_path / "shapes", train=6, val=3, test=2)
    cli("visualize", root, "--out", "v")
    page = (Path("v") / "report.html").read_text()
    assert "<h2>Pixels per class" in page and "smallest class (pixels)" in page  # were "Samples per class"
    masks = np.zeros((2, 1000, 1000), np.uint8)  # 2,000,000 pixels of class 0
    (ax,) = dataset.balance_figure({"train": masks}, ["background", "disc"], "pixels").axes
    assert ax.get_ylabel() == "pixels"  # was "images"
    assert [text.get_text() for text in ax.texts] == ["2000000", "0"]  # was 2e+06


def test_image_folder_dataset_without_test_split(cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for index, name in enumerate(["cat", "dog", "emu"]):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for k in range(4 + index):
            Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(
                tmp_path / "pets" / name / f"{k}.png"
            )
    paths = written(cli("visualize", tmp_path / "pets", "--image-format", "svg", "--out", tmp_path / "out"))
    assert [p.name for p in paths] == ["samples.svg", "balance.svg", "report.html"]
    texts = " ".join(ET.parse(tmp_path / "out" / "balance.svg").getroot().itertext())
    assert "train" in texts and "val" in texts and "test (3)" in texts  # held out, one per class
    assert "doubles as the test split" not in (tmp_path / "out" / "report.html").read_text()


def test_a_class_name_no_font_can_draw_is_one_note_not_a_warning_per_figure(tmp_path: Path) -> None:
    # A private-use character is in no font; "猫" is in few. matplotlib warned once per
    # figure and character, with a line of dltool's source, on the user's stderr.
    rng = np.random.default_rng(0)
    for name in ["猫 \ue000", "dog"]:
        (tmp_path / "pets" / name).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(
                tmp_path / "pets" / name / f"{k}.png"
            )
    result = run_dltool("visualize", tmp_path / "pets", "--out", tmp_path / "out")
    assert "Warning" not in result.stderr and "savefig" not in result.stderr
    (note,) = [line for line in result.stderr.splitlines() if "drawn as boxes" in line]
    assert note.startswith("note: no font here has ") and "\ue000" in note
    assert "猫 \ue000" in (tmp_path / "out" / "report.html").read_text()


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    os.environ["DLTOOL_DATA"] = str(data_dir)
    config = load_config("digits-mlp", ["loss.name=mse"], {"model.name": "autoencoder", "train.epochs": 2})
    return train(config, create_run_dir(tmp_path_factory.mktemp("runs"), "digits-autoencoder")).run_dir


def test_autoencoder_run_shows_reconstructions(cli, autoencoder_run: Path) -> None:
    names = [p.name for p in written(cli("visualize", autoencoder_run))]
    assert names == ["loss.png", "lr.png", "eval-test.json", "reconstructions.png", "filters.png", "report.html"]
    size = eval_plots.reconstructions_size(RECONSTRUCTIONS_SHOWN)
    assert png_size(autoencoder_run / "plots" / "reconstructions.png") == expected_pixels(size)
    assert "psnr" in (autoencoder_run / "plots" / "report.html").read_text()


def test_unfinished_runs_name_what_is_missing(cli, runs: list[Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(runs[0] / "config.yaml", empty)
    result = cli("visualize", empty, code=1)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "nothing to plot" in result.stderr and "model.safetensors" in result.stderr
    (empty / "metrics.jsonl").write_text((runs[0] / "metrics.jsonl").read_text() + '{"epoch": 4, "trunc')
    result = cli("visualize", empty)
    assert [p.name for p in written(result)] == ["loss.png", "accuracy.png", "lr.png", "report.html"]
    assert "note: no test scores" in result.stderr and "model.safetensors" in result.stderr


def test_augmentations_grid_of_a_recipe_and_in_the_run_report(cli, run: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "flips.yaml"
    recipe.write_text("base: digits-mlp\ndata: {augment: {flip: true, vflip: true, mixup: 0.4}}\n")
    assert written(cli("visualize", recipe, "--augmentations", "--out", tmp_path / "grid")) == [
        tmp_path / "grid" / "augmentations.png"
    ]
    width, height = png_size(tmp_path / "grid" / "augmentations.png")
    assert width > 700 and height > 600  # 8 images × (1 stored + 5 draws)
    draws = augmentations.draw_rows(load_config(str(recipe)), 8, 5)
    assert len(draws.rows) == 5 and not np.array_equal(draws.rows[0], draws.rows[1])
    mixed = np.stack(draws.targets)
    assert mixed.shape == (5, 8, 10) and np.allclose(mixed.sum(-1), 1)
    # A run: the grid goes into RUN/plots, and the run's report shows it from then on.
    assert written(cli("visualize", run, "--augmentations")) == [run / "plots" / "augmentations.png"]
    cli("visualize", run)
    page = (run / "plots" / "report.html").read_text()
    assert "--augmentations" in page and page.count("data:image/png;base64,") == len(RUN_PLOTS) + 1
    assert "one run dir or recipe" in cli("visualize", run, recipe, "--augmentations", code=2).stderr


def test_a_streamed_runs_augmentations_are_cut_from_the_files(tmp_path: Path) -> None:
    # Wide photos, a crop of the whole image: the stream loader squeezes each whole file into
    # the square, where the memory loader's images hold only the centre crop (crop_pct).
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        for i in range(3):
            path = tmp_path / "photos" / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(path)
    whole = ["data.augment.random_resized_crop={scale: [1, 1], ratio: [2, 2]}", "data.image_size=16"]
    config = load_config("digits-mlp", [f"data.name={tmp_path / 'photos'}", "data.loader=stream", *whole])
    draws = augmentations.draw_rows(config, 2, 1)
    files = sorted((tmp_path / "photos").rglob("*.png"))
    squeezed = {
        path.name + path.parent.name: np.asarray(Image.open(path).resize((16, 16), Image.Resampling.BILINEAR))
        for path in files
    }
    for image in draws.rows[0]:
        assert any(np.array_equal(image.transpose(1, 2, 0), expected) for expected in squeezed.values())
    assert not any(np.array_equal(stored, row) for stored, row in zip(draws.stored, draws.rows[0], strict=True))


def test_a_streamed_runs_unreadable_file_is_left_out_of_the_augmentations_and_named(cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split, label, i in itertools.product(("train", "val"), ("a", "b"), range(3)):
        path = tmp_path / "photos" / split / label / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    (tmp_path / "photos" / "train" / "a" / "3.png").write_bytes(b"not an image")  # training skips it too
    recipe = tmp_path / "stream.yaml"
    recipe.write_text(f"base: digits-mlp\ndata: {{name: {tmp_path / 'photos'}, loader: stream, test_fraction: 0}}\n")
    result = cli("visualize", recipe, "--augmentations", "--out", tmp_path / "grid")
    assert written(result) == [tmp_path / "grid" / "augmentations.png"]
    assert "3.png: not an image" in result.stderr
    draws = augmentations.draw_rows(load_config(str(recipe)), 8, 2)
    assert len(draws.stored) == len(draws.labels) == len(draws.rows[1]) == 6  # of 7 training files


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["digits", "--image-format", "gif"], "--image-format 'gif'"),
        (["digts"], "did you mean 'digits'"),
        (["digits", "--out", "x", "--root", "nowhere", "--split", "nosplit"], "--split nosplit"),
    ],
)
def test_usage_errors(cli, args: list[str], message: str) -> None:
    assert message in cli("visualize", *args, code=2).stderr


def test_a_study_cannot_be_compared_with_runs(cli, runs: list[Path], tmp_path: Path) -> None:
    folder = make_study(tmp_path / "s", trials=2)
    assert "visualize it on its own" in cli("visualize", folder, runs[0], code=2).stderr


def test_help_imports_neither_torch_nor_matplotlib_nor_optuna() -> None:
    probe = (
        "import sys, runpy; sys.argv = ['dltool', 'visualize', '--help']\n"
        "try:\n    runpy.run_module('dltool', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'optuna') if m in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "Example:" in result.stdout and result.stderr.strip().endswith("[]")
