"""``dltool summary``: the network a recipe, config or run describes, for its configured input."""

from __future__ import annotations

from pathlib import Path

import dltool.tasks as tasks
from dltool.config import load_config
from dltool.config.schema import Config
from dltool.data.prepare import prepare_data
from dltool.errors import CheckpointError, UsageError, option
from dltool.evaluation.trained import load_trained
from dltool.models.build import build_model
from dltool.models.freezing import freeze
from dltool.models.summary import ModelSummary, summarize
from dltool.rundir import RunDir


def summarize_target(target: str, *, depth: int = 3, root: str | None = None) -> ModelSummary:
    """The summary of a trained run (a run dir with weights, ``*.safetensors``, ``*.pt``: the
    model and input shape it was trained with, read without its dataset) or of a recipe,
    config file or unfinished run dir (the model built as training would build it, without
    pretrained weights, for the shape of its prepared dataset). ``model.freeze`` applies (for
    a run, as it ended: none after ``train.unfreeze_epoch``).
    ``depth``: how deep the listed layers go (the totals always cover the whole network);
    ``root``: where a recipe's or config's dataset is prepared (``data.root``)."""
    path = Path(target)
    trained = path.suffix in (".safetensors", ".pt") or (path / "model.safetensors").is_file()
    freezing = None
    if trained:
        if root is not None:
            raise UsageError(f"{option('root')} applies to a recipe or config: {target} is summarised from its weights")
        model = load_trained(path)
        config, network, in_shape = model.config, model.model, model.in_shape
        freezing = _freeze_as_trained(config, model.run_dir)
    else:
        config = load_config(target, flags={"data.root": root} if root is not None else None)
        data = prepare_data(config.data)
        in_shape = data.in_shape
        network = build_model(
            config.model.without_weights(),
            in_shape=in_shape,
            num_classes=tasks.out_features(config.model, data.classes),
        )
    freeze(network, freezing or config.model.freeze)
    return summarize(network, tuple(in_shape), name=config.model.name, depth=depth)


def _freeze_as_trained(config: Config, run_dir: Path | None) -> str | None:
    """``none`` for a run that trained past ``train.unfreeze_epoch``: every weight trained at
    the end, where ``model.freeze`` (its first epochs') read "11,176,512 frozen" for a
    fine-tuned ResNet-18. None: as the config says (a run that stopped before, or unknown)."""
    unfreeze = config.train.unfreeze_epoch
    if unfreeze is None or run_dir is None:
        return None
    return "none" if _epochs_run(run_dir) > unfreeze else None


def _epochs_run(run_dir: Path) -> int:
    try:
        return int((RunDir(run_dir).read_summary() or {}).get("epochs_run") or 0)
    except (CheckpointError, TypeError, ValueError):  # a damaged summary.json says nothing
        return 0
