"""Keypoint and regression models end to end: train, eval, predict, visualize, export, tune, API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dltool import api
from dltool.config import load_config
from dltool.data.images import decode_image
from dltool.viz import augmentations
from events import events, logs_every_epoch, scalars
from pointdata import age_and_weight_folder, points_folder, read_points, values_folder

KEYPOINTS = {
    "model.head": "keypoints",
    "loss.name": "mse",
    "optimizer.lr": 3e-3,
    "train.epochs": 10,
    "train.batch_size": 32,
    "train.monitor.metric": "val_pck",
    "data.image_size": 16,
    "data.crop_pct": 1.0,
    "data.pck_alpha": 0.1,
    "train.device": "cpu",
    "train.tensorboard": True,
}


@pytest.fixture(scope="module")
def dots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two coloured dots per image, stored at 32 px (the model sees 16 px)."""
    return points_folder(tmp_path_factory.mktemp("dots") / "dots", {"train": 2000, "val": 60, "test": 60}, scale=2)


@pytest.fixture(scope="module")
def keypoint_run(dots: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    return api.train("digits-mlp", overrides={**KEYPOINTS, "data.name": str(dots)}, runs_dir=runs).run_dir


def test_a_small_model_learns_where_the_dots_are(keypoint_run: Path, dots: Path) -> None:
    rows = [json.loads(line) for line in (keypoint_run / "metrics.jsonl").read_text().splitlines()]
    truth = np.stack(list(read_points(dots / "test" / "points.csv").values()))
    guessing = float(np.sqrt(((truth - truth.mean(0)) ** 2).sum(-1).mean()))  # the mean position, always
    assert rows[-1]["val_rmse_px"] < 0.6 * guessing and rows[-1]["val_pck"] > rows[0]["val_pck"]
    summary = json.loads((keypoint_run / "summary.json").read_text())
    assert summary["best"]["metric"] == "val_pck" and summary["test"]["pck"] > 0.3


def test_tensorboard_holds_the_point_scores_of_every_epoch_and_the_test_split(keypoint_run: Path) -> None:
    assert logs_every_epoch(keypoint_run)  # val_pck, val_nme, val_rmse_px as metrics.jsonl has them
    logged, summary = scalars(events(keypoint_run)), json.loads((keypoint_run / "summary.json").read_text())
    for key in ("pck", "nme", "rmse_px", "loss"):
        assert logged[f"test_{key}"] == [(summary["epochs_run"], pytest.approx(summary["test"][key]))]


def test_eval_rmse_is_what_the_predicted_csv_gives(keypoint_run: Path, dots: Path, cli, tmp_path: Path) -> None:
    document = json.loads(cli("eval", keypoint_run, "--json").stdout)
    assert set(document["per_point"]) == {"1", "2"} and document["n"] == 60
    assert document["pck_alpha"] == 0.1
    out = tmp_path / "predicted.csv"
    cli("predict", keypoint_run, dots / "test" / "images", "--output", out, "--workers", "0")
    predicted, truth = read_points(out), read_points(dots / "test" / "points.csv")
    assert out.read_text().startswith("path,x1,y1,x2,y2\n") and predicted.keys() == truth.keys()
    errors = np.stack([predicted[name] - truth[name] for name in truth])  # pixels of the 32 px images
    assert float(np.sqrt((errors**2).sum(-1).mean())) == pytest.approx(document["rmse_px"], abs=1e-4)
    per_point = np.sqrt((errors**2).sum(-1).mean(0))
    assert per_point == pytest.approx([document["per_point"][k]["rmse_px"] for k in ("1", "2")], abs=1e-4)


def test_predict_jsonl_and_the_python_api_give_points(keypoint_run: Path, dots: Path, cli) -> None:
    image = dots / "test" / "images" / "test-0000.png"
    line = json.loads(cli("predict", keypoint_run, image, "--format", "jsonl").stdout)
    result = api.predict(keypoint_run, image, device="cpu", workers=0)
    assert list(result.table.columns) == ["path", "x1", "y1", "x2", "y2"]
    assert result.table.iloc[0]["x2"] == pytest.approx(line["points"]["2"]["x"])
    assert "test-0000.png" in cli("predict", keypoint_run, image, "--format", "table").stdout


def test_eval_per_class_out_of_a_keypoint_run_writes_the_per_point_table(keypoint_run: Path, cli) -> None:
    for _ in range(2):  # the second replaces the first: it is a table of this kind
        cli("eval", keypoint_run, "--per-class-out", "points.parquet")  # was "(classifiers only)", exit 2
    table = pd.read_parquet("points.parquet")
    per_point = json.loads((keypoint_run / "eval-test.json").read_text())["per_point"]
    assert table.index.name == "point" and table.index.tolist() == list(per_point)
    assert table["rmse_px"].tolist() == [row["rmse_px"] for row in per_point.values()]


def test_stats_of_a_keypoint_run_and_its_weights_calls_its_names_points(keypoint_run: Path, cli) -> None:
    for target in (keypoint_run, keypoint_run / "model.safetensors"):
        lines = cli("stats", target).stderr.splitlines()
        assert [line.split()[:3] for line in lines if line.startswith(("points", "classes"))] == [
            ["points", "2:", "1,"]
        ]


def test_predict_top_k_of_a_keypoint_model_is_a_usage_error(keypoint_run: Path, dots: Path, cli) -> None:
    image = dots / "test" / "images" / "test-0000.png"
    result = cli("predict", keypoint_run, image, "--top-k", "5", code=2)  # was taken, and ignored
    assert result.stderr.strip() == "error: --top-k ranks a classifier's labels; model 'mlp' is a keypoints model"
    assert result.stdout == ""


def test_visualize_draws_the_worst_points_and_export_matches_pytorch(keypoint_run: Path, dots: Path, cli) -> None:
    out = Path(cli("visualize", keypoint_run, "--out", "viz").stdout.strip().splitlines()[-1]).parent
    assert (out / "worst_points.png").stat().st_size > 1000
    cli("export", keypoint_run, "--format", "onnx", "--output", "kp.onnx")
    sidecar = json.loads(Path("kp.onnx.json").read_text())
    assert sidecar["task"] == "keypoints" and sidecar["output"] == {
        "name": "points",
        "shape": ["batch", 4],
        "dtype": "float32",
    }
    images = dots / "test" / "images"
    onnx = api.predict("kp.onnx", images, workers=0).table
    torch_rows = api.predict(keypoint_run, images, device="cpu", workers=0).table
    np.testing.assert_allclose(onnx.iloc[:, 1:].to_numpy(float), torch_rows.iloc[:, 1:].to_numpy(float), atol=1e-3)


def test_visualize_reuses_a_current_eval_document_of_a_keypoint_run(keypoint_run: Path, cli) -> None:
    cli("eval", keypoint_run)
    document = keypoint_run / "eval-test.json"
    before = document.stat().st_mtime_ns
    assert document not in [Path(line) for line in cli("visualize", keypoint_run).stdout.splitlines()]
    assert document.stat().st_mtime_ns == before  # was scored and written again on every visualize


def test_the_report_has_the_per_point_table_that_eval_prints(keypoint_run: Path, cli) -> None:
    per_point = json.loads(cli("eval", keypoint_run, "--json").stdout)["per_point"]
    page = Path(cli("visualize", keypoint_run).stdout.splitlines()[-1]).read_text()
    table = page[page.index("<h2>Per point (test)") :]  # was not in the report at all
    for point, scores in per_point.items():
        assert f'<td>{point}</td><td class="num">{scores["n"]}</td>' in table


def test_comparing_keypoint_runs_tabulates_their_test_pck(keypoint_run: Path, tmp_path: Path, cli) -> None:
    copy = shutil.copytree(keypoint_run, tmp_path / "copy")
    cli("visualize", keypoint_run, copy, "--out", "compared")
    table = pd.read_csv(Path("compared") / "runs.csv")
    test = json.loads((keypoint_run / "summary.json").read_text())["test"]
    assert list(table.columns[-3:]) == ["test_pck", "test_rmse_px", "test_loss"]  # was test_accuracy (empty), test_loss
    assert table["test_pck"].tolist() == [test["pck"]] * 2 and table["test_rmse_px"].tolist() == [test["rmse_px"]] * 2


@pytest.mark.parametrize("head", ["keypoints", "regression"])
def test_augmentations_grid_of_a_keypoint_or_regression_config(dots: Path, tmp_path: Path, head: str, cli) -> None:
    data = dots if head == "keypoints" else values_folder(dots, tmp_path / "values")
    config = tmp_path / "config.yaml"
    augment = "{flip: true}" if head == "keypoints" else "{color_jitter: {brightness: 0.4}}"
    config.write_text(
        f"base: digits-mlp\nmodel: {{head: {head}}}\nloss: {{name: mse}}\ndata: {{name: {data}, augment: {augment}}}\n"
    )
    result = cli("visualize", config, "--augmentations", "--out", "grid")  # was an internal error
    assert result.stdout.split() == [str(Path("grid") / "augmentations.png")]
    loaded = load_config(str(config))
    drawn = augmentations.augmentations_figure(loaded, augmentations.draw_rows(loaded, 4, 2))
    tiles = [ax for ax in drawn.axes if ax.images]
    if head == "keypoints":  # the points were not drawn: nothing showed that they follow their images
        assert "not drawn" not in result.stderr and all(ax.collections for ax in tiles)
    else:
        assert "note: the images alone: regression values do not move with them" in result.stderr


def test_the_sidecar_says_what_an_exported_keypoint_models_outputs_are(keypoint_run: Path, dots: Path, cli) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    cli("export", keypoint_run, "--output", "kp.onnx")
    sidecar = json.loads(Path("kp.onnx.json").read_text())
    assert sidecar["postprocessing"].startswith("x and y of each point in the order of classes (x1, y1, x2, y2, ...)")
    assert "shares of the input's width and height (× 16 and × 16 for its pixels)" in sidecar["postprocessing"]
    image = dots / "test" / "images" / "test-0000.png"  # 32 px: the input's 16 px scaled by 2
    pixels = decode_image(str(image), channels=3, size=(16, 16), crop_pct=sidecar["crop_pct"]).astype(np.float32)
    x = (pixels / 255 - np.array(sidecar["mean"], np.float32)[:, None, None]) / np.array(sidecar["std"], np.float32)[
        :, None, None
    ]
    (shares,) = onnxruntime.InferenceSession("kp.onnx").run(None, {"images": x[None].astype(np.float32)})[0]
    line = json.loads(cli("predict", "kp.onnx", image, "--format", "jsonl").stdout)
    points = [value for point in line["points"].values() for value in (point["x"], point["y"])]
    np.testing.assert_allclose(shares * 16 * 2, points, atol=1e-3)


def test_tune_maximises_pck(dots: Path, cli, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("model.width: [64, 128]\n")
    flags = [a for key, value in {**KEYPOINTS, "train.epochs": 1}.items() for a in ("--set", f"{key}={value}")]
    study = cli("tune", "digits-mlp", "--space", space, "--dataset", dots, *flags, "--trials", "2").stdout.strip()
    record = json.loads((Path(study) / "study.json").read_text())
    assert (record["metric"], record["direction"]) == ("val_pck", "maximize")


def regression(data: Path) -> dict[str, object]:
    overrides = {**KEYPOINTS, "model.head": "regression", "train.monitor.metric": "val_r2", "data.name": str(data)}
    del overrides["data.pck_alpha"]
    return overrides


def test_regression_on_named_targets(dots: Path, tmp_path: Path, cli) -> None:
    overrides = regression(values_folder(dots, tmp_path / "values"))
    run = api.train("digits-mlp", overrides=overrides, runs_dir=tmp_path / "runs").run_dir
    document = api.evaluate(run, device="cpu").document
    assert document["r2"] > 0.5 and document["per_target"]["red_y"]["n"] == 48
    line = json.loads(cli("predict", run, dots / "test" / "images" / "test-0001.png", "--format", "jsonl").stdout)
    assert set(line["values"]) == {"red_x", "red_y"}
    cli("visualize", run, "--out", tmp_path / "plots")
    assert {"predicted.png", "report.html"} <= {p.name for p in (tmp_path / "plots").iterdir()}
    quantized = api.export_model(run, int8=True, max_drop=0.5)  # RMSE: lower is better
    assert quantized.int8 is not None and (quantized.int8.score, quantized.int8.higher_is_better) == ("rmse", False)
    assert quantized.int8.float_score == pytest.approx(document["rmse"])
    int8_line = json.loads(
        cli("predict", quantized.path, dots / "test" / "images" / "test-0001.png", "--format", "jsonl").stdout
    )
    assert set(int8_line["values"]) == {"red_x", "red_y"}


def shifted(folder: Path, offset: float) -> Path:
    """``folder``'s targets moved ``offset`` away from zero (ages, prices: far from a fresh head's 0)."""
    for table in folder.glob("*/targets.csv"):
        frame = pd.read_csv(table)
        frame[frame.columns[1:]] += offset
        table.write_text(frame.to_csv(index=False))
    return folder


def test_a_regression_head_reaches_targets_far_from_zero(dots: Path, tmp_path: Path, cli) -> None:
    # The head started at 0 and took a step of about lr at a time: after 10 epochs its outputs
    # were still hundreds below targets near 1,000 (R² far below 0). It now learns standardised
    # values, mapped to the targets' units inside the model with the training split's moments.
    from safetensors.torch import load_file

    folder = shifted(values_folder(dots, tmp_path / "values"), 1000.0)
    flags = [a for key, value in regression(folder).items() for a in ("--set", f"{key}={value}")]
    result = cli("train", "digits-mlp", *flags, "--runs-dir", tmp_path / "runs")
    run = Path(result.stdout.strip())
    assert api.evaluate(run, device="cpu").document["r2"] > 0.5
    assert "outputs scaled to the targets' units" in result.stderr
    state, targets = load_file(run / "model.safetensors"), pd.read_csv(folder / "train" / "targets.csv")
    assert state["target_mean"].tolist() == pytest.approx(targets[["red_x", "red_y"]].mean().tolist())
    assert state["target_std"].tolist() == pytest.approx(targets[["red_x", "red_y"]].std(ddof=0).tolist())


def test_a_small_target_beside_a_large_one_trains_as_well(tmp_path: Path) -> None:
    # The loss was measured in the targets' units: weights in grams (sd 5,800) outweighed ages
    # in years (sd 11.5) 250,000 times, and the ages hardly trained (test R² 0.49 against the
    # weights' 0.98). Each error is now measured in its target's standard deviations.
    folder = age_and_weight_folder(tmp_path / "people", {"train": 96, "val": 32, "test": 32})
    overrides = {"data.name": str(folder), "model.head": "regression", "train.epochs": 15, "train.device": "cpu"}
    run = api.train("digits-mlp", overrides=overrides, runs_dir=tmp_path / "runs").run_dir
    per_target = api.evaluate(run, device="cpu").document["per_target"]
    assert per_target["age"]["r2"] > 0.9 and per_target["weight"]["r2"] > 0.9
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert first["train_loss"] < 10  # standard deviations squared, not grams squared


def test_a_regressions_val_test_and_eval_losses_are_in_standard_deviations_as_its_train_loss(tmp_path: Path) -> None:
    # train_loss measured each error in its target's standard deviations, val_loss and the
    # test and eval losses in the targets' own units: on grams, curves a million apart.
    from safetensors.torch import load_file

    folder = age_and_weight_folder(tmp_path / "people", {"train": 48, "val": 16, "test": 16})
    overrides = {"data.name": str(folder), "model.head": "regression", "train.epochs": 2, "train.device": "cpu"}
    run = api.train("digits-mlp", overrides=overrides, runs_dir=tmp_path / "runs").run_dir
    units = load_file(run / "model.safetensors")["target_std"].tolist()
    document = api.evaluate(run, device="cpu").document
    rows = [document["per_target"][name] for name in ("age", "weight")]
    squared = sum(row["rmse"] ** 2 * row["n"] / unit**2 for row, unit in zip(rows, units))
    assert document["loss"] == pytest.approx(squared / sum(row["n"] for row in rows))
    assert json.loads((run / "summary.json").read_text())["test"]["loss"] == pytest.approx(document["loss"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(record["val_loss"] < 10 and record["train_loss"] < 10 for record in records)


def test_fine_tuning_on_other_targets_scales_to_them(dots: Path, tmp_path: Path) -> None:
    # The source's head is left out for other target names; its scale, fitted to its own
    # targets, goes with it.
    from safetensors.torch import load_file

    one_epoch = {"train.epochs": 1, "train.tensorboard": False}
    source = api.train(
        "digits-mlp", overrides={**regression(values_folder(dots, tmp_path / "a")), **one_epoch}, runs_dir=tmp_path
    ).run_dir
    other = shifted(values_folder(dots, tmp_path / "b", "left,right"), 500.0)
    tuned = api.train(
        "digits-mlp",
        overrides={**regression(other), **one_epoch, "model.init_from": str(source)},
        runs_dir=tmp_path,
    ).run_dir
    means = pd.read_csv(other / "train" / "targets.csv")[["left", "right"]].mean().tolist()
    assert load_file(tuned / "model.safetensors")["target_mean"].tolist() == pytest.approx(means)


def test_fine_tuning_on_the_same_targets_names_the_scale_its_source_brought(tmp_path: Path, cli) -> None:
    # The log named the moments of the new training split, which the source's head and scale
    # then replaced: ages 140 ± 11 announced, 40 ± 11 used.
    counts = {"train": 24, "val": 8, "test": 8}
    flags = ["--set", "model.head=regression", "--set", "train.epochs=1", "--device", "cpu"]
    source = cli("train", "digits-mlp", "--dataset", age_and_weight_folder(tmp_path / "a", counts), *flags)
    older = shifted(age_and_weight_folder(tmp_path / "b", counts, seed=2), 100.0)
    init = ["--set", f"model.init_from={source.stdout.strip()}"]
    tuned = cli("train", "digits-mlp", "--dataset", older, *flags, *init).stderr
    line = next(ln for ln in tuned.splitlines() if ln.startswith("outputs scaled"))
    assert f"{Path(source.stdout.strip()).name}'s head learnt them (mean ± sd: age 4" in line
    assert "this training split's: age 1" in line


def test_target_moments_leave_missing_values_out_and_keep_a_unit_scale_without_spread() -> None:
    from dltool.models.target_scale import target_moments

    mean, std = target_moments(np.array([[1.0, 5.0, np.nan], [5.0, 5.0, np.nan], [np.nan, 5.0, np.nan]]))
    assert (mean.tolist(), std.tolist()) == ([3.0, 5.0, 0.0], [2.0, 1.0, 1.0])


def test_weights_saved_before_outputs_were_scaled_still_load(dots: Path, tmp_path: Path, cli) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    overrides = {**regression(values_folder(dots, tmp_path / "values")), "train.epochs": 1}
    run = api.train("digits-mlp", overrides=overrides, runs_dir=tmp_path / "runs").run_dir
    weights = run / "model.safetensors"
    with safe_open(str(weights), "pt") as stored:
        tensors = {k: stored.get_tensor(k) for k in stored.keys() if not k.startswith("target_")}  # noqa: SIM118
        metadata = stored.metadata()
    save_file(tensors, str(weights), metadata)
    line = json.loads(cli("predict", run, dots / "test" / "images" / "test-0001.png", "--format", "jsonl").stdout)
    assert set(line["values"]) == {"red_x", "red_y"}  # the head's own outputs, unscaled


def test_predict_writes_a_target_named_label_to_parquet_as_numbers(dots: Path, tmp_path: Path, cli) -> None:
    # Parquet's column types went by name: a target called "label" was made a text column,
    # and writing its numbers failed with a pyarrow traceback.
    overrides = {**regression(values_folder(dots, tmp_path / "values", "label,red_y")), "train.epochs": 1}
    run = api.train("digits-mlp", overrides=overrides, runs_dir=tmp_path / "runs").run_dir
    cli("predict", run, dots / "test" / "images", "--output", tmp_path / "rows.parquet")
    rows = pd.read_parquet(tmp_path / "rows.parquet")
    assert list(rows.columns) == ["path", "label", "red_y"] and len(rows) == 60
    assert rows["label"].dtype == rows["red_y"].dtype == np.float64


@pytest.mark.parametrize(
    ("head", "headline"),
    [
        ("keypoints", "PCK {pck:.4f}, RMSE (px) {rmse_px:.4f}"),
        ("regression", "RMSE {rmse:.4f}, MAE {mae:.4f}, R² {r2:.4f}"),
    ],
)
def test_train_closes_with_the_tasks_headline_test_scores(
    dots: Path, tmp_path: Path, cli, head: str, headline: str
) -> None:
    overrides = (
        {**KEYPOINTS, "data.name": str(dots)}
        if head == "keypoints"
        else regression(values_folder(dots, tmp_path / "values"))
    )
    overrides |= {"train.epochs": 1, "train.tensorboard": False}
    flags = [a for key, value in overrides.items() for a in ("--set", f"{key}={value}")]
    result = cli("train", "digits-mlp", *flags, "--runs-dir", tmp_path / "runs")
    test = json.loads((Path(result.stdout.strip()) / "summary.json").read_text())["test"]
    closing = result.stderr.strip().splitlines()[-1]
    assert closing.endswith(f"; test {headline.format(**test)} (n=60)"), closing
