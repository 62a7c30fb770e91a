"""Where ``dltool eval`` writes its documents: ``eval-<split>.json`` in the run dir."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dltool._io import atomic_write_json, slug
from dltool.errors import DiskFullError
from dltool.evaluation.trained import Trained
from dltool.rundir import RunDir


def write_report(trained: Trained, document: dict[str, Any], own_data: bool) -> Path:
    """``document`` written where ``run_report_path`` says."""
    path = run_report_path(trained, document, own_data)
    atomic_write_json(path, document)
    return path


def run_report_path(trained: Trained, document: dict[str, Any], own_data: bool) -> Path:
    """``eval-<split>.json`` beside the run's model (``eval-<dataset>-<split>.json`` for other
    data); other weights' beside them, ``FILE.eval-<split>.json`` (as an export's): scoring
    ``last.pt`` or ``epoch-0012.pt`` replaced the run's report, which reports and plots read."""
    return report_path(_reports_beside(trained.source), document, own_data)


def _reports_beside(weights: Path) -> Callable[[str], Path]:
    run = RunDir(weights.parent)
    if weights == run.weights:
        return run.eval_report
    return lambda stem: weights.with_name(f"{weights.name}.eval-{stem}.json")


def save_report(path: Path, document: dict[str, Any]) -> str | None:
    """Write ``document`` to ``path``: None, else why it could not be written (a read-only
    run dir, a full disk), so that scores computed at length are still returned, not lost."""
    try:
        atomic_write_json(path, document)
    except DiskFullError as error:
        return f"no space left on {error.device}"
    except OSError as error:
        return error.strerror or str(error)
    return None


def report_path(named: Callable[[str], Path], document: dict[str, Any], own_data: bool) -> Path:
    """``named(stem)``, where ``stem`` says what was scored: the split, ``<dataset>-<split>``
    for other data — and ``<dataset>-<digest>-<split>`` where that file holds another folder's
    scores (``/a/test`` and ``/b/test``: the second replaced the first)."""
    if own_data:
        return named(document["split"])
    dataset, split = str(Path(document["dataset"]).resolve()), document["split"]
    path = named(f"{slug(dataset, 'data')}-{split}")
    if _scored_dataset(path) in (None, dataset):
        return path
    return named(f"{slug(dataset, 'data')}-{hashlib.sha256(dataset.encode()).hexdigest()[:8]}-{split}")


def _scored_dataset(report: Path) -> str | None:
    """The dataset an eval report scored, as an absolute path (None: no such report)."""
    try:
        return str(Path(json.loads(report.read_text())["dataset"]).resolve())
    except (OSError, ValueError, KeyError, TypeError):
        return None
