"""Several runs side by side: their curves overlaid, and one table of what differs in their
configs (dotted keys whose values are not all equal) with their results."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import dltool.tasks as tasks
from dltool._io import atomic_write_text, json_text
from dltool._text import counted
from dltool.config.loading import flatten
from dltool.errors import UsageError
from dltool.figures.canvas import Plotter, Visualization
from dltool.rundir import RunDir, open_run_dir
from dltool.viz import report
from dltool.viz.curves import QUANTITIES, Curve, curve_figure, has_quantity

# Result columns of the table: (column, where in summary.json); then the test scores (``_scores``).
RESULTS = (
    ("status", ("status",)),
    ("stop_reason", ("stop_reason",)),  # why: a pruned tune trial's status is "interrupted"
    ("epochs_run", ("epochs_run",)),
    ("best_epoch", ("best", "epoch")),
    ("best_metric", ("best", "metric")),
    ("best_value", ("best", "value")),
)
MISSING = object()  # a key one config has and another lacks
NAME_LIMIT = 100  # characters of the default output folder's name


def visualize_runs(paths: list[Path], *, out: Path | None = None, fmt: str = "png") -> Visualization:
    """Overlaid loss, accuracy and lr curves of ``paths`` (run dirs), ``runs.csv`` and
    ``runs.md`` (differing config keys and results, a row per run) and ``report.html``,
    into ``out`` (default ``plots/compare-<run>+<run>...`` in the working directory)."""
    runs = [open_run_dir(Path(p)) for p in paths]
    resolved = [r.path.resolve() for r in runs]
    if len(set(resolved)) < len(resolved):
        raise UsageError("the same run is named twice; give each run once")
    labels = run_labels([r.path for r in runs])
    plotter = Plotter(Path(out) if out is not None else default_out(labels), fmt)
    summaries = [r.read_summary() or {} for r in runs]
    curves = [Curve(label, r.read_metrics(), s.get("best")) for label, r, s in zip(labels, runs, summaries)]
    notes = [f"{c.label}: no finished epoch in metrics.jsonl yet" for c in curves if not c.records]
    written = []
    for quantity in QUANTITIES:
        if has_quantity(curves, quantity):
            caption = f"{quantity.title.lower()} of each run; dashed: train, solid: val, star: the epoch whose weights were kept"
            if quantity.name == "lr":
                caption = "learning rate of each run at the end of each epoch"
            written.append(plotter.save(curve_figure(curves, quantity), quantity.name, caption))
    header, rows = comparison_table(runs, labels, summaries)
    csv_path, md_path = plotter.folder() / "runs.csv", plotter.out / "runs.md"
    atomic_write_text(csv_path, to_csv(header, rows))
    atomic_write_text(md_path, to_markdown(header, rows))
    written += [csv_path, md_path]
    page = report.Report(f"{len(runs)} runs compared", " · ".join(str(r.path) for r in runs))
    differing = len(header) - 1 - len(_results(summaries))
    page.add(
        "Differences and results",
        f"<p>{counted(differing, 'config key')} differ (dotted keys of config.yaml); "
        "the same table is in runs.csv and runs.md.</p>"
        + report.table(header, [[None if v is MISSING else v for v in row] for row in rows]),
    )
    page.add("Plots", report.figures(plotter.plots))
    page.add("Not drawn", report.notes(notes))
    written.append(page.write(plotter.out / "report.html"))
    return plotter.visualization(written, notes)


def comparison_table(
    runs: list[RunDir], labels: list[str], summaries: list[dict[str, Any]]
) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: the run's label, each config key whose values differ between the
    runs (sorted; MISSING where a run lacks it), then the results of ``RESULTS``."""
    configs = [flatten(r.read_config()) for r in runs]
    keys = sorted({k for c in configs for k in c})
    differing = [k for k in keys if len({_canonical(c.get(k, MISSING)) for c in configs}) > 1]
    columns = _results(summaries)
    header = ["run", *differing, *(name for name, _ in columns)]
    rows = []
    for label, config, summary in zip(labels, configs, summaries):
        results = [_dig(summary, where) for _, where in columns]
        rows.append([label, *(config.get(k, MISSING) for k in differing), *results])
    return header, rows


def _results(summaries: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """``RESULTS``, then ``test_<score>`` for each task's headline score (``TaskParams.headline``:
    accuracy, pck, rmse, ...) that a run's test holds, and ``test_loss``."""
    tested = {key for summary in summaries for key in summary.get("test") or {}}
    scores = [key for key in tasks.headline_scores() if key in tested and key != "loss"]
    return [*RESULTS, *((f"test_{key}", ("test", key)) for key in [*scores, "loss"])]


def to_csv(header: list[str], rows: list[list[Any]]) -> str:
    """Plain values: numbers in full precision, lists as JSON, a missing key empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            ["" if v is MISSING or v is None else json_text(v) if isinstance(v, (list, dict, bool)) else v for v in row]
        )
    return buffer.getvalue()


def to_markdown(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return _shown(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_labels(paths: list[Path]) -> list[str]:
    """The shortest trailing parts of each path that tell the runs apart (usually the name)."""
    parts = [p.resolve().parts for p in paths]
    for depth in range(1, max(map(len, parts)) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def default_out(labels: list[str]) -> Path:
    """``plots/compare-<a>+<b>...`` (with a hash of the labels when that is too long)."""
    name = "compare-" + "+".join(re.sub(r"[^\w.-]+", "_", label) for label in labels)
    if len(name) > NAME_LIMIT:
        digest = hashlib.sha256("\n".join(labels).encode()).hexdigest()[:8]
        first = re.sub(r"[^\w.-]+", "_", labels[0])[:40]
        name = f"compare-{first}+{len(labels) - 1}-more-{digest}"
    return Path("plots") / name


def _canonical(value: Any) -> str:
    return "\0missing" if value is MISSING else json.dumps(value, sort_keys=True)


def _dig(document: dict[str, Any], where: tuple[str, ...]) -> Any:
    value: Any = document
    for key in where:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _shown(value: Any) -> str:
    return "—" if value is MISSING else report.format_value(value)
