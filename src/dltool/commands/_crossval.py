"""``dltool train --folds K``: the folds' runs under one parent folder, then mean ± std."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import typer

from dltool.commands._output import emit_line, say
from dltool.commands._signals import Stop, stop_on_signals


def run_folds(config: Any, recipe: str | None, folds: int, runs_dir: Path, name: str | None, quiet: bool) -> None:
    """Train the folds, print the parent folder on stdout and each metric's mean ± std on stderr."""
    from dltool.commands._progress import training_progress
    from dltool.config import resolve_source
    from dltool.engine.crossval import cross_validate

    stop = Stop()
    source = resolve_source(recipe or "").name
    with stop_on_signals(stop) as received, training_progress(quiet) as observer:
        result = cross_validate(
            config, source, folds, runs_dir=runs_dir, name=name, observer=lambda fold: observer, stop=stop
        )
    emit_line(str(result.path))
    if not quiet:
        for line in summary_lines(result.document):
            say(line)
    if result.interrupted:
        raise typer.Exit(128 + (received[0] if received else signal.SIGINT))


def summary_lines(document: dict[str, Any]) -> list[str]:
    """'test_accuracy  0.9312 ± 0.0121  (5 folds)' for every metric of cv.json."""
    metrics = document["metrics"]
    width = max((len(key) for key in metrics), default=0)
    return [
        f"{key:<{width}}  {m['mean']:.4f} ± {m['std']:.4f}  ({len(m['values'])} of {document['folds']} folds)"
        for key, m in sorted(metrics.items())
    ]
