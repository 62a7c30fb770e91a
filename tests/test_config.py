"""Config resolution: layers, precedence, name switches and validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dltool.config import load_config
from dltool.config.loading import parse_set
from dltool.config.recipes import list_recipes
from dltool.errors import ConfigError, UnknownNameError, UsageError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_schema_defaults_without_any_layer() -> None:
    config = load_config()
    assert (config.data.name, config.model.name, config.optimizer.name) == ("digits", "mlp", "adam")
    assert config.train.epochs == 20 and config.scheduler.name == "none"


def test_precedence_recipe_then_user_yaml_then_set_then_flags(tmp_path: Path) -> None:
    user = write(tmp_path / "mine.yaml", "base: digits-mlp\ntrain: {epochs: 7, batch_size: 32}\noptimizer: {lr: 0.5}\n")
    config = load_config(str(user))
    assert config.train.epochs == 7 and config.optimizer.lr == 0.5
    assert config.model.width == 256  # from the recipe
    config = load_config(str(user), ["train.epochs=9", "optimizer.lr=0.25"], {"optimizer.lr": 0.125})
    assert config.train.epochs == 9 and config.train.batch_size == 32
    assert config.optimizer.lr == 0.125  # flags beat --set


def test_set_values_are_yaml_typed() -> None:
    assert parse_set("optimizer.lr=1e-3") == {"optimizer": {"lr": 0.001}}
    assert parse_set("model.batch_norm=true") == {"model": {"batch_norm": True}}
    assert parse_set("scheduler.milestones=[2, 4]") == {"scheduler": {"milestones": [2, 4]}}
    assert parse_set("train.early_stopping.patience=3") == {"train": {"early_stopping": {"patience": 3}}}
    with pytest.raises(UsageError, match="section.key=value"):
        parse_set("lr")


@pytest.mark.parametrize(
    "given",
    ["data.augment.grayscale=true", "data.augment.cutout=true", "train.epochs=true", "optimizer.lr=true"],
)
def test_true_where_a_number_is_wanted_is_refused_not_read_as_1(given: str) -> None:
    # grayscale: true (written like flip: true) turned every training image grey.
    with pytest.raises(ConfigError, match=rf"{given.split('=')[0]}: should be a number; true would be read as 1"):
        load_config("digits-mlp", [given])


def test_true_and_false_still_mean_what_they_say_where_the_key_takes_them() -> None:
    config = load_config(
        "digits-mlp",
        ["data.augment.flip=true", "data.augment.blur=true", "data.augment.random_erasing=true"]
        + ["data.augment.mixup=false", "train.channels_last=true", "model.batch_norm=false"],
    )
    augment = config.data.augment
    assert augment.flip and augment.blur is not None and augment.random_erasing is not None
    assert augment.mixup == 0 and config.train.channels_last is True


def test_a_registry_section_set_to_a_name_picks_that_entry() -> None:
    # `--set scheduler=cosine` (Hydra's group override) was refused as not section.key=value.
    assert parse_set("scheduler=cosine") == {"scheduler": {"name": "cosine"}}
    config = load_config("digits-mlp", ["scheduler=step", "scheduler.step_size=5", "loss=nll"])
    assert (config.scheduler.name, config.scheduler.step_size, config.loss.name) == ("step", 5, "nll")
    with pytest.raises(UsageError, match=r"\|loss=NAME, e\.g\. --set scheduler=cosine"):
        parse_set("train=fast")  # train and data are not registry entries


def test_a_flag_may_be_a_path_object(tmp_path: Path) -> None:
    # dltool.train(..., overrides={"data.name": Path("photos")}): Python callers hold paths as Path objects.
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    config = load_config("digits-mlp", flags={"data.name": tmp_path / "photos", "data.root": tmp_path})
    assert (config.data.name, config.data.root) == (str(tmp_path / "photos"), str(tmp_path))


@pytest.mark.parametrize(
    ("assignment", "hint"),
    [
        ("epochs=3", "; did you mean --set train.epochs=3?"),
        ("lr=0.01", "; did you mean --set optimizer.lr=0.01?"),
        ("label_smoothing=0.1", "; did you mean --set loss.label_smoothing=0.1?"),
        ("val_fraction=0.2", "; did you mean --set data.val_fraction=0.2?"),
    ],
)
def test_a_key_without_its_section_is_placed_in_the_message(assignment: str, hint: str) -> None:
    # `--set epochs=3` only said "expected section.key=value", not which section takes epochs.
    with pytest.raises(UsageError) as error:
        parse_set(assignment)
    assert str(error.value) == f"--set '{assignment}': expected section.key=value{hint}"


def test_switching_an_entry_keeps_only_the_keys_it_takes() -> None:
    config = load_config("digits-mlp", flags={"optimizer.name": "sgd"})
    assert config.optimizer.name == "sgd" and config.optimizer.lr == 1e-3  # lr carries over
    assert not hasattr(config.optimizer, "betas")
    config = load_config("digits-mlp", ["scheduler.name=step", "scheduler.step_size=5"])
    assert config.scheduler.step_size == 5


def test_a_run_config_reproduces_itself(tmp_path: Path) -> None:
    config = load_config("digits-mlp", ["model.depth=3"])
    run = tmp_path / "digits-mlp-4"
    run.mkdir()
    write(run / "config.yaml", yaml.safe_dump(config.to_dict()))
    assert load_config(str(run)) == config
    assert load_config(str(run / "config.yaml")) == config


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (["optimizer.momentun=0.9"], "optimizer.momentun: unknown key; did you mean 'momentum'"),
        (["optimizer.name=sgd", "optimizer.momentun=0.9"], "did you mean 'momentum'?"),
        (["train.epochs=abc"], "train.epochs: should be a valid integer"),
        (["optimizer.lr=-1"], "optimizer.lr: should be greater than 0 (got -1)"),
        (["model.activation=relux"], "should be 'relu', 'leaky_relu', 'tanh', 'sigmoid' or 'gelu'"),
        (["model.name=mlpp"], "model.name: unknown model 'mlpp'; did you mean 'mlp'?"),
        (["train.early_stopping.patiense=2"], "did you mean 'patience'"),
        (["trian.epochs=2"], "trian: unknown section; did you mean 'train'?"),
        (["train.device=gpu"], "train.device"),
        (["train.threads=0"], "train.threads: should be 'auto' or a whole number"),
        (["data.mean=[0.5]"], "set both mean and std"),
        (["optimizer.name=sgd", "optimizer.momentum=0", "optimizer.nesterov=true"], "nesterov needs momentum"),
        (["scheduler.name=multistep", "scheduler.milestones=[5, 2]"], "milestones must be increasing"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(sets: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config("digits-mlp", sets)
    assert expected in str(error.value)
    assert error.value.exit_code == 2


def test_a_typo_in_a_yaml_file_is_an_error(tmp_path: Path) -> None:
    config = write(tmp_path / "typo.yaml", "model:\n  name: mlp\n  widht: 64\n")
    with pytest.raises(ConfigError, match="model.widht: unknown key; did you mean 'width'"):
        load_config(str(config))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "expected a mapping"),
        ("model: [1, 2]\n", "model: expected a mapping"),
        ("train: {epochs: 3\n", "not valid YAML"),
        ("base: nowhere.yaml\n", "not found"),
    ],
)
def test_malformed_files_are_usage_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        load_config(str(write(tmp_path / "bad.yaml", text)))


@pytest.mark.parametrize(
    ("text", "line", "key", "first"),
    [
        ("base: digits-mlp\noptimizer:\n  lr: 0.1\n  weight_decay: 0.0\n  lr: 0.01\n", 5, "lr", 3),
        ("train: {epochs: 3, epochs: 30}\n", 1, "epochs", 1),
        ("train:\n  epochs: 3\ntrain:\n  seed: 1\n", 3, "train", 1),
    ],
)
def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path, text: str, line, key, first) -> None:
    # YAML keeps the last of two equal keys without a word: a copied line edited and the old
    # one left in place (lr: 0.1 ... lr: 0.01) trained with one of them, silently.
    with pytest.raises(ConfigError) as error:
        load_config(str(write(tmp_path / "twice.yaml", text)))
    assert str(error.value) == (
        f"{tmp_path / 'twice.yaml'}: line {line}: {key!r} is given twice (first on line {first}); "
        "YAML would keep only the last: remove one"
    )


def test_merge_keys_may_still_override_what_they_bring(tmp_path: Path) -> None:
    text = "base: digits-mlp\noptimizer:\n  <<: {lr: 0.1, weight_decay: 0.5}\n  lr: 0.01\n"
    assert load_config(str(write(tmp_path / "merge.yaml", text))).optimizer.lr == 0.01


@pytest.mark.parametrize("value", ["2d", "1h30m", "soon"])
def test_a_max_time_that_is_no_duration_says_which_are(value: str) -> None:
    # It said "should be a valid number, unable to parse string as a number": not that 90m works.
    with pytest.raises(ConfigError) as error:
        load_config("digits-mlp", [f"train.max_time={value}"])
    assert (
        str(error.value) == f"train.max_time: should be seconds, or a number with s, m or h: 90m, 1.5h (got {value!r})"
    )
    assert load_config("digits-mlp", ["train.max_time=1.5h"]).train.max_time == 5400.0


def test_a_binary_file_as_config_says_so_not_the_codec_error(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"  # an export or an image given where a config goes
    model.write_bytes(b"\x08\x07\x12\x07pytorch\xe7\xba\x00")
    with pytest.raises(UsageError, match=r"model.onnx: not a YAML file \(not UTF-8 text") as error:
        load_config(str(model))
    assert "codec" not in str(error.value)


def test_a_base_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(str(tmp_path / "a.yaml"))


def test_a_misspelt_recipe_as_base_is_an_unknown_recipe_with_suggestions(tmp_path: Path) -> None:
    config = write(tmp_path / "mine.yaml", "base: digts-mlp\n")  # was "config file not found: .../digts-mlp"
    with pytest.raises(ConfigError, match=r"mine.yaml: base: unknown recipe 'digts-mlp'; did you mean 'digits-mlp'"):
        load_config(str(config))
    write(tmp_path / "digts-mlp", "base: digits-mlp\nmodel: {width: 48}\n")  # a file of that name beside it
    assert load_config(str(config)).model.width == 48


def test_unknown_recipe_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'digits-mlp'"):
        load_config("digts-mlp")


@pytest.mark.parametrize("recipe", list_recipes(), ids=lambda r: r.name)
def test_every_recipe_validates_and_states_its_measured_result(recipe) -> None:
    load_config(recipe.name)
    description = recipe.description.lower()
    assert "measured" in description or "published" in description


def test_a_tracker_listed_twice_is_refused_naming_it() -> None:
    # It was accepted: two MLflow runs (or two TensorBoard writers) of one training.
    both = load_config("digits-mlp", ["train.tracking=[tensorboard, mlflow]"])
    assert both.train.tracking == ["tensorboard", "mlflow"]
    with pytest.raises(ConfigError, match=r"train\.tracking: mlflow listed more than once"):
        load_config("digits-mlp", ["train.tracking=[mlflow, tensorboard, mlflow]"])


def test_model_freeze_takes_one_glob_alone_and_names_a_typo() -> None:
    # Both got pydantic's union noise: "model.freeze.literal['none','backbone']: ...;
    # model.freeze.list[str]: should be a valid list (got 'backbon')".
    assert load_config("digits-mlp", ["model.freeze=fc.*"]).model.freeze == ["fc.*"]
    with pytest.raises(ConfigError) as raised:
        load_config("digits-mlp", ["model.freeze=backbon"])
    assert str(raised.value) == (
        "model.freeze: none, backbone or a list of parameter-name globs; did you mean 'backbone'? (got 'backbon')"
    )


def test_a_value_where_a_mapping_is_wanted_names_the_keys_it_takes() -> None:
    # It said "should be a valid dictionary or instance of BlurConfig": a class of dltool's.
    with pytest.raises(ConfigError) as raised:
        load_config("digits-mlp", ["data.augment.blur=0.5"])
    assert str(raised.value) == "data.augment.blur: should be a mapping of probability, sigma (got 0.5)"
    with pytest.raises(
        ConfigError, match=r"train.early_stopping: should be a mapping of patience, min_delta \(got 5\)"
    ):
        load_config("digits-mlp", ["train.early_stopping=5"])


def test_a_layer_that_changes_the_model_s_task_brings_the_task_s_loss(tmp_path: Path) -> None:
    # A classifier recipe's cross_entropy stood: --set model.head=regression needed --set loss=mse too.
    assert load_config("digits-mlp", ["model.head=regression"]).loss.name == "mse"
    assert load_config("digits-mlp", flags={"model.name": "autoencoder"}).loss.name == "mse"
    assert load_config("digits-mlp", ["loss.name=l1", "model.head=keypoints"]).loss.name == "l1"  # it suits: kept
    assert load_config("digits-mlp", ["model.head=keypoints", "loss.name=smooth_l1"]).loss.name == "smooth_l1"
    (tmp_path / "mine.yaml").write_text("base: digits-mlp\nmodel: {head: regression}\n")
    assert load_config(str(tmp_path / "mine.yaml")).loss.name == "mse"
    with pytest.raises(ConfigError, match="'cross_entropy' does not suit the regression task; use one of: mse"):
        load_config("digits-mlp", ["model.head=regression", "loss=cross_entropy"])  # named: the user's choice
