"""``dltool eval``: how good is it, exactly."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from dltool.commands import _complete
from dltool.commands._options import ScoreBatch, ScoredModel
from dltool.commands._output import emit_json, say, stderr
from dltool.errors import DltoolError, UsageError
from dltool.evaluation import item_tables, scalars

if TYPE_CHECKING:
    from dltool.evaluation.evaluate import EvalResult

Opt = typer.Option
# Per-class columns shown under another name than their key.
HEADERS = {"roc_auc": "ROC AUC", "average_precision": "AP"}


def eval_(
    target: ScoredModel,
    split: Annotated[str, Opt(help="Split to score: test, val or train.")] = "test",
    data: Annotated[
        str | None,
        Opt(
            help="Another dataset name or image folder with the same classes.",
            autocompletion=_complete.registry("datasets"),
        ),
    ] = None,
    root: Annotated[str | None, Opt(help="data.root for --data.")] = None,
    checkpoint: Annotated[str, Opt(help="best (model.safetensors) or last (checkpoints/last.pt).")] = "best",
    batch_size: ScoreBatch = None,
    device: Annotated[str, Opt(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    tta: Annotated[str | None, Opt(help="Test-time augmentation: none or flip (default: the run's train.tta).")] = None,
    as_json: Annotated[bool, Opt("--json", help="Print the eval document on stdout.")] = False,
    per_class_out: Annotated[
        Path | None, Opt(help="Also write the per-class (point, target) scores as a table: FILE.csv or FILE.parquet.")
    ] = None,
) -> None:
    """Score a trained model or an export on its run's data; writes eval-<split>.json (FILE.eval-... beside a checkpoint or an export).

    Example: dltool eval runs/digits-mlp-1 --json | jq .accuracy
    """
    from dltool.engine.tta import MODES
    from dltool.export.evaluate import evaluate_model

    if tta is not None and tta not in MODES:  # named as the flag; the library checks the API's callers
        raise UsageError(f"--tta {tta!r}: expected {' or '.join(MODES)}")
    if per_class_out is not None:
        _check_table_out(per_class_out, target)
    result = evaluate_model(
        target,
        split=split,
        data=data,
        root=root,
        checkpoint=checkpoint,  # type: ignore[arg-type]
        batch_size=batch_size,
        device=device,
        tta=tta,
        per_class=per_class_out is not None,  # refused before scoring for a model without them
    )
    _render(result.document)
    if result.unsaved is None:
        say(f"wrote {result.path}")
    _write_outputs(result, per_class_out, as_json)
    if result.unsaved is not None:  # shown and printed first: the scores are not lost
        raise DltoolError(f"could not write {result.path} ({result.unsaved}); the scores are shown here only")


def _write_outputs(result: EvalResult, per_class_out: Path | None, as_json: bool) -> None:
    if per_class_out is not None:
        from dltool.evaluation.tables import write_table

        write_table(result.per_class, per_class_out)
        say(f"wrote {per_class_out}")
    if as_json:
        emit_json(result.document)


def _render(document: dict[str, Any]) -> None:
    # A line of its own: as the table's title, a folder's path was wrapped mid-name.
    say(f"{document['dataset']} / {document['split']}")
    summary = Table(show_header=False, box=None)
    for key, value in scalars(document):
        summary.add_row(key, _cell(value))
    stderr.print(summary)
    for key, rows in item_tables(document).items():
        if len(rows) <= 30:
            columns = list(next(iter(rows.values())))
            table = Table(key.removeprefix("per_"), *columns, box=None)
            for name, row in rows.items():
                table.add_row(name, *[_cell(row.get(column)) for column in columns])
            stderr.print(table)
    if document.get("absent_classes"):
        say(
            f"mIoU and mean Dice over the classes present; absent from truth and predictions "
            f"(left out, as torchmetrics does): {', '.join(document['absent_classes'])}"
        )
    if "per_class" in document and 0 < len(document["per_class"]) <= 30:
        rows = document["per_class"]
        columns = list(next(iter(rows.values())))
        table = Table("class", *(HEADERS.get(column, column) for column in columns), box=None)
        for name, row in rows.items():
            table.add_row(name, *(_score(row.get(column)) for column in columns))
        stderr.print(table)
    if changed := document.get("data_changed"):
        from dltool.evaluation.evaluate import data_changed_line

        say(f"warning: {data_changed_line(changed)}")
    if document.get("includes_training_images"):
        from dltool.evaluation.evaluate import TRAINING_IMAGES

        say(f"warning: {document['dataset']}: {TRAINING_IMAGES}")
    for skipped in document.get("skipped", []):
        say(f"skipped {skipped['path']}: {skipped['reason']}")
    if left_out := document.get("classes_left_out"):
        from dltool.evaluation.evaluate import left_out_line

        say(f"note: {left_out_line(document['dataset'], left_out)}")


def _score(value: float | None) -> str:
    """Rates to three decimals, counts whole; '-' where a score is undefined (NaN, an absent
    class's IoU) or absent (a document made before it was scored)."""
    if value is None or value != value:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


def _check_table_out(path: Path, target: Path) -> None:
    """--per-class-out names a table file that may be written (before the model is scored)."""
    from dltool.evaluation.tables import check_table_path, is_per_class_table
    from dltool.rundir import check_output

    check_table_path(path, "--per-class-out")
    check_output(path, kind="dltool eval --per-class-out", same_kind=is_per_class_table, inputs=[target])
