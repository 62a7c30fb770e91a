"""``dltool stats``: a dataset, run or checkpoint at a glance; tables on stderr, --json on stdout."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from dltool.commands import _complete
from dltool.commands._options import JsonDocument
from dltool.commands._output import emit_json, say, stderr


def stats(
    target: Annotated[
        str,
        typer.Argument(
            help="Dataset name or folder, run dir, or checkpoint (last.pt, model.safetensors).",
            autocompletion=_complete.registry("datasets"),
        ),
    ],
    split: Annotated[str | None, typer.Option(help="Only this split of a dataset (train, val, test).")] = None,
    root: Annotated[
        str | None, typer.Option(help="data.root of a dataset target (default: $DLTOOL_DATA, else the user cache).")
    ] = None,
    as_json: JsonDocument = False,
) -> None:
    """Show what a dataset, a run or a checkpoint holds.

    Datasets: samples per split and class, imbalance, the mean/std train normalises with,
    image sizes and modes, unreadable files, exact duplicates across splits. Runs: status,
    epochs, best/final/test metrics, wall time, device. Checkpoints: model, parameters, classes.

    Example: dltool stats ./pets --json | jq '.duplicates.across'
    """
    from dltool.commands._fetch import fetch_dataset
    from dltool.commands._stats_progress import stats_progress
    from dltool.stats import stats as gather

    fetch_dataset(target, root, quiet=False)  # a named dataset not downloaded yet (nothing for a path)
    with stats_progress() as progress:
        report = gather(target, split, progress, root)
    if as_json:
        emit_json(report)
    elif report["kind"] == "dataset":
        _show_dataset(report)
    else:
        _show_record(report)


# What a dataset's names name, by its targets, and what its total row counts; the rows of
# points count the images holding each, those of masks the pixels of each class.
NOUNS = {
    "points": ("point", "points", "total"),
    "values": ("target", "targets", "total"),
    "masks": ("class (pixels)", "classes", "images"),
}
NAMES = ("class", "classes", "total")


def _show_dataset(report: dict[str, Any]) -> None:
    shape = "×".join(map(str, report["image_shape"]))
    noun, nouns, total = NOUNS.get(report["targets"], NAMES)
    heading = f": {len(report['classes'])} {nouns}, images {shape}"
    stderr.print(Text.assemble((report["name"], "bold"), heading), soft_wrap=True)
    splits = report["splits"]
    table = Table(box=None, padding=(0, 2, 0, 0), title_justify="left")
    table.add_column(noun, no_wrap=True)
    for name, split in splits.items():
        header = f"{name} (= {split['same_as']})" if "same_as" in split else name
        table.add_column(header, justify="right", overflow="fold")  # a number cut short ("0.16…") misleads
    for cls in report["classes"]:
        table.add_row(cls, *(str(s["per_class"][cls]) if s["per_class"] else "-" for s in splits.values()))
    table.add_row(Text(total, "bold"), *(Text(str(s["n"]), "bold") for s in splits.values()))
    table.add_row("imbalance", *(_ratio(s["imbalance"]) for s in splits.values()))
    table.add_row("mean", *(_floats(s["mean"]) for s in splits.values()))
    table.add_row("std", *(_floats(s["std"]) for s in splits.values()))
    stderr.print(table)
    lines = [f"normalised with mean {_floats(report['mean'])}, std {_floats(report['std'])} (the train split's)"]
    if report["sizes"] is not None:
        lines.append(
            "sizes: " + _counts(report["sizes"]) + ("; modes: " + _counts(report["modes"]) if report["modes"] else "")
        )
    duplicates = report["duplicates"]
    across = ", ".join(f"{pair} {n}" for pair, n in duplicates["across"].items()) or "-"
    within = ", ".join(f"{name} {n}" for name, n in duplicates["within"].items())
    conflicting = f"; in more than one class: {duplicates['conflicting']}" if duplicates["conflicting"] else ""
    lines.append(f"exact duplicates across splits: {across}; within: {within}{conflicting}")
    for group, classes in zip(duplicates["examples"], duplicates["example_classes"], strict=True):
        filed = f" in classes {', '.join(classes)}" if len(classes) > 1 else ""
        lines.append(f"  same image{filed}: {', '.join(group)}")
    lines.append(f"skipped files: {len(report['unreadable'])}")  # unreadable, or an image whose mask is unusable
    lines += [f"  {item['path']}: {item['reason']}" for item in report["unreadable"]]
    lines += [f"note: {note}" for note in report["notes"]]
    for line in lines:
        say(line)


def _show_record(report: dict[str, Any]) -> None:
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    for key, value in report.items():
        if key in {"kind", "config"} or value is None:
            continue
        if key == "classes":
            key = _names_of(report.get("config") or {})
            value = f"{len(value)}: " + ", ".join(map(str, value[:20])) + (" ..." if len(value) > 20 else "")
        elif isinstance(value, dict):
            value = "  ".join(f"{k} {_number(v)}" for k, v in value.items())
        elif key == "parameters":
            value = f"{value:,}"
        table.add_row(key, str(value))
    stderr.print(table)


def _names_of(config: dict[str, Any]) -> str:
    """What a run's class names name: its points or targets when its head is a keypoint or
    regression head (``TaskParams.data``), else its classes."""
    import dltool.tasks as tasks

    head = config.get("model", {}).get("head")
    data = tasks.info(head).data if head in tasks.names() else "labels"
    return NOUNS.get(data, NAMES)[1]


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _floats(values: list[float]) -> str:
    return " ".join(f"{v:.4f}" for v in values) or "-"


def _counts(counts: dict[str, int], shown: int = 6) -> str:
    """The ``shown`` commonest values with their counts, then how many more there are: a folder
    of web photos can hold as many sizes as files (``--json`` has them all)."""
    commonest = sorted(counts.items(), key=lambda item: -item[1])
    more = f" and {len(counts) - shown} more (--json lists all {len(counts)})" if len(counts) > shown else ""
    return ", ".join(f"{k} ×{n}" for k, n in commonest[:shown]) + more


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
