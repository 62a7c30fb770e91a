"""The command line itself: help, version, listing, exit codes, and a fast start."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_dltool
from dltool import __version__
from dltool.catalog import KINDS
from dltool.cli import app
from dltool.data.digits import load_digits

COMMANDS = sorted(command.name for command in app.registered_commands)


@pytest.mark.parametrize("args", [["--help"], ["--version"], *[[c, "--help"] for c in COMMANDS], ["list"]])
def test_help_version_and_list_never_import_torch(args: list[str]) -> None:
    probe = (
        "import sys, runpy; sys.argv = ['dltool', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('dltool', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code or 0\nelse:\n    code = 0\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("NO-TORCH")


# What a plain training run never uses (issue 21): each is imported where it is needed.
HEAVY = ("matplotlib", "optuna", "scipy", "sklearn", "pandas", "torchvision", "timm", "mlflow")


def test_a_plain_training_run_imports_none_of_the_heavy_packages(tmp_path) -> None:
    load_digits()  # the digits cache a second run finds: building it is scikit-learn's one use
    probe = (
        "import sys, runpy, json; sys.argv = ['dltool', *sys.argv[1:]]\n"
        "runpy.run_module('dltool', run_name='__main__')\n"
    )
    report = f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})), file=sys.stderr)"
    probe = probe.replace("runpy.run_module", f"import atexit; atexit.register(lambda: {report})\nrunpy.run_module")
    args = ["train", "digits-mlp", "--epochs", "1", "--runs-dir", str(tmp_path / "runs"), "-q"]
    result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "digits-mlp-1" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test"]["accuracy"] > 0.5  # trained, scored on test
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example(cli, command: str) -> None:
    assert "Example:" in cli(command, "--help").stdout


def test_the_command_list_shows_each_first_paragraph_unbroken() -> None:
    # typer kept the docstring's source line breaks there: "(trainable, frozen) and" ended a line.
    wide = subprocess.run(
        [sys.executable, "-m", "dltool", "--help"], capture_output=True, text=True, env=os.environ | {"COLUMNS": "400"}
    )
    rows = {line.strip("│ ").split(" ", 1)[0]: line for line in wide.stdout.splitlines() if line.startswith("│ ")}
    for command in app.registered_commands:
        first = " ".join((command.callback.__doc__ or "").split("\n\n")[0].split())
        assert first in " ".join(rows[command.name].split()), command.name


def test_no_option_help_loses_brackets_to_markup() -> None:
    # typer renders help through rich, which took tune --dashboard's 'dltool[dashboard]' for a
    # style tag and showed "pip install 'dltool'".
    import typer.main

    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        wide = subprocess.run(
            [sys.executable, "-m", "dltool", name, "--help"],
            capture_output=True,
            text=True,
            env=os.environ | {"COLUMNS": "1000"},
        )
        bracketed = [b.replace("\\", "") for o in command.params for b in re.findall(r"\w+\\?\[\w+\]", o.help or "")]
        assert [b for b in bracketed if b not in wide.stdout] == [], name


def test_only_switches_that_override_a_config_key_have_a_no_form() -> None:
    # --no-strict, --no-force, ... only widened the help: nothing sets them on to turn off.
    import typer.main

    group = typer.main.get_command(app)
    negatable = {
        (name, option.name)
        for name, command in group.commands.items()  # type: ignore[attr-defined]
        for option in command.params
        if option.secondary_opts
    }
    assert negatable == {(c, o) for c in ("train", "tune") for o in ("compile", "tensorboard")}


def test_version(cli) -> None:
    assert cli("--version").stdout.strip() == f"dltool {__version__}"


def test_list_json_has_every_kind_with_params(cli) -> None:
    listing = json.loads(cli("list", "--json").stdout)
    assert list(listing) == KINDS
    mlp = next(e for e in listing["models"] if e["name"] == "mlp")
    assert mlp["params"]["width"] == 256 and mlp["description"]
    assert any(r["name"] == "digits-mlp" for r in listing["recipes"])


def test_list_one_kind_as_tab_separated_lines(cli) -> None:
    lines = cli("list", "optimizers").stdout.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["sgd", "rmsprop", "adam", "adamw"]


def test_unknown_kind_is_a_usage_error_with_a_suggestion(cli) -> None:
    result = cli("list", "modelz", code=2)
    assert "did you mean 'models'" in result.stderr and result.stdout == ""


def test_user_errors_are_one_line_and_debug_adds_the_traceback(cli) -> None:
    result = cli("train", "digts-mlp", code=2)
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: unknown recipe 'digts-mlp'; did you mean 'digits-mlp'")
    assert result.stderr.rstrip().endswith("(see: dltool list recipes)")
    assert "Traceback" in cli("--debug", "train", "digts-mlp", code=2).stderr


def test_an_image_folder_given_as_the_recipe_says_to_use_dataset(cli, tmp_path: Path) -> None:
    # `dltool train photos/` said "config file not found: photos/" of a folder that is there.
    from PIL import Image

    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    Image.new("RGB", (32, 24)).save(folder / "cats" / "a.jpg")
    result = cli("train", f"{folder}/", code=2)
    assert result.stderr.startswith(f"error: {folder}/ is a folder, not a run dir")
    assert f"dltool train photos-resnet18 --dataset {folder}/" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "option"),
    [(["tune", "digits-mlp", "--workers", "0"], "--workers"), (["predict", "run", "x.png", "--top-k", "0"], "--top-k")],
)
def test_an_option_below_its_minimum_is_a_usage_error(cli, args: list[str], option: str) -> None:
    result = cli(*args, code=2)
    assert f"Invalid value for '{option}'" in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize(
    ("args", "usage", "error"),
    [
        (["train", "--bogus"], "dltool train [OPTIONS] [recipe]", "No such option: --bogus"),
        (["predict"], "dltool predict [OPTIONS] {target} {paths}...", "Missing argument 'target'."),
        (["--bogus"], "dltool [OPTIONS] COMMAND [ARGS]...", "No such option: --bogus"),
        (["tarin"], "dltool [OPTIONS] COMMAND [ARGS]...", "No such command 'tarin'. Did you mean 'train'?"),
    ],
)
def test_a_usage_error_in_a_pipe_is_plain_lines(args: list[str], usage: str, error: str) -> None:
    """typer drew click's own usage errors in a box of rich panel lines, in CI logs too."""
    result = run_dltool(*args, check=False)
    assert result.returncode == 2 and result.stdout == ""
    command = usage.split(" [")[0]
    assert result.stderr == f"Usage: {usage}\nTry '{command} -h' for help.\nerror: {error}\n"


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["model.depth=3", "epochs=5"], "dltool takes them as options: --set model.depth=3 --epochs 5"),  # Ultralytics
        (["--model.depth", "3"], "config keys are set with --set: --set model.depth=VALUE"),  # Lightning CLI
        (["--config", "my.yaml"], "a config file is given as the recipe: dltool COMMAND FILE.yaml"),  # timm
    ],
)
def test_other_tools_ways_of_setting_config_keys_are_answered_with_dltools(cli, args: list[str], hint: str) -> None:
    """`dltool train digits-mlp epochs=5` said only "Got unexpected extra argument(s)"."""
    for command in (["train"], ["tune", "--space", "space.yaml"]):
        line = cli(*command, "digits-mlp", *args, code=2).stderr.splitlines()[-1]
        assert line.endswith(f"; {hint}") and "Possible options" not in line


def test_a_missing_path_on_the_command_line_is_a_usage_error_naming_a_similar_one(cli, tmp_path: Path) -> None:
    """eval, predict, export and summary said "no such run dir or checkpoint" with exit 1, and
    `train --resume` "not a dltool run directory" (exit 1) of a run dir that is not there."""
    runs = tmp_path / "runs"
    (runs / "digits-mlp-2").mkdir(parents=True)
    typo = runs / "digits-mlp-3"
    commands = [["eval", typo], ["predict", typo, "x.png"], ["export", typo], ["summary", typo], ["visualize", typo]]
    for args in [*commands, ["train", "--resume", typo]]:
        line = cli(*args, code=2).stderr
        assert line.count("\n") == 1 and line.startswith(f"error: {typo}: no such"), args
    assert f"did you mean '{runs / 'digits-mlp-2'}'?" in cli("train", "--resume", typo, code=2).stderr
    assert f"did you mean '{runs / 'digits-mlp-2'}'?" in cli("eval", typo, code=2).stderr
    for args in (["eval", "missing.pt"], ["summary", "missing.pt"], ["predict", "model.onnx", "x.png"]):
        assert cli(*args, code=2).stderr.startswith(f"error: {args[1]}: no such"), args


def _foreign_options(command: str, line: str) -> list[str]:
    """The options ``line`` names that ``dltool COMMAND`` does not have; another command's
    whole command line (``dltool eval RUN --data FOLDER``) names that command's own."""
    import re

    import typer.main

    own = {o for p in typer.main.get_command(app).commands[command].params for o in [*p.opts, *p.secondary_opts]}
    line = re.sub(r"dltool (\w+)[^;,)]*", lambda m: m[0] if m[1] == command else "", line)
    return [flag for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line) if flag not in own]


def test_an_unknown_dataset_hint_names_only_options_the_command_has(cli, digits_run: Path) -> None:
    """stats and eval suggested `--dataset PATH`, an option only train and tune have."""
    cases = [
        ["stats", "digitz"],
        ["eval", digits_run, "--data", "digitz"],
        ["visualize", "digitz"],
        ["train", "digits-mlp", "--dataset", "digitz"],
    ]
    for args in cases:
        line = cli(*args, code=2).stderr
        assert line.startswith("error: ") and "did you mean 'digits'?" in line, args
        assert _foreign_options(args[0], line) == [], (args, line)
    assert "a folder of your own is named by its path" in cli("stats", "digitz", code=2).stderr
    assert "--dataset PATH for a folder of your own" in cli("train", "digits-mlp", "--dataset", "digitz", code=2).stderr


def test_every_output_option_a_read_only_error_names_is_its_commands_own() -> None:
    from dltool.cli import OUTPUT_OPTIONS

    for command, option in OUTPUT_OPTIONS.items():
        assert _foreign_options(command, option) == [], command


def test_a_dataset_folder_that_is_not_there_names_a_similar_one(cli, tmp_path: Path) -> None:
    (tmp_path / "photos" / "cats").mkdir(parents=True)
    for args in (["stats", "./photoss"], ["train", "digits-mlp", "--dataset", "./photoss"]):
        line = cli(*args, code=2).stderr
        assert line == "error: data.name: no such folder: ./photoss; did you mean 'photos'?\n", args
