"""Hostile and careless input (issue 18, items 2-5 and 14): YAML bombs and deep nests,
non-finite and huge numbers, a diverging loss, outputs aimed at what must not be replaced.
Each is refused with one line, quickly and in bounded memory; docs/promises.md lists them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from dltool.cli import DltoolGroup
from dltool.config import load_config
from dltool.config.schema import Config
from dltool.config.validate import DISPATCHED
from dltool.engine import train
from dltool.rundir import create_run_dir


def laughs(levels: int = 9) -> str:
    """A billion-laughs value in flow YAML: each anchor repeats the one before nine times."""
    items = ["&a0 [" + ", ".join(["lol"] * 9) + "]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "[" + ", ".join(items) + "]"


BOMBED_CONFIGS = {
    "base": f"base: {laughs()}\n",
    "data": f"data: {laughs()}\n",
    "train.epochs": f"train:\n  epochs: {laughs()}\n",
    "model.widths": f"model:\n  name: cnn\n  widths: {laughs()}\n",
    "data.mean": f"data:\n  mean: {laughs()}\n  std: [1.0]\n",
}


def run_bounded(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with at most 1 GB of heap and 60 s: today's alias
    bombs grew past 3 GB in 37-91 s; refused ones end in about a second."""
    limit = "import resource; resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))\n"
    return subprocess.run(
        [sys.executable, "-c", limit + textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_alias_bomb_in_config_is_refused_quickly(tmp_path: Path) -> None:
    for where, text in BOMBED_CONFIGS.items():
        (tmp_path / f"{where}.yaml").write_text(text)
    result = run_bounded(f"""
        import json
        from pathlib import Path
        from dltool.config import load_config
        from dltool.errors import ConfigError
        messages = {{}}
        for path in sorted(Path({str(tmp_path)!r}).glob("*.yaml")):
            try:
                load_config(str(path))
            except ConfigError as error:
                messages[path.stem] = str(error)
        print(json.dumps(messages))
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    messages = json.loads(result.stdout)
    assert set(messages) == set(BOMBED_CONFIGS)
    for where, message in messages.items():
        assert "alias" in message and len(message) < 300, (where, message)


def test_alias_bomb_in_set_is_refused() -> None:
    result = run_bounded(f"""
        from dltool.config import load_config
        from dltool.errors import ConfigError
        try:
            load_config("digits-mlp", ["data.mean={laughs()}"])
        except ConfigError as error:
            print(error)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("--set data.mean: refused:") and "alias" in result.stdout


def test_alias_bomb_in_tune_space_is_refused(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(f"model.activation: {laughs()}\n")
    result = run_bounded(f"""
        from dltool.config import load_config
        from dltool.errors import ConfigError
        from dltool.tuning.space import load_space
        try:
            load_space({str(space)!r}, load_config("digits-mlp").to_dict())
        except ConfigError as error:
            print(error)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "alias" in result.stdout and len(result.stdout) < 300


def test_quoted_values_are_truncated(cli, tmp_path: Path) -> None:
    huge = [["x" * 1000] * 50] * 50  # 2,550 values: within the node budget, too long to quote
    (tmp_path / "c.yaml").write_text(json.dumps({"data": {"mean": huge, "std": [1.0]}}))
    (tmp_path / "s.yaml").write_text(json.dumps({"model.activation": [huge, huge]}))
    assert len(cli("train", tmp_path / "c.yaml", code=2).stderr) < 600  # three problems quoted, not 2.5 MB
    stderr = cli("tune", "digits-mlp", "--space", tmp_path / "s.yaml", code=2).stderr
    assert "repeat" in stderr and len(stderr) < 400
    from dltool.errors import quote

    assert len(quote("y" * 10_000)) <= 100


@pytest.mark.parametrize(
    "place",
    [
        ["train", "{path}"],
        ["train", "digits-mlp", "--set", "data.mean={nest}"],
        ["tune", "digits-mlp", "--space", "{path}"],
    ],
)
def test_deep_yaml_is_one_line(cli, tmp_path: Path, place: list[str]) -> None:
    nest = "[" * 5000 + "]" * 5000
    path = tmp_path / "deep.yaml"
    path.write_text(f"data:\n  mean: {nest}\n" if place[0] == "train" else f"model.activation: {nest}\n")
    stderr = cli(*(part.format(path=path, nest=nest) for part in place), code=2).stderr
    assert "nested deeper than" in stderr and stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args, key",
    [
        (["--lr", "inf"], "optimizer.lr"),
        (["--weight-decay", "nan"], "optimizer.weight_decay"),
        (["--set", "optimizer.weight_decay=inf"], "optimizer.weight_decay"),
        (["--set", "data.std=[.nan]", "--set", "data.mean=[0.5]"], "data.std"),
        (["--set", "data.mean=[.inf]", "--set", "data.std=[1.0]"], "data.mean"),
        (["--optimizer", "adam", "--set", "optimizer.betas=[.nan, 0.999]"], "optimizer.betas"),
        (["--set", "train.max_time=inf"], "train.max_time"),
    ],
)
def test_non_finite_settings_are_refused(cli, args: list[str], key: str) -> None:
    stderr = cli("train", "digits-mlp", "--epochs", "1", *args, code=2).stderr
    assert stderr.startswith(f"error: {key}") and "finite" in stderr, stderr


def _schemas() -> list[type[BaseModel]]:
    """Every section of the config and every registry entry's parameters, nested models too."""
    found: list[type[BaseModel]] = [entry.params for registry, _ in DISPATCHED.values() for entry in registry]
    pending: list[type[BaseModel]] = [Config]
    while pending:
        schema = pending.pop()
        found.append(schema)
        for field in schema.model_fields.values():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in found:
                pending.append(annotation)
    return found


def _with_inf(value: object, annotation: object) -> object:
    """The field's default with its first float made infinite (a list when the field takes one)."""
    if isinstance(value, (list, tuple)):
        return [math.inf, *value[1:]] if value else [math.inf]
    return [math.inf] if "list[" in str(annotation) and not isinstance(value, float) else math.inf


def test_every_float_field_is_finite_only() -> None:
    checked = 0
    for schema in _schemas():
        for name, field in schema.model_fields.items():
            if "float" not in str(field.annotation):
                continue
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            values = {"name": schema.model_fields["name"].default} if "name" in schema.model_fields else {}
            if "name" in values and values["name"] is None:
                continue
            with pytest.raises(ValidationError) as caught:
                schema.model_validate({**values, name: _with_inf(default, field.annotation)})
            assert any(e["type"] == "finite_number" for e in caught.value.errors()), (schema, name)
            checked += 1
    assert checked >= 20  # lr, weight_decay, momentum, betas, eps, gamma, dropout, std, ...


def test_non_finite_loss_fails_the_run(cli, tmp_path: Path) -> None:
    diverging = ["--optimizer", "sgd", "--lr", "10", "--set", "scheduler.name=none"]
    diverging += ["--set", "model.batch_norm=false", "--set", "model.dropout=0"]
    stderr = cli("train", "digits-mlp", "--epochs", "4", "--name", "nan", *diverging, code=1).stderr
    line = stderr.strip().splitlines()[-1]
    assert "NaN or infinite" in line and "from step" in line and "optimizer.lr=10" in line, stderr
    run = tmp_path / "runs" / "nan"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_run"] < 4
    losses = [json.loads(row)["train_loss"] for row in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == summary["epochs_run"] and all(math.isfinite(loss) for loss in losses)
    if summary["epochs_run"]:  # the last good epoch's state stays for --resume and eval
        import torch

        checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert checkpoint["progress"]["epoch"] == summary["epochs_run"]


def test_nonfinite_streaks_are_counted_on_the_device() -> None:
    import torch

    from dltool.engine.loop import EpochStats

    stats = EpochStats()
    for value in [1.0, math.nan, math.inf, 1.0, math.nan, math.nan, math.nan, 2.0]:
        stats.update(torch.tensor(value), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), "classification")
    assert stats.nonfinite_streak(3) == (5, 3)
    assert stats.nonfinite_streak(4) is None
    short = EpochStats()
    for value in [math.nan, math.nan]:
        short.update(torch.tensor(value), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), "classification")
    assert short.nonfinite_streak(3) == (1, 2)  # a whole epoch of NaN is enough


@pytest.mark.parametrize(
    "args, key",
    [
        (["--seed", "99999999999999999999"], "train.seed"),
        (["--set", "data.split_seed=99999999999999999999"], "data.split_seed"),
        (["--set", "train.threads=100000"], "train.threads"),
        (["--set", "data.image_size=100000"], "data.image_size"),
        (["--epochs", "100000000000000000000000"], "train.epochs"),
        (["--set", "model.width=100000000000000000000000"], "model.width"),
    ],
)
def test_out_of_range_numbers_are_refused(cli, args: list[str], key: str) -> None:
    stderr = cli("train", "digits-mlp", *args, code=2).stderr
    assert stderr.startswith(f"error: {key}") and stderr.count("\n") == 1, stderr


def test_huge_model_is_refused_before_allocation(cli) -> None:
    stderr = cli("train", "digits-mlp", "--set", "model.width=1000000000", code=2).stderr
    assert "model.width" in stderr and "GB" in stderr and stderr.count("\n") == 1, stderr


def _app_raising(error: Exception) -> typer.Typer:
    app = typer.Typer(cls=DltoolGroup, pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context, debug: bool = typer.Option(False, "--debug")) -> None:
        ctx.obj = {"debug": debug}

    @app.command()
    def fail() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error, first",
    [
        (OverflowError("int too large to convert"), "error: int too large"),
        (MemoryError(), "error: MemoryError"),
        (RecursionError("maximum recursion depth exceeded"), "error: maximum recursion"),
        (ZeroDivisionError("division by zero"), "internal error: ZeroDivisionError: division by zero"),
    ],
)
def test_unexpected_errors_are_one_line(error: Exception, first: str) -> None:
    quiet = CliRunner().invoke(_app_raising(error), ["fail"])
    assert quiet.exit_code == 1 and quiet.stderr.startswith(first) and quiet.stderr.count("\n") == 1, quiet.stderr
    assert ("--debug" in quiet.stderr) == first.startswith("internal")
    loud = CliRunner().invoke(_app_raising(error), ["--debug", "fail"])
    assert loud.exit_code == 1 and "Traceback" in loud.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    os.environ["DLTOOL_DATA"] = str(data_dir)
    config = load_config("digits-mlp", ["train.epochs=1"])
    return train(config, create_run_dir(tmp_path_factory.mktemp("r"), "d")).run_dir


@pytest.fixture
def image(tmp_path: Path) -> Path:
    from PIL import Image

    Image.new("L", (8, 8), 128).save(tmp_path / "img.png")
    return tmp_path / "img.png"


def test_predict_output_refuses_run_files_and_inputs(cli, run: Path, image: Path) -> None:
    for target in (run / "model.safetensors", run / "checkpoints" / "last.pt", run / "config.yaml", image):
        before = target.read_bytes()
        for force in ([], ["--force"]):
            stderr = cli("predict", run, image, "--output", target, *force, code=2).stderr
            assert ("run's own file" in stderr or "an input" in stderr) and stderr.count("\n") == 1, stderr
        assert target.read_bytes() == before
    weights = run / "model.safetensors"
    stderr = cli("export", run, "--format", "torchscript", "--output", weights, "--force", code=2).stderr
    assert "run's own file" in stderr


def test_output_refuses_non_regular_files(cli, run: Path, image: Path, tmp_path: Path) -> None:
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    (tmp_path / "link.csv").symlink_to(keep)
    os.mkfifo(tmp_path / "fifo.csv")
    for target, kind in [(tmp_path / "link.csv", "symlink"), (tmp_path / "fifo.csv", "FIFO")]:
        stderr = cli("predict", run, image, "--output", target, "--force", code=2).stderr
        assert f"a {kind}, not a regular file" in stderr
    assert (tmp_path / "link.csv").is_symlink() and keep.read_text() == "mine"
    assert (tmp_path / "fifo.csv").is_fifo()


def test_output_may_replace_its_own_kind(cli, run: Path, image: Path, tmp_path: Path) -> None:
    for name, fmt in [("rows.csv", "csv"), ("rows.jsonl", "jsonl")]:
        cli("predict", run, image, "--format", fmt, "--output", tmp_path / name)
        cli("predict", run, image, "--format", fmt, "--output", tmp_path / name)  # its own earlier output
    (tmp_path / "empty.csv").touch()  # e.g. from mktemp: nothing to lose
    cli("predict", run, image, "--output", tmp_path / "empty.csv")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert "--force" in cli("predict", run, image, "--output", notes, code=2).stderr
    assert notes.read_text() == "my notes"
    cli("predict", run, image, "--output", notes, "--force")
    assert notes.read_text().startswith("path,label,score")


def test_a_model_too_large_for_its_input_size_names_data_image_size() -> None:
    # An MLP on photos kept at their size: the weights grow with the input, so the input size
    # is a setting to lower; a CNN's do not, and it is not named there.
    from dltool.config import load_config
    from dltool.errors import ConfigError
    from dltool.models.build import build_model

    mlp = load_config("digits-mlp").model
    with pytest.raises(ConfigError, match=r"or data\.image_size \(the images are 40000×30000 px"):
        build_model(mlp, in_shape=(3, 30_000, 40_000), num_classes=2)
    cnn = load_config("digits-cnn", ["model.widths=[100000, 100000]"]).model
    with pytest.raises(ConfigError, match="model.widths") as refused:
        build_model(cnn, in_shape=(3, 30_000, 40_000), num_classes=2)
    assert "data.image_size" not in str(refused.value)
