"""Zoo models (`torchvision:ARCH`, `timm:ARCH`): the registry builds them with a head for the
data's classes, `model.pretrained` loads weights from the libraries' caches or a file and
never from the network here (conftest points the caches at tmp_path and sets offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dltool.config import load_config, validate_config
from dltool.errors import CheckpointError, ConfigError
from dltool.models.build import build_model
from dltool.models.zoo.build import build_zoo

# Small inputs keep the matrix fast on two CPUs; vit gets img_size from the input (32 px).
MATRIX = [
    "torchvision:resnet18",
    "torchvision:mobilenet_v3_small",
    "torchvision:efficientnet_b0",
    "torchvision:convnext_tiny",
    "timm:resnet18",
    "timm:efficientnet_b0",
    "timm:vit_tiny_patch16_224",
    "timm:convnext_atto",
]
IN_SHAPE = (3, 32, 32)


def _model(name: str, num_classes: int = 5, **section) -> torch.nn.Module:
    config = validate_config({"model": {"name": name, **section}})
    return build_model(config.model, in_shape=IN_SHAPE, num_classes=num_classes)


@pytest.mark.parametrize("name", MATRIX)
def test_zoo_models_build_train_one_step_with_a_head_for_the_classes(name: str) -> None:
    torch.manual_seed(0)
    model = _model(name)
    head = model.get_submodule(model.dltool_head)
    assert [p.shape[0] for n, p in head.named_parameters() if n.endswith("weight")][-1] == 5
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    output = model(torch.randn(2, *IN_SHAPE))
    assert output.shape == (2, 5)
    torch.nn.functional.cross_entropy(output, torch.tensor([0, 3])).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    optimizer.step()
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(model.dltool_head))


def test_builder_keywords_pass_through_and_are_checked() -> None:
    assert _model("timm:resnet18", kwargs={"drop_rate": 0.2}).drop_rate == 0.2
    with pytest.raises(ConfigError, match=r"model.kwargs: 'drop_rat' .*did you mean 'drop_rate'"):
        validate_config({"model": {"name": "timm:resnet18", "kwargs": {"drop_rat": 0.2}}})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"name": "timm:resnt18"}, r"model.name: unknown timm architecture 'resnt18'; did you mean 'resnet18'"),
        ({"name": "torchvision:resnet81"}, r"unknown torchvision architecture 'resnet81'; did you mean 'resnet18'"),
        (  # a segmentation network's typo: its suggestion too, not only the classifiers'
            {"name": "torchvision:lraspp_mobilenet_v3_larg"},
            r"unknown torchvision architecture 'lraspp_mobilenet_v3_larg'; did you mean 'lraspp_mobilenet_v3_large'",
        ),
        ({"name": "torchvision:resnet18", "pretrained": "IMAGENET1K_V3"}, r"tags: IMAGENET1K_V1, DEFAULT"),
        ({"name": "timm:resnet18", "pretrained": "a9_in1k"}, r"tags: a1_in1k, a2_in1k"),
        ({"name": "timm:resnet18", "pretrained": True, "init": "kaiming_normal"}, r"overwrite the pretrained"),
    ],
)
def test_bad_zoo_names_and_tags_are_usage_errors(cli, section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config({"model": section})
    sets = [f"--set=model.{k}={json.dumps(v)}" for k, v in section.items()]
    result = cli("train", "digits-mlp", *sets, code=2)
    assert result.stderr.count("\n") == 1 and "model" in result.stderr


def _random_weights(name: str, num_classes: int = 1000) -> dict[str, torch.Tensor]:
    """Weights with the real architecture's names and shapes and values of no model's."""
    torch.manual_seed(123)
    model = _model(name, num_classes=num_classes)
    return {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in model.state_dict().items()}


def _loaded_equal(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    head = model.dltool_head + "."
    for key, value in weights.items():
        if key.startswith(head) and own[key].shape != value.shape:
            continue  # another class count: a new head
        assert torch.equal(own[key], value), key


def _cache_mobilenet_weights() -> dict[str, torch.Tensor]:
    """Random weights of torchvision's mobilenet_v3_small where its default weights are cached."""
    import torchvision

    weights = _random_weights("torchvision:mobilenet_v3_small")
    url = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT.url
    folder = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(weights, folder / url.rsplit("/", 1)[1])
    return weights


def test_pretrained_true_loads_torchvision_weights_from_torch_home(isolated: Path) -> None:
    weights = _cache_mobilenet_weights()
    model = _model("torchvision:mobilenet_v3_small", pretrained=True)
    _loaded_equal(model, weights)
    assert model.classifier[-1].weight.shape == (5, 1024)
    assert "head classifier re-initialised for 5 classes (the weights have 1000)" in model.dltool_notes[0]


@pytest.mark.parametrize(
    ("head", "said"),
    [("keypoints", "6 outputs, x and y of 3 points"), ("regression", "6 outputs, one per target")],
)
def test_a_keypoint_head_is_said_to_have_outputs_not_classes(isolated: Path, head: str, said: str) -> None:
    _cache_mobilenet_weights()
    model = _model("torchvision:mobilenet_v3_small", num_classes=6, pretrained=True, head=head)
    assert f"head classifier re-initialised for {said} (the weights have 1000)" in model.dltool_notes[0]


def _hub_file(repo: str, file: str = "model.safetensors") -> Path:
    folder = Path(os.environ["HF_HOME"]) / "hub" / f"models--timm--{repo}" / "snapshots" / "main"
    folder.mkdir(parents=True)
    return folder / file


def test_pretrained_tag_loads_timm_weights_from_the_hugging_face_cache() -> None:
    weights = _random_weights("timm:convnext_atto")
    save_file(weights, _hub_file("convnext_atto.d2_in1k"))
    for pretrained in (True, "d2_in1k"):
        model = _model("timm:convnext_atto", pretrained=pretrained)
        _loaded_equal(model, weights)
    same_classes = _model("timm:convnext_atto", num_classes=1000, pretrained=True)
    assert all(torch.equal(same_classes.state_dict()[k], v) for k, v in weights.items())


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_pretrained_path_loads_the_file(tmp_path: Path, suffix: str) -> None:
    weights = _random_weights("timm:resnet18", num_classes=7)
    path = tmp_path / f"mine{suffix}"
    save_file(weights, path) if suffix == ".safetensors" else torch.save({"state_dict": weights}, path)
    model = _model("timm:resnet18", num_classes=7, pretrained=str(path))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_a_pth_that_needs_the_unpickler_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "extra": {1, 2}}, path)  # a set: not a tensor type
    with pytest.raises(CheckpointError, match="not a readable weights file|no dict of tensors"):
        build_zoo("timm:resnet18", str(path), {}, IN_SHAPE, 5)


def test_a_cached_file_cut_short_says_how_to_fetch_it_again(cli, isolated: Path) -> None:
    # A copy cut short in torch's cache was torch's miniz error, cut off mid-sentence.
    _cache_mobilenet_weights()
    cached = next((isolated / "torch-home" / "hub" / "checkpoints").iterdir())
    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])
    result = cli(
        "train", "digits-mlp", "--model", "torchvision:mobilenet_v3_small", "--set=model.pretrained=true", code=1
    )
    assert result.stderr == (
        f"error: {cached}: not a readable weights file (truncated or damaged: PytorchStreamReader failed reading "
        "zip archive: failed finding central directory); delete it to download it again, or copy a whole one there\n"
    )


def test_weights_of_another_architecture_name_the_mismatched_tensors(cli, tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file(_random_weights("timm:resnet18"), path)
    with pytest.raises(
        CheckpointError, match=r"do not fit ConvNeXt: missing: head.fc.bias, .*\(\+\d+ more\); unexpected: bn1.bias"
    ):
        build_zoo("timm:convnext_atto", str(path), {}, IN_SHAPE, 5)
    result = cli("train", "digits-mlp", "--model", "timm:convnext_atto", f"--set=model.pretrained={path}", code=1)
    assert result.stderr.count("\n") == 1 and "do not fit" in result.stderr and "bn1.running_mean" in result.stderr


@pytest.mark.parametrize(
    ("name", "file", "folder"),
    [
        ("torchvision:resnet18", "resnet18-f37072fd.pth", "torch-home/hub/checkpoints"),
        ("timm:resnet18", "model.safetensors", "hf-home/hub/models--timm--resnet18.a1_in1k/snapshots/main"),
    ],
)
def test_missing_weights_fail_in_one_line_naming_file_and_folder(cli, isolated: Path, name, file, folder) -> None:
    result = cli("train", "digits-mlp", "--model", name, "--set", "model.pretrained=true", code=1)
    assert result.stdout == "" and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"put {file} in {isolated / folder}/" in result.stderr
    assert "model.pretrained=PATH" in result.stderr and "offline" in result.stderr
    assert not (isolated / "runs").exists()  # failed before a run dir was made


def test_pretrained_weights_set_the_preprocessing_unless_the_config_does() -> None:
    config = validate_config({"model": {"name": "timm:resnet18", "pretrained": True}})
    assert (config.data.image_size, config.data.channels) == (224, 3)
    assert config.data.mean == [0.485, 0.456, 0.406] and config.data.std == [0.229, 0.224, 0.225]
    own = validate_config({"model": {"name": "timm:resnet18", "pretrained": True}, "data": {"image_size": 64}})
    assert own.data.image_size == 64 and own.data.mean == [0.485, 0.456, 0.406]
    scratch = validate_config({"model": {"name": "timm:resnet18"}})
    assert scratch.data.image_size is None and scratch.data.mean is None
    assert validate_config({"model": {"name": "torchvision:resnet18"}}).data.channels == 3  # its stem takes RGB


def test_plain_listing_never_imports_torch_and_zoo_listing_is_json() -> None:
    code = "import sys; from dltool.catalog import listing; listing('models'); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    listed = subprocess.run(
        [sys.executable, "-m", "dltool", "list", "models", "--zoo", "torchvision", "resnet1*", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    models = json.loads(listed.stdout)["models"]
    assert [m["name"] for m in models] == ["torchvision:resnet101", "torchvision:resnet152", "torchvision:resnet18"]
    assert models[-1]["pretrained"] == ["IMAGENET1K_V1", "DEFAULT"]
    # The segmentation networks, registered one by one, were missing from the family's list
    # (which the unknown-name error points to).
    segmentation = json.loads(
        subprocess.run(
            [sys.executable, "-m", "dltool", "list", "models", "--zoo", "torchvision", "lraspp", "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["models"]
    assert segmentation == [
        {"name": "torchvision:lraspp_mobilenet_v3_large", "pretrained": ["COCO_WITH_VOC_LABELS_V1", "DEFAULT"]}
    ]


def test_list_models_names_the_families_and_unknown_family_suggests(cli) -> None:
    names = [m["name"] for m in json.loads(cli("list", "models", "--json").stdout)["models"]]
    assert "torchvision:ARCH" in names and "timm:ARCH" in names
    assert "did you mean 'timm'" in cli("list", "models", "--zoo", "tim", code=2).stderr


def test_a_run_records_the_weights_preprocessing_and_says_what_it_loaded(cli, isolated: Path) -> None:
    save_file(_random_weights("timm:resnet18"), _hub_file("resnet18.a1_in1k"))
    config = load_config("digits-mlp", ["model.name=timm:resnet18", "model.pretrained=true", "data.image_size=16"])
    assert config.data.channels == 3 and config.data.image_size == 16
    result = cli(
        "train", "digits-mlp", "--model", "timm:resnet18", "--set", "model.pretrained=true",
        "--set", "data.image_size=16", "--epochs", "1", "--set", "train.limit_batches=2",
    )  # fmt: skip
    assert "pretrained timm:resnet18.a1_in1k (model.safetensors): loaded" in result.stderr
    assert "head fc re-initialised for 10 classes (the weights have 1000)" in result.stderr
    run = Path(result.stdout.strip())
    saved = validate_config(__import__("yaml").safe_load((run / "config.yaml").read_text()))
    assert saved.data.mean == [0.485, 0.456, 0.406] and saved.data.channels == 3 and saved.data.image_size == 16
    weights = load_file(run / "model.safetensors")
    assert weights["fc.weight"].shape == (10, 512)


def test_a_bare_zoo_architecture_suggests_its_families(cli) -> None:
    # timm's and torchvision's scripts take `--model resnet18`; dltool suggested only its own
    # CIFAR 'resnet' (depth 6n+2), a different network, and never the zoo names that train it.
    both = validate_error("resnet18")
    assert "unknown model 'resnet18'; did you mean 'timm:resnet18' or 'torchvision:resnet18'?" in both
    assert "did you mean 'timm:convnext_atto'?" in validate_error("convnext_atto")
    assert "did you mean 'torchvision:deeplabv3_resnet50'?" in validate_error("deeplabv3_resnet50")
    assert "did you mean 'resnet'?" in validate_error("resnt")  # no zoo has it: the close names as before
    result = cli("train", "digits-mlp", "--model", "resnet18", code=2)
    assert result.stderr.count("\n") == 1 and "'torchvision:resnet18'?" in result.stderr


def validate_error(model: str) -> str:
    with pytest.raises(ConfigError) as raised:
        validate_config({"model": {"name": model}})
    return str(raised.value)


def test_list_zoo_takes_a_filter_without_the_models_kind(cli) -> None:
    # `dltool list --zoo timm 'convnext*'` (--zoo lists models only) took the filter for the kind:
    # "error: --zoo lists models, not convnext*".
    shorter = cli("list", "--zoo", "torchvision", "resnet1*", "--json").stdout
    assert shorter == cli("list", "models", "--zoo", "torchvision", "resnet1*", "--json").stdout
    assert "torchvision:resnet18" in shorter
    assert "--zoo lists models, not datasets" in cli("list", "datasets", "--zoo", "timm", code=2).stderr
