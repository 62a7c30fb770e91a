"""One run's plots and report: curves from ``metrics.jsonl``, and the scores of its best
weights on a split (made on the fly through the eval library when ``eval-<split>.json`` is
missing or older than the weights, and then written as ``dltool eval`` would)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import dltool.tasks as tasks
from dltool.errors import CheckpointError, DltoolError
from dltool.evaluation import scalars
from dltool.figures.canvas import Plotter, Visualization
from dltool.figures.confusion import confusion_figure
from dltool.rundir import RunDir, open_run_dir, read_json_object
from dltool.viz import augmentations, eval_plots, report
from dltool.viz.curves import QUANTITIES, Curve, curve_figure, has_quantity
from dltool.viz.segmentation import segmentation_plots

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
    batch_size: int = 256,
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
    return Visualization(plotter.out, written, notes)


def score_run(run: RunDir, *, split: str, device: str = "auto", batch_size: int = 256) -> Scored:
    """The best weights' scores on ``split``, reusing ``eval-<split>.json`` when it scored
    these weights (``model.safetensors``, not older than the file) with the run's test-time
    augmentation, and writing it otherwise."""
    from dltool.evaluation.evaluate import evaluate_split, write_report
    from dltool.evaluation.trained import load_trained

    trained = load_trained(run.path, device=device)
    evaluation = evaluate_split(trained, split=split, batch_size=batch_size)
    stored_path = run.eval_report(split)
    stored = read_json_object(stored_path)
    if stored is not None and _is_current(stored, stored_path, run.weights, trained.tta):
        return Scored(stored, evaluation, trained, None)
    return Scored(evaluation.document, evaluation, trained, write_report(trained, evaluation.document, own_data=True))


def _is_current(document: dict[str, Any], path: Path, weights: Path, tta: str) -> bool:
    return (
        Path(str(document.get("checkpoint", ""))).name == weights.name
        and document.get("tta", "none") == tta
        and path.stat().st_mtime_ns >= weights.stat().st_mtime_ns
        and ("confusion_matrix" in document or "mse" in document)
    )


def _eval_plots(plotter: Plotter, scored: Scored, split: str) -> list[Path]:
    from dltool.viz.inside import save_filters

    evaluation = scored.evaluation
    filters = save_filters(plotter, scored.trained.model, tuple(scored.trained.in_shape))
    if tasks.info(scored.trained.task).masks_out:
        return [*segmentation_plots(plotter, scored, split), *filters]
    drawn = tasks.get(scored.trained.task).figures(
        evaluation.samples, evaluation.probs, scored.document, scored.trained.classes, split
    )
    if drawn is not None:
        return [*(plotter.save(figure, name, caption) for name, figure, caption in drawn), *filters]
    if evaluation.probs is None:
        inputs, outputs = reconstruct(scored.trained, evaluation)
        figure = eval_plots.reconstructions_figure(inputs, outputs, scored.document, split)
        caption = f"{split} images (top) and the autoencoder's outputs (bottom)"
        return [plotter.save(figure, "reconstructions", caption), *filters]
    return [*_classifier_plots(plotter, scored, split), *_curves(plotter, scored, split), *filters]


def _curves(plotter: Plotter, scored: Scored, split: str) -> list[Path]:
    """ROC and precision–recall curves, one class against the rest (documents written before
    eval scored them get the macro averages computed here)."""
    from dltool.tasks.metrics import classification_metrics

    probs, labels, classes = scored.evaluation.probs, scored.evaluation.samples.labels, scored.trained.classes
    document = scored.document
    if "roc_auc" not in document:
        document = classification_metrics(probs, labels, classes, nll=document.get("loss", float("nan")))
    roc = eval_plots.roc_figure(probs, labels, classes, document["roc_auc"], split)
    pr = eval_plots.precision_recall_figure(probs, labels, classes, document["average_precision"], split)
    return [
        plotter.save(roc, "roc", "true against false positive rate as the threshold on each class's probability falls"),
        plotter.save(
            pr, "precision_recall", "precision against recall as the threshold on each class's probability falls"
        ),
    ]


def _classifier_plots(plotter: Plotter, scored: Scored, split: str) -> list[Path]:
    document, evaluation, classes = scored.document, scored.evaluation, scored.trained.classes
    saved = []
    for normalised, name in ((False, "confusion"), (True, "confusion_normalised")):
        figure = confusion_figure(document["confusion_matrix"], classes, normalised=normalised, split=split)
        caption = (
            "each row divided by its count: the diagonal is each class's recall"
            if normalised
            else "counts; rows are the true classes, columns the predicted ones"
        )
        saved.append(plotter.save(figure, name, caption))
    saved.append(
        plotter.save(
            eval_plots.per_class_f1_figure(document["per_class"], document["macro_f1"], split),
            "per_class_f1",
            "F1 of each class; the dashed line is the macro average",
        )
    )
    saved.append(
        plotter.save(
            eval_plots.reliability_figure(evaluation.probs, evaluation.samples.labels, document["ece"], split),
            "reliability",
            "accuracy against confidence in the ECE's bins; bars below the diagonal are overconfident",
        )
    )
    saved.append(
        plotter.save(
            eval_plots.wrong_figure(evaluation.samples, evaluation.probs, classes, split),
            "wrong",
            "the wrongly classified images the model was most sure of, with the probability it gave",
        )
    )
    return saved


def reconstruct(
    trained: Any, evaluation: Any, count: int = eval_plots.RECONSTRUCTIONS_SHOWN
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images spread evenly over the split and the model's outputs, both uint8,
    normalised and denormalised exactly as evaluation feeds the model."""
    import torch

    samples = evaluation.samples
    if len(samples) == 0:
        raise CheckpointError("no images to reconstruct in this split")
    rows = np.unique(np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int))
    inputs = samples.take(rows).images
    mean = torch.tensor(evaluation.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(evaluation.std, dtype=torch.float32).view(1, -1, 1, 1)
    with torch.inference_mode():
        output = trained.model(((torch.from_numpy(inputs).float() / 255 - mean) / std).to(trained.device)).float().cpu()
    pixels = ((output * std + mean) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return inputs, pixels


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
    if scored is not None and scored.document.get("per_class"):
        per_class = scored.document["per_class"]
        columns = list(next(iter(per_class.values())))
        rows = [(name, *(r.get(column) for column in columns)) for name, r in per_class.items()]
        page.add(f"Per class ({split})", report.table(["class", *columns], rows))
    if summary:
        page.add("summary.json", report.key_values(summary))
    page.add("Config (config.yaml)", report.pre(config_text))
    return page
