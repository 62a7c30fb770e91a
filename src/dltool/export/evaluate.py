"""``dltool eval`` on an exported file: the file's own runtime scores the run's data.

The sidecar names the weights the file was exported from (``source``); they give the data
config, the classes and the splits, and the file gives the forward pass. So the document is
the run's eval document with the file's outputs — an int8 file's accuracy next to the float
model's on the same images — written beside the file (``model.int8.onnx.eval-test.json``),
not over the run's own report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

import dltool.tasks as tasks
from dltool.errors import CheckpointError, UsageError
from dltool.evaluation.evaluate import EvalResult, evaluate_run, evaluate_split
from dltool.evaluation.reports import report_path, save_report
from dltool.evaluation.trained import Trained, load_trained
from dltool.export.exported import Exported, is_export, load_exported
from dltool.export.formats import FORMATS, Forward
from dltool.rundir import run_dir_of
from dltool.tasks.task import Forward as TorchForward


def evaluate_model(
    target: Path | str,
    *,
    checkpoint: Literal["best", "last"] = "best",
    device: str = "auto",
    tta: str | None = None,
    **scoring: Any,
) -> EvalResult:
    """``dltool eval TARGET``: a run (``dltool.evaluation.evaluate.evaluate_run``) or an
    exported file (``evaluate_export``; on the CPU for ``auto``); ``scoring``: the keywords both
    take (``split``, ``data``, ``root``, ``batch_size``). An export is one model with its
    test-time augmentation in the graph: ``checkpoint`` last and ``tta`` are refused for it."""
    if not is_export(Path(target)):
        return evaluate_run(target, checkpoint=checkpoint, device=device, tta=tta, **scoring)
    if checkpoint != "best":
        raise UsageError(f"checkpoint {checkpoint!r}: {target} is an exported model, not a run")
    if tta is not None:
        raise UsageError(f"tta {tta!r}: {target} averages the test-time augmentation it was exported with")
    return evaluate_export(target, device="cpu" if device == "auto" else device, **scoring)


def evaluate_export(
    path: Path | str,
    *,
    split: str = "test",
    data: str | None = None,
    root: str | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    per_class: bool = False,
) -> EvalResult:
    """What ``dltool eval FILE`` does for an export: score it on ``split`` of its run's data (or
    of ``data``, a dataset or folder with the same classes) and write the document beside it.
    ``per_class``: as for ``evaluate_run``."""
    exported = load_exported(Path(path), device=device)
    trained = exported_from(exported)
    if per_class:
        tasks.require_breakdown(trained.task, trained.name)
    forward = on_torch(exported.run)
    evaluation = evaluate_split(trained, split=split, data=data, root=root, batch_size=batch_size, forward=forward)
    runtime = FORMATS[exported.sidecar.format].runtime
    document = evaluation.document | {"checkpoint": str(exported.path.absolute()), "runtime": runtime}
    report = report_path(
        lambda stem: exported.path.with_name(f"{exported.path.name}.eval-{stem}.json"), document, data is None
    )
    return EvalResult(document, report, save_report(report, document))


def exported_from(exported: Exported) -> Trained:
    """The trained model ``exported`` was written from (its config, classes and data), checked
    to be the same model: a file and a run that have gone separate ways are refused."""
    source = _source(exported)
    if source is None:
        raise CheckpointError(
            f"{exported.path}: scoring an export reads its run's config and data, from the weights it was "
            f"exported from ({exported.sidecar.source or 'not recorded'}), which are gone"
        )
    trained = load_trained(source, tta=exported.sidecar.tta)
    classes = trained.classes if tasks.info(trained.task).names_outputs else []
    if (classes, trained.in_shape) != (exported.classes, exported.in_shape):
        raise CheckpointError(f"{exported.path}: {source} is no longer the model it was exported from")
    return trained


def _source(exported: Exported) -> Path | None:
    """The weights ``exported`` was written from: the path its sidecar records, else — a run dir
    moved or copied with its ``export/`` folder, or weights moved with an export beside them —
    the file of that name where the export now lies (the caller checks it is the same model)."""
    recorded = Path(exported.sidecar.source or "model.safetensors")
    if exported.sidecar.source and recorded.is_file():
        return recorded
    run = run_dir_of(exported.path.resolve())  # RUN/export/model.onnx, or beside RUN's files
    moved = [exported.path.parent / recorded.name, *([run.path / recorded.name] if run else [])]
    return next((path for path in moved if path.is_file()), None)


def on_torch(forward: Forward) -> TorchForward:
    """An export's forward pass as evaluation calls it: CPU tensors in and out."""
    return lambda images: torch.from_numpy(forward(images.cpu().numpy()))
