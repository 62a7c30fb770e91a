"""One run's plots and report: curves from ``metrics.jsonl``, and the scores of its best
weights on a split (made on the fly through the eval library when ``eval-<split>.json`` is
missing or older than the weights, and then written as ``dltool eval`` would)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import dltool.tasks as tasks
from dltool.errors import CheckpointError, DltoolError
from dltool.evaluation import scalars
from dltool.figures.canvas import Plotter, Visualization
from dltool.rundir import RunDir, open_run_dir, read_json_object
from dltool.viz import augmentations, report
from dltool.viz.curves import QUANTITIES, Curve, curve_figure, has_quantity

CURVE_CAPTIONS = {
    "loss": "training loss (as optimised) and validation loss per epoch; the dotted line is the epoch whose weights were kept",
    "accuracy": "training and validation accuracy per epoch",
    "lr": "learning rate at the end of each epoch",
}


@dataclass(frozen=True)
class Scored:
    """A run's evaluation on one split, for plotting: the document the plots show (the
    stored ``eval-<split>.json`` when it is current) and the per-sample outputs."""

    document: dict[str, Any]
    evaluation: Any  # dltool.evaluation.evaluate.Evaluation
    trained: Any  # dltool.evaluation.trained.Trained
    written: Path | None  # eval-<split>.json, when this call wrote it


def visualize_run(
    path: Path,
    *,
    out: Path | None = None,
    fmt: str = "png",
    split: str = "test",
    device: str = "auto",
    batch_size: int | None = None,
) -> Visualization:
    """Plots of run dir ``path`` into ``out`` (default ``RUN/plots``) and ``report.html``.

    Files: loss, accuracy (classifiers), lr; confusion, confusion_normalised, per_class_f1,
    reliability, wrong (classifiers) or reconstructions (autoencoders). What cannot be drawn
    is named in the returned notes (a run without an epoch yet, a dataset not downloaded);
    a run with nothing at all to draw is a ``CheckpointError``.
    """
    run = open_run_dir(Path(path))
    plotter = Plotter(Path(out) if out is not None else run.plots, fmt)
    written: list[Path] = []
    notes: list[str] = []
    summary = run.read_summary()
    records = run.read_metrics()
    curve = Curve(run.path.name, records, (summary or {}).get("best"))
    for quantity in QUANTITIES:
        if has_quantity([curve], quantity):
            written.append(plotter.save(curve_figure([curve], quantity), quantity.name, CURVE_CAPTIONS[quantity.name]))
    if not records:
        notes.append(f"no training curves: {run.metrics} has no finished epoch yet")
    try:
        if not run.weights.is_file():
            raise CheckpointError(f"no {run.weights.name} yet (it is written when an epoch finishes)")
        scored = score_run(run, split=split, device=device, batch_size=batch_size)
    except DltoolError as error:
        if not written:
            raise CheckpointError(
                f"{run.path}: nothing to plot: no finished epoch in metrics.jsonl and {error}"
            ) from None
        scored = None
        notes.append(f"no {split} scores or their plots: {error}")
    if scored is not None:
        if scored.written is not None:
            written.append(scored.written)
        written += _eval_plots(plotter, scored, split)
    page = _run_report(run, summary, scored, plotter, notes, split)
    written.append(page.write(plotter.out / "report.html"))
    return plotter.visualization(written, notes)


def score_run(run: RunDir, *, split: str, device: str = "auto", batch_size: int | None = None) -> Scored:
    """The best weights' scores on ``split``, reusing ``eval-<split>.json`` when it scored
    these weights (``model.safetensors``, not older than the file) with the run's test-time
    augmentation, and writing it otherwise."""
    from dltool.evaluation.evaluate import evaluate_split
    from dltool.evaluation.reports import write_report
    from dltool.evaluation.trained import load_trained

    trained = load_trained(run.path, device=device)
    evaluation = evaluate_split(trained, split=split, batch_size=batch_size)
    stored_path = run.eval_report(split)
    stored = read_json_object(stored_path)
    if stored is not None and _is_current(stored, stored_path, run.weights, evaluation.document):
        return Scored(stored, evaluation, trained, None)
    return Scored(evaluation.document, evaluation, trained, write_report(trained, evaluation.document, own_data=True))


def _is_current(document: dict[str, Any], path: Path, weights: Path, fresh: dict[str, Any]) -> bool:
    """Whether ``document`` scored ``weights`` as ``fresh`` (this scoring's document) does:
    the same checkpoint and TTA, written after the weights, holding each of its keys (whatever
    the task; a document of an older dltool may lack some)."""
    return (
        Path(str(document.get("checkpoint", ""))).name == weights.name
        and document.get("tta", "none") == fresh.get("tta", "none")
        and path.stat().st_mtime_ns >= weights.stat().st_mtime_ns
        and fresh.keys() <= document.keys()
    )


def _eval_plots(plotter: Plotter, scored: Scored, split: str) -> list[Path]:
    """The task's plots of the scored split (``Task.figures``), then the first layer's filters."""
    from dltool.tasks.task import Drawable
    from dltool.viz.inside import save_filters

    trained, evaluation = scored.trained, scored.evaluation
    drawable = Drawable(
        split=split,
        document=scored.document,
        samples=evaluation.samples,
        outputs=evaluation.probs,
        classes=trained.classes,
        mean=evaluation.mean,
        std=evaluation.std,
        run=_runner(trained, evaluation.mean, evaluation.std),
    )
    drawn = [plotter.save(figure, name, caption) for name, figure, caption in tasks.get(trained.task).figures(drawable)]
    return [*drawn, *save_filters(plotter, trained.model, tuple(trained.in_shape))]


def _runner(trained: Any, mean: list[float], std: list[float]) -> Callable[[np.ndarray], Any]:
    """The model as evaluation scores it, on uint8 images normalised as evaluation feeds them."""
    import torch

    shift = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    scale = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def run(images: np.ndarray) -> torch.Tensor:
        inputs = ((torch.from_numpy(images).float() / 255 - shift) / scale).to(trained.device)
        return trained.score(inputs).float().cpu()

    return run


def _run_report(
    run: RunDir, summary: dict[str, Any] | None, scored: Scored | None, plotter: Plotter, notes: list[str], split: str
) -> report.Report:
    config_text = run.config.read_text(encoding="utf-8")
    config = run.read_config()
    model, data = config.get("model", {}).get("name"), config.get("data", {}).get("name")
    status = (summary or {}).get("status", "no summary.json (running, or killed)")
    page = report.Report(f"Run {run.path.name}", f"{model} on {data} · {status} · {run.path}")
    headline = {k: (summary or {}).get(k) for k in ("status", "epochs_run", "best", "test", "wall_time_s", "device")}
    blocks = [("Run (summary.json)", report.key_values({k: v for k, v in headline.items() if v is not None}))]
    if scored is not None:
        numbers = scalars(scored.document)
        blocks.append((f"Scores on {split} (eval-{split}.json)", report.table(["metric", "value"], numbers)))
    page.add("Results", report.row(*blocks))
    page.add("Plots", report.figures(plotter.plots))
    page.add(
        "Augmentation (dltool visualize RUN --augmentations)", report.figures(augmentations.saved_plot(plotter.out))
    )
    page.add("Not drawn", report.notes(notes))
    if scored is not None:
        _add_breakdown(page, scored, split)
    if summary:
        page.add("summary.json", report.key_values(summary))
    page.add("Config (config.yaml)", report.pre(config_text))
    return page


def _add_breakdown(page: report.Report, scored: Scored, split: str) -> None:
    """The eval document's table per class, point or target (``TaskParams.breakdown``), if any."""
    kind = tasks.info(scored.trained.task).breakdown
    if kind and (breakdown := scored.document.get(kind[0])):
        item = kind[1]
        columns = list(next(iter(breakdown.values())))
        rows = [(name, *(r.get(column) for column in columns)) for name, r in breakdown.items()]
        page.add(f"Per {item} ({split})", report.table([item, *columns], rows))
