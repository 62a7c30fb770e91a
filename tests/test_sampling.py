"""data.sampler: balanced draws classes equally often, each repeat augmented anew, the same in
both loaders and across ranks."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from dltool.config import load_config
from dltool.config.augment import AugmentConfig
from dltool.config.schema import DataConfig
from dltool.data.arrays import Split
from dltool.data.loader import BatchLoader, epoch_order
from dltool.data.sampling import SAMPLERS
from dltool.engine import train
from dltool.rundir import create_run_dir

SKEWED = np.array([0] * 90 + [1] * 10, dtype=np.int64)


def test_the_schema_names_every_sampler() -> None:
    assert set(typing.get_args(DataConfig.model_fields["sampler"].annotation)) == set(SAMPLERS)


def test_balanced_draws_every_class_equally_often_with_a_fresh_key_per_repeat() -> None:
    n = len(SKEWED)
    minority = []
    for epoch in range(30):
        keys = epoch_order(SKEWED, True, 7, epoch, (0, 1), "balanced")
        assert len(keys) == n and len(set(keys.tolist())) == n  # a key per draw, none twice
        samples = keys % n
        for sample in np.unique(samples):  # the k-th repeat of a sample has key index + k·n
            assert sorted(keys[samples == sample] // n) == list(range(int((samples == sample).sum())))
        minority.append(SKEWED[samples].mean())
    assert 0.45 < np.mean(minority) < 0.55  # against 0.10 for the random sampler
    assert np.array_equal(keys, epoch_order(SKEWED, True, 7, 29, (0, 1), "balanced"))  # (seed, epoch) only
    assert sorted(epoch_order(SKEWED, True, 7, 0, (0, 1), "random")) == list(range(n))


def test_balanced_ranks_share_one_draw() -> None:
    whole = epoch_order(SKEWED, True, 3, 1, (0, 1), "balanced")
    ranks = [epoch_order(SKEWED, True, 3, 1, (rank, 3), "balanced") for rank in range(3)]
    interleaved = np.stack(ranks, axis=1).reshape(-1)
    assert np.array_equal(interleaved, whole[: len(whole) - len(whole) % 3])


def test_a_sample_drawn_again_is_augmented_again() -> None:
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (8, 1, 6, 6), dtype=np.uint8), np.array([1] + [0] * 7, dtype=np.int64))
    loader = BatchLoader(
        split,
        batch_size=8,
        mean=[0.5],
        std=[0.25],
        device=torch.device("cpu"),
        shuffle=True,
        augment=AugmentConfig(crop_padding=2, flip=True),
        num_classes=2,
        sampler="balanced",
    )
    images, labels = next(loader.batches())
    copies = images[labels == 1]
    assert len(copies) >= 3  # the one image of class 1 is drawn about half the time
    assert len({tuple(copy.flatten().tolist()) for copy in copies}) > 1


def _skewed_folder(root: Path) -> Path:
    rng = np.random.default_rng(1)
    for c, count in enumerate([30, 6]):
        for i in range(count):
            pixels = (rng.integers(0, 120, (8, 8, 3)) + 100 * c).astype(np.uint8)
            path = root / f"class{c}" / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    return root


def test_balanced_streams_the_weights_it_trains_from_memory(tmp_path: Path) -> None:
    folder = _skewed_folder(tmp_path / "photos")
    runs = {}
    for loader in ["memory", "stream"]:
        overrides = ["data.sampler=balanced", "data.augment.flip=true", "data.augment.crop_padding=1"]
        overrides += [f"data.name={folder}", f"data.loader={loader}", "data.workers=0", "train.epochs=2"]
        config = load_config("digits-mlp", [*overrides, "train.batch_size=8", "model.width=16"])
        runs[loader] = train(config, create_run_dir(tmp_path / "runs", loader)).run_dir
    memory, stream = (load_file(runs[name] / "model.safetensors") for name in ["memory", "stream"])
    assert all(torch.equal(memory[k], stream[k]) for k in memory)
    assert yaml.safe_load((runs["memory"] / "config.yaml").read_text())["data"]["sampler"] == "balanced"


def test_an_unknown_sampler_is_a_usage_error_naming_the_choices(cli) -> None:
    result = cli("train", "digits-mlp", "--set", "data.sampler=weighted", code=2)
    assert "data.sampler" in result.stderr and "'random' or 'balanced'" in result.stderr


@pytest.mark.parametrize("sampler", ["random", "balanced"])
def test_every_sampler_trains(cli, sampler: str) -> None:
    cli("train", "digits-mlp", "--epochs", "1", "--set", f"data.sampler={sampler}", "--set", "train.limit_batches=2")
