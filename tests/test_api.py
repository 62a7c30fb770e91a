"""The Python API (``from dltool import train, evaluate, predict, tune``), used without the CLI:
the same files as the commands write, results to read, errors to catch, nothing printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from PIL import Image

import dltool
from conftest import StopAfter, metrics_without_times
from dltool import evaluate, export_model, predict, resume, train, tune
from dltool.errors import CheckpointError, ConfigError, DatasetError, UnknownNameError, UsageError
from studies import study_json, trials_csv

QUICK = {"train.epochs": 2, "train.seed": 0}


@pytest.fixture
def run(isolated: Path) -> Path:
    return train("digits-mlp", overrides=QUICK).run_dir


def test_importing_dltool_and_its_api_never_imports_torch() -> None:
    probe = (
        "import sys, dltool; from dltool import train, evaluate, predict, tune, Predictions; "
        "assert 'train' in dir(dltool); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        dltool.trian  # noqa: B018


def test_train_writes_the_run_the_command_writes_and_prints_nothing(cli, capfd, isolated: Path) -> None:
    result = train("digits-mlp", overrides={**QUICK, "model.width": 64})
    assert capfd.readouterr() == ("", "")
    assert result.run_dir == Path("runs/digits-mlp-1") and result.status == "completed"
    assert result.summary == json.loads((result.run_dir / "summary.json").read_text())
    assert result.best == result.summary["best"] and result.best["epoch"] in (1, 2)
    assert result.test is not None and result.test["n"] == 359 and 0 < result.test["accuracy"] <= 1
    assert result.metrics["epoch"].tolist() == [1, 2]
    assert result.metrics.to_dict("records") == [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    command = Path(
        cli("train", "digits-mlp", "--epochs", 2, "--seed", 0, "--set", "model.width=64", "-q").stdout.strip()
    )
    assert command == Path("runs/digits-mlp-2")
    files = {p.relative_to(command) for p in command.rglob("*")}
    assert files == {p.relative_to(result.run_dir) for p in result.run_dir.rglob("*")}
    assert yaml.safe_load((command / "config.yaml").read_text()) == yaml.safe_load(
        (result.run_dir / "config.yaml").read_text()
    )
    assert metrics_without_times(command) == metrics_without_times(result.run_dir)


def test_train_options_name_runs_dir_and_a_none_value(isolated: Path) -> None:
    result = train(
        "digits-mlp",
        overrides={"train.epochs": 1, "train.early_stopping.patience": None, "train.limit_batches": 2},
        name="mine",
        runs_dir=isolated / "elsewhere",
    )
    assert result.run_dir == isolated / "elsewhere" / "mine"
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["train"]["early_stopping"]["patience"] is None
    again = train(result.run_dir, overrides={"train.epochs": 1, "train.limit_batches": 2}, runs_dir="elsewhere")
    assert again.run_dir == Path("elsewhere/mine-1")  # named after the run it started from, as the command does


def test_errors_name_the_api_s_keywords_in_python_and_the_flags_on_the_command_line(cli, isolated: Path) -> None:
    # From Python they said "choose another --name or --resume it" and "fixed by --lr": flags
    # that a script has not got.
    quick = {"train.epochs": 1, "train.limit_batches": 2}
    train("digits-mlp", overrides=quick, name="mine")
    with pytest.raises(UsageError) as taken:
        train("digits-mlp", overrides=quick, name="mine")
    assert "choose another name=... or dltool.resume('runs/mine') to go on with it" in str(taken.value)
    refused = cli("train", "digits-mlp", "--name", "mine", code=2).stderr
    assert "choose another --name or --resume runs/mine to go on with it" in refused
    space = {"optimizer.lr": [1.0e-3, 1.0e-2]}
    with pytest.raises(UsageError) as overlap:
        tune("digits-mlp", space=space, overrides={"optimizer.lr": 0.1, **quick})
    assert "optimizer.lr: both fixed by overrides['optimizer.lr'] and tuned" in str(overlap.value)
    with pytest.raises(UsageError, match=r"^workers=0: at least 1$"):
        tune("digits-mlp", space=space, workers=0)
    for error in (taken, overlap):
        assert "--" not in str(error.value)
    (isolated / "space.yaml").write_text(yaml.safe_dump(space))
    assert (
        "both fixed by --lr and tuned"
        in cli("tune", "digits-mlp", "--space", "space.yaml", "--lr", "0.1", code=2).stderr
    )


def test_tune_trials_hold_list_choices_as_lists_as_best_does(isolated: Path) -> None:
    # result.trials read trials.csv as it is: '[2, 4]', a string, where result.best had [2, 4].
    space = {"scheduler.name": ["multistep"], "scheduler.milestones": [[2, 4], [3]]}
    quick = {"train.epochs": 2, "train.limit_batches": 2}
    result = tune("digits-mlp", space=space, sampler="grid", trials=2, overrides=quick)
    assert result.trials["scheduler.milestones"].tolist() == [[2, 4], [3]]
    assert result.best is not None and result.best["params"]["scheduler.milestones"] in ([2, 4], [3])
    assert result.trials["state"].tolist() == ["COMPLETE", "COMPLETE"]


def test_resume_continues_a_stopped_run_to_the_run_it_would_have_been(isolated: Path) -> None:
    whole = train("digits-mlp", overrides={**QUICK, "train.epochs": 3})
    stopped = train("digits-mlp", overrides={**QUICK, "train.epochs": 3}, stop=StopAfter(25))  # mid-epoch 2
    # Set from Python, not by a signal: "signal" said otherwise.
    assert stopped.status == "interrupted" and stopped.summary["stop_reason"] == "stopped"
    resumed = resume(stopped.run_dir)
    assert resumed.status == "completed" and resumed.run_dir == stopped.run_dir
    assert (resumed.run_dir / "model.safetensors").read_bytes() == (whole.run_dir / "model.safetensors").read_bytes()
    assert resume(resumed.run_dir, epochs=4).summary["epochs_run"] == 4
    with pytest.raises(UsageError, match="train.epochs"):
        resume(resumed.run_dir, epochs=0)


def test_resume_of_a_run_whose_image_folder_moved_takes_the_new_place(isolated: Path) -> None:
    # `dltool train --resume RUN --dataset NEW` had no Python counterpart: resume() took no dataset.
    for label in ("cat", "dog"):
        (isolated / "photos" / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 200 if label == "cat" else 0, 9)).save(
                isolated / "photos" / label / f"{i}.png"
            )
    run = train("digits-mlp", overrides={**QUICK, "train.epochs": 1, "data.name": isolated / "photos"}).run_dir
    (isolated / "photos").rename(isolated / "moved")
    with pytest.raises(DatasetError, match="the run's image folder is gone"):
        resume(run, epochs=2)
    resumed = resume(run, epochs=2, dataset=isolated / "moved")
    assert resumed.status == "completed" and resumed.summary["epochs_run"] == 2


def test_train_errors_are_dltool_errors_raised_before_any_dir_is_made(isolated: Path) -> None:
    with pytest.raises(ConfigError, match="optimizer.lrr: unknown key; did you mean 'lr'"):
        train("digits-mlp", overrides={"optimizer.lrr": 0.1})
    with pytest.raises(UnknownNameError, match="did you mean 'digits-mlp'"):
        train("digts-mlp")
    with pytest.raises(UsageError, match="not available here"):
        train("digits-mlp", overrides={"train.device": "cuda:7"})
    assert not Path("runs").exists()


def test_evaluate_writes_the_document_the_command_prints(cli, capfd, run: Path) -> None:
    result = evaluate(run)
    assert capfd.readouterr() == ("", "")
    assert result.path == run / "eval-test.json"
    assert result.document == json.loads(result.path.read_text())
    assert result.document["n"] == 359 and result.document["split"] == "test"
    assert result.document["accuracy"] == pytest.approx(
        json.loads((run / "summary.json").read_text())["test"]["accuracy"]
    )
    assert json.loads(cli("eval", run, "--json").stdout) == result.document
    per_class = result.per_class
    assert per_class.index.tolist() == json.loads((run / "classes.json").read_text())
    assert per_class["support"].sum() == 359
    assert per_class.to_dict("index") == result.document["per_class"]
    assert evaluate(run, split="val", checkpoint="last").path == run / "checkpoints" / "last.pt.eval-val.json"


def test_evaluate_errors(run: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="checkpoint 'worst': expected best or last"):
        evaluate(run, checkpoint="worst")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="tta 'twice': expected none or flip"):
        evaluate(run, tta="twice")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="device 'gpu': expected auto, cpu, cuda, cuda:N or mps"):
        evaluate(run, device="gpu")
    with pytest.raises(CheckpointError, match="no such run dir or checkpoint"):
        evaluate(tmp_path / "nothing")


def test_predict_labels_images_written_by_the_test(cli, capfd, run: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    folder = tmp_path / "images"
    folder.mkdir()
    digits = load_digits()
    for i in range(6):
        Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not an image")

    result = predict(run, [folder], top_k=2)
    assert capfd.readouterr() == ("", "")
    assert [Path(r.path).name for r in result.rows] == [f"{i}.png" for i in range(6)]
    assert [Path(u.path).name for u in result.unreadable] == ["broken.png"]
    assert all(len(r.top) == 2 and r.label == r.top[0][0] and 0 < r.score <= 1 for r in result.rows)
    assert sum(r.label == str(digits.target[i]) for i, r in enumerate(result.rows)) >= 3
    lines = cli("predict", run, folder, "--format", "jsonl", "--top-k", 2).stdout.splitlines()
    assert [(r.path, r.label, pytest.approx(r.score)) for r in result.rows] == [
        (d["path"], d["label"], d["score"]) for d in map(json.loads, lines)
    ]
    table = result.table
    assert table.columns.tolist() == ["path", "label", "score", "top1_label", "top1_score", "top2_label", "top2_score"]
    assert table[["path", "label", "score"]].values.tolist() == [[r.path, r.label, r.score] for r in result.rows]
    assert table["top2_score"].tolist() == [r.top[1][1] for r in result.rows]
    single = predict(run, folder / "0.png")  # one path, not its characters
    assert [r.path for r in single.rows] == [str(folder / "0.png")] and len(single.rows[0].top) == 3


def test_predict_takes_images_in_memory_as_their_files_give_them(run: Path, tmp_path: Path) -> None:
    # predict took paths only: a PIL image, an array or a tensor was a TypeError ("'Image'
    # object is not iterable", "expected str, bytes or os.PathLike object, not ndarray").
    import torch

    pixels = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    alone = predict(run, tmp_path / "a.png").rows[0].top
    expected = [(label, pytest.approx(p, abs=1e-6)) for label, p in alone]  # a batch adds in another order
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)  # (C, H, W), as torchvision's
    given = [Image.open(tmp_path / "a.png"), pixels, pixels / 255, tensor, tensor / 255, np.stack([pixels] * 2)]
    result = predict(run, given)
    assert [r.path for r in result.rows] == [f"<image {k}>" for k in range(7)]
    assert all(r.top == expected for r in result.rows)
    assert predict(run, torch.stack([tensor] * 2)).table["path"].tolist() == ["<image 0>", "<image 1>"]
    mixed = predict(run, [pixels, tmp_path / "a.png", pixels[..., 0]])
    assert [r.path for r in mixed.rows] == ["<image 0>", str(tmp_path / "a.png"), "<image 1>"]
    for bad, message in [
        ((tensor - 128.0) / 64, "inputs: image pixels from -2 to 1.98438; expected 0..255 .* not normalised"),
        (np.stack([pixels[..., 0]] * 2), r"inputs: an image array of shape \(2, 12, 20\); .* images\[..., None\]"),
        ([None], "inputs: NoneType None: expected an image file, folder or glob pattern"),
    ]:
        with pytest.raises(UsageError, match=message):
            predict(run, bad)
    with pytest.raises(UsageError, match="save images in memory to files first"):
        dltool.segment(run, pixels, tmp_path / "masks")


def test_predict_refuses_no_inputs_and_counts_the_command_refuses(run: Path, tmp_path: Path) -> None:
    image = tmp_path / "0.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    with pytest.raises(UsageError, match="inputs: no images given"):
        predict(run, [])  # a filtered list that came out empty: not "nothing predicted, all is well"
    for keyword, value, expected in [
        ("top_k", 0, "top_k 0: expected a whole number of at least 1"),
        ("top_k", -1, "top_k -1: expected a whole number of at least 1"),
        ("batch_size", 0, "batch_size 0: expected a whole number of at least 1"),
        ("batch_size", -3, "batch_size -3: expected a whole number of at least 1"),
        ("workers", -1, "workers -1: expected a whole number of at least 0"),
    ]:
        with pytest.raises(UsageError, match=expected):
            predict(run, image, **{keyword: value})
    with pytest.raises(UsageError, match="batch_size 0: expected a whole number of at least 1"):
        evaluate(run, batch_size=0)


def test_export_writes_the_file_the_command_writes_and_quantizes_on_request(capfd, run: Path, tmp_path: Path) -> None:
    result = export_model(run, output=tmp_path / "digits.onnx")
    assert result.path == tmp_path / "digits.onnx" and result.int8 is None and result.max_abs_diff <= 1e-4
    quantized = export_model(run, int8=True, calibration=64)
    assert quantized.path == run / "export" / "model.int8.onnx" and quantized.int8 is not None
    assert quantized.int8.calibration_images == 64 and quantized.int8.drop <= 0.01
    assert capfd.readouterr() == ("", "")
    assert [r.label for r in predict(quantized.path, tmp_path / "nothing-*.png").rows] == []
    with pytest.raises(UsageError, match="only ONNX files are quantized"):
        export_model(run, to="torchscript", int8=True)


def test_tune_runs_a_small_study_from_a_mapping(capfd, isolated: Path) -> None:
    verbosity = optuna.logging.get_verbosity()
    result = tune(
        "digits-mlp",
        space={"optimizer.lr": [1.0e-3, 1.0e-2]},
        sampler="grid",
        pruner="none",
        trials=2,
        overrides={"train.epochs": 1, "train.limit_batches": 3, "train.seed": 0},
    )
    assert capfd.readouterr() == ("", "")
    assert optuna.logging.get_verbosity() == verbosity  # Optuna's logging is left as it was
    assert result.study_dir == Path("runs/digits-mlp-tune-1") and not result.interrupted
    assert result.study == study_json(result.study_dir)
    assert result.study["states"]["COMPLETE"] == 2 and result.study["seed"] == 0
    assert result.best == result.study["best"] and result.best["params"]["optimizer.lr"] in (1.0e-3, 1.0e-2)
    assert [row["optimizer.lr"] for row in trials_csv(result.study_dir)] == ["0.001", "0.01"]
    assert result.trials["optimizer.lr"].tolist() == [1.0e-3, 1.0e-2]
    assert result.trials["state"].tolist() == ["COMPLETE", "COMPLETE"]
    best = yaml.safe_load((result.study_dir / "best.yaml").read_text())
    assert best["optimizer"]["lr"] == result.best["params"]["optimizer.lr"]
    assert (result.study_dir / result.best["run_dir"] / "model.safetensors").is_file()


def test_a_user_s_mypy_sees_the_api_s_types(isolated: Path) -> None:
    # Without the PEP 561 marker (py.typed) mypy skipped dltool as untyped: every result was
    # Any, and --strict refused the import.
    (isolated / "user.py").write_text(
        "from dltool import evaluate, train\nrun = train('digits-mlp')\nstatus: int = run.status\nevaluate(run)\n"
    )
    # The heavy libraries skipped: only dltool's own annotations are in question.
    skip = "torch.*,torchvision.*,pandas.*,numpy.*,optuna.*,PIL.*,pydantic.*,matplotlib.*"
    (isolated / "mypy.ini").write_text(f"[mypy]\n[mypy-{skip}]\nfollow_imports = skip\n")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", "/dev/null", "user.py"],
        capture_output=True,
        text=True,
    )
    assert "py.typed" not in checked.stdout
    assert 'expression has type "str", variable has type "int"' in checked.stdout
    assert "Found 1 error" in checked.stdout  # evaluate(run): a result is a run, typed as such


def test_train_leaves_the_caller_s_random_generators_as_they_were(isolated: Path) -> None:
    # A run seeds Python's, NumPy's and torch's generators with train.seed; they stayed so, and
    # a script's own draws after dltool.train() were those of seed 0, whatever it had seeded.
    import random

    import torch

    def draws() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    def seed(value: int) -> None:
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)

    seed(123)
    expected = draws()
    seed(123)
    train("digits-mlp", overrides={"train.epochs": 1, "train.limit_batches": 2, "train.seed": 0})
    assert draws() == expected


def test_stats_summary_and_visualize_from_python_return_what_the_commands_show(cli, capfd, run: Path) -> None:
    # There was no Python stats, summary or visualize; dltool.viz.visualize("runs/x") read the
    # run's name as a list of one-letter targets ("r: not a run dir"), and its errors named flags.
    from dltool import stats_of, summary, visualize

    drawn = visualize(run, out="plots")
    assert drawn.written[-1] == Path("plots/report.html") and drawn.written[-1].is_file()
    assert Path("svg/confusion.svg") in visualize([str(run)], out="svg", image_format="svg").written
    assert summary(str(run), depth=1).to_dict() == json.loads(cli("summary", run, "--depth", 1, "--json").stdout)
    assert stats_of(run) == json.loads(cli("stats", run, "--json").stdout)
    assert stats_of("digits", split="val")["splits"]["val"]["n"] == 143
    capfd.readouterr()
    exported = export_model(run).path
    for call, message in [
        (lambda: visualize(run, root="x"), "root=... does not apply to a run"),
        (lambda: visualize(run, feature_maps="1"), "feature_maps and image go together"),
        (lambda: visualize(run, feature_maps="x", image="a.png"), "image='a.png': no such file"),
        (lambda: visualize(run, augmentations=True, split="val"), "split=... does not apply to augmentations=True"),
        (lambda: visualize(run, image_format="gif"), "image_format='gif': expected one of png, svg, pdf"),
        (lambda: summary(exported), r"exported model; .*: dltool.summary\('.*model.safetensors'\), the weights"),
        (lambda: summary(run, depth=0), "depth 0: expected a whole number of at least 1"),
        (lambda: visualize(run, batch_size=-2), "batch_size -2: expected a whole number of at least 1"),
    ]:
        with pytest.raises(UsageError, match=message) as error:
            call()
        assert "--" not in str(error.value)
    assert capfd.readouterr() == ("", "")


def test_train_takes_a_config_loaded_and_changed_in_python(isolated: Path) -> None:
    # A Config from load_config was a TypeError ("expected str, bytes or os.PathLike object,
    # not Config"): a script that loaded, checked and changed one had to write it to YAML first.
    from dltool.config import load_config

    config = load_config("digits-mlp", flags={"train.epochs": 1, "train.limit_batches": 2})
    wider = config.model_copy(update={"model": config.model.model_copy(update={"width": 32})})
    result = train(wider, overrides={"train.seed": 7})
    assert result.run_dir == Path("runs/config-1") and result.status == "completed"
    written = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert written["model"] == wider.to_dict()["model"] and written["model"]["width"] == 32
    assert written["train"] == {**wider.to_dict()["train"], "seed": 7}
    assert load_config(wider).to_dict() == wider.to_dict()
    with pytest.raises(ConfigError, match="train.epochs"):
        train(config, overrides={"train.epochs": 0})


def test_overrides_that_are_no_mapping_of_dotted_keys_are_a_usage_error(isolated: Path) -> None:
    # A list of --set strings was an AttributeError ("'list' object has no attribute 'items'"),
    # a key that is no text another ("'int' object has no attribute 'split'").
    expected = r"overrides .*: expected a mapping of dotted config keys to values"
    for overrides in (["train.epochs=1"], {1: 2}):
        with pytest.raises(UsageError, match=expected):
            train("digits-mlp", overrides=overrides)
        with pytest.raises(UsageError, match=expected):
            tune("digits-mlp", space={"optimizer.lr": [0.1]}, overrides=overrides)
    assert not Path("runs").exists()


def test_a_run_s_result_is_a_run_for_evaluate_predict_export_and_resume(isolated: Path) -> None:
    # The README's evaluate(run.run_dir) failed a user's mypy (run_dir is Path | None: None on
    # torchrun's other ranks); the result itself is now taken where a run is.
    result = train("digits-mlp", overrides={"train.epochs": 1, "train.limit_batches": 2})
    assert evaluate(result).path == result.run_dir / "eval-test.json"
    assert predict(result, np.zeros((8, 8), np.uint8)).rows[0].path == "<image 0>"
    assert export_model(result).path == result.run_dir / "export" / "model.onnx"
    assert resume(result, epochs=2).summary["epochs_run"] == 2
