"""``dltool predict``: what the model says about these images, as csv, jsonl, Parquet or a table."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Annotated, Any, TextIO, cast

import typer

from dltool._io import json_text
from dltool._openmp import wait_passively
from dltool._text import counted
from dltool.commands._options import InferenceAmp, PredictBatch, RowFormat
from dltool.commands._output import Tally, say, stderr

Opt = typer.Option
FORMATS = ("csv", "jsonl", "parquet", "table")
# The rows' columns, those of them that hold text and those that hold lists of text.
Columns = tuple[list[str], set[str], set[str]]
Workers = Annotated[
    int | None,
    Opt(
        min=0,
        help="Decoding processes (default: one per CPU but one, at most 8; none for a single batch, or, "
        "where you set OMP_WAIT_POLICY other than PASSIVE, while the model takes longer than decoding the "
        "first two batches; 0: in the main process).",
    ),
]
Strict = Annotated[bool, Opt("--strict", help="Exit 1 when any input could not be read (rows still written).")]
Force = Annotated[
    bool, Opt("--force", help="Let --output (or --out's masks) replace a file that dltool predict did not write.")
]


def predict(
    target: Annotated[
        Path,
        typer.Argument(
            help="Run dir, model.safetensors, a .pt checkpoint, or a file "
            "written by dltool export (.onnx, .torchscript)."
        ),
    ],
    paths: Annotated[
        list[str], typer.Argument(help="Image files, folders (recursive), globs, or - for paths on stdin.")
    ],
    output_format: RowFormat = None,
    top_k: Annotated[int | None, Opt(min=1, help="Labels and scores per image (default 3).")] = None,
    output: Annotated[Path | None, Opt(help="Write the rows to this file (atomically) instead of stdout.")] = None,
    batch_size: PredictBatch = None,
    device: Annotated[str, Opt(help="auto, cpu, cuda, cuda:N or mps (ONNX files: cpu).")] = "auto",
    amp: InferenceAmp = "off",
    workers: Workers = None,
    strict: Strict = False,
    force: Force = False,
    out: Annotated[Path | None, Opt(help="Segmentation: write one mask PNG per image into this folder.")] = None,
    overlay: Annotated[
        bool, Opt("--overlay", help="Segmentation: also write colour overlays into --out DIR/overlays/.")
    ] = False,
) -> None:
    """Label images; one row per readable image, in input order. Bad files go to stderr.
    A segmentation model writes a mask PNG per image, at the image's size, into --out DIR.

    Example: find imgs -name '*.png' | dltool predict runs/digits-mlp-1 - --format jsonl | jq -r .label
    """
    prepare_process(workers)
    from dltool.commands._predict_masks import COLUMNS, LIST_COLUMNS, check_options, mask_rows
    from dltool.evaluation.predict import predict as predict_images
    from dltool.evaluation.predict import prediction_columns, read_path_lines, text_columns
    from dltool.export.inference import load_inference_model

    model = load_inference_model(target, device=device, amp=amp)
    # Paths are bytes: a Latin-1 name that `find` lists must not stop a UTF-8 locale's strict stdin.
    inputs = read_path_lines(map(os.fsdecode, sys.stdin.buffer)) if paths == ["-"] else paths
    masks = check_options(model, out, overlay, top_k)
    chosen = _format(output_format, output, masks)
    _check_output(output, target, paths, force)
    if masks:  # the rows say where each mask went; the same formats and --output as labels
        options = {"overlay": overlay, "batch_size": batch_size, "workers": workers, "force": force}
        rows = mask_rows(model, inputs, out, options)
        columns: Columns = (list(COLUMNS), set(COLUMNS) - LIST_COLUMNS, LIST_COLUMNS)
    else:
        rows = predict_images(model, inputs, top_k=top_k or 3, batch_size=batch_size, workers=workers)
        columns = (prediction_columns(model, top_k or 3), text_columns(model, top_k or 3), set())
    _report(_write_labels(rows, chosen, output, columns), strict)


def prepare_process(workers: int | None) -> None:
    """What predict sets before torch is imported: OpenMP threads that sleep between parallel
    regions wherever decoding processes may run beside them (``dltool._openmp``)."""
    if workers != 0:
        wait_passively()


def _write_labels(rows: Generator[Any, None, None], chosen: str, output: Path | None, columns: Columns) -> Tally:
    """The rows in format ``chosen`` to ``output`` (else stdout); ``columns``: their names,
    those that hold text and those that hold lists. ``rows`` is closed however writing ends (Ctrl-C, SIGTERM, a full
    disk): its decoding workers stop now, not at the interpreter's exit, which could wait on
    them for ever."""
    with closing(rows):
        if chosen == "parquet":
            assert output is not None  # _format asks for it
            return _write_parquet(rows, output, columns)
        with _destination(output) as stream:
            return _kept_if_any_read(_write_rows(rows, _WRITERS[chosen](stream, columns[0]), stream.flush), output)


def _kept_if_any_read(tally: Tally, output: Path | None) -> Tally:
    """``tally``; exits 1 inside ``atomic_open`` (the file is not moved into place) when no input
    of an --output file could be read: a batch whose every file failed keeps the last results."""
    if output is not None and tally.unreadable and not tally.read:
        say(f"{output} not written: no input could be read")
        _report(tally, strict=False)
    return tally


def _report(tally: Tally, strict: bool) -> None:
    """The unreadable inputs counted, last on stderr; exit 1 for any with ``strict``, or when no input was read."""
    if tally.unreadable:
        stderr.print(f"{counted(tally.unreadable, 'input')} could not be read", soft_wrap=True)
    if tally.unreadable and (strict or not tally.read):  # no rows is no result (a typo, a folder of others)
        raise typer.Exit(1)


def _format(output_format: str | None, output: Path | None, masks: bool = False) -> str:
    """--format, else --output's suffix where it names a format, else a table on a terminal
    (csv for the rows of written ``masks``) and csv elsewhere. Parquet is a file format: it
    needs --output."""
    from dltool.errors import UsageError, did_you_mean

    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    table = output is None and sys.stdout.isatty() and not masks
    default = suffix if suffix in FORMATS else "table" if table else "csv"
    chosen = output_format or default
    if chosen not in FORMATS:
        raise UsageError(f"--format {chosen!r}: expected one of {', '.join(FORMATS)}{did_you_mean(chosen, FORMATS)}")
    if chosen == "parquet" and output is None:
        raise UsageError("--format parquet writes a file: add --output FILE.parquet")
    return chosen


def _write_parquet(rows: Iterable[Any], output: Path, columns: Columns) -> Tally:
    from dltool.evaluation.tables import ParquetRows

    with _open_output(output, "wb") as file, ParquetRows(file, *columns) as table:
        return _kept_if_any_read(_write_rows(rows, table.write, lambda: None), output)


def _write_rows(rows: Iterable[Any], write: Callable[[Any], Any], flush: Callable[[], Any]) -> Tally:
    """Each readable image's row as it comes (flushed, for a pipe); each unreadable one named
    on stderr."""
    from dltool.evaluation.predict import Unreadable

    tally = Tally()
    for row in rows:
        if isinstance(row, Unreadable):
            tally.skip(row.path, row.reason)
        else:
            write(row)
            flush()
            tally.read += 1
    return tally


@contextmanager
def _destination(output: Path | None) -> Iterator[TextIO]:
    """stdout, or a temporary file beside ``output`` renamed into place when complete."""
    if output is None:
        yield sys.stdout
        return
    with _open_output(output, "w") as file:
        yield cast(TextIO, file)


def _open_output(output: Path, mode: str) -> Any:
    """``atomic_open(output)``, its folder made first as ``dltool export --output`` makes its
    own, and what a killed predict left of the file swept."""
    from dltool._io import atomic_open, sweep_stale_temporaries

    output.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(output.parent, of=[output.name])
    return atomic_open(output, mode)


def _check_output(output: Path | None, target: Path, paths: list[str], force: bool) -> None:
    from dltool.rundir import check_output

    if output is None:
        return
    inputs = [target, *(Path(p) for p in paths if p != "-")]
    check_output(output, kind="dltool predict", force=force, same_kind=_is_predictions, inputs=inputs)


def _is_predictions(path: Path) -> bool:
    """Whether ``path`` starts as dltool predict's csv, jsonl or Parquet output does."""
    if path.suffix.lower() == ".parquet":
        from dltool.evaluation.tables import is_predictions_parquet

        return is_predictions_parquet(path)
    with open(path, encoding="utf-8", errors="replace") as file:
        first = file.readline(4096)
    if first.startswith("path,"):
        return True
    try:
        row = json.loads(first)
    except ValueError:
        return False
    return isinstance(row, dict) and "path" in row and bool({"top_k", "points", "values", "mask"} & row.keys())


def _csv_writer(stream: TextIO, columns: list[str]) -> Any:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    return lambda row: writer.writerow([_csv_cell(v) for v in row.values()])


def _csv_cell(value: Any) -> Any:
    """Numbers to 6 decimals; a list (a mask's classes) as a JSON array, which reads back
    whatever its items hold (spaces, commas, quotes)."""
    if isinstance(value, float):
        return f"{value:.6f}"
    return json_text(value) if isinstance(value, list) else value


def _jsonl_writer(stream: TextIO, columns: list[str]) -> Any:
    return lambda row: stream.write(json_text(row.document()) + "\n")


def _table_writer(stream: TextIO, columns: list[str]) -> Any:
    return lambda row: stream.write(row.line() + "\n")


_WRITERS = {"csv": _csv_writer, "jsonl": _jsonl_writer, "table": _table_writer}
