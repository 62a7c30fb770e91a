"""``dltool summary``: the network a recipe, config or run describes, for its configured input."""

from __future__ import annotations

from pathlib import Path

import dltool.tasks as tasks
from dltool.config import load_config
from dltool.data.prepare import prepare_data
from dltool.evaluation.trained import load_trained
from dltool.models.build import build_model
from dltool.models.freezing import freeze
from dltool.models.summary import ModelSummary, summarize


def summarize_target(target: str, *, depth: int = 3) -> ModelSummary:
    """The summary of a trained run (a run dir with weights, ``*.safetensors``, ``*.pt``: the
    model and input shape it was trained with, read without its dataset) or of a recipe,
    config file or unfinished run dir (the model built as training would build it, without
    pretrained weights, for the shape of its prepared dataset). ``model.freeze`` applies.
    ``depth``: how deep the listed layers go (the totals always cover the whole network)."""
    path = Path(target)
    trained = path.suffix in (".safetensors", ".pt") or (path / "model.safetensors").is_file()
    if trained:
        model = load_trained(path)
        config, network, in_shape = model.config, model.model, model.in_shape
    else:
        config = load_config(target)
        data = prepare_data(config.data)
        in_shape = data.in_shape
        network = build_model(
            config.model.without_weights(),
            in_shape=in_shape,
            num_classes=tasks.out_features(config.model, data.classes),
        )
    freeze(network, config.model.freeze)
    return summarize(network, tuple(in_shape), name=config.model.name, depth=depth)
