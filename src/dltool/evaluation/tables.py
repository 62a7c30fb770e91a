"""Results as tables: predictions and per-class scores as pandas DataFrames, written as csv or
Parquet (pyarrow). One column layout per table, shared by the files and the Python API."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import IO, Any

import pandas as pd

import dltool.tasks as tasks
from dltool._io import atomic_open, sweep_stale_temporaries
from dltool.errors import UsageError

TABLE_SUFFIXES = (".csv", ".parquet")
# How the tables --per-class-out writes begin: a classifier's, a segmenter's, per point, per target.
PER_CLASS_HEADERS = ("class,precision,recall,f1,support", "class,iou,dice", "point,n,rmse_px", "target,n,mae")
ROW_GROUP = 4096  # predictions per Parquet row group: memory stays flat on a stream of any length


def predictions_frame(rows: Iterable[Any], columns: list[str]) -> pd.DataFrame:
    """Predictions as a DataFrame, one row per image, in ``columns`` (the task's
    ``prediction_columns``)."""
    return pd.DataFrame([row.values() for row in rows], columns=columns)


class ParquetRows:
    """Predictions streamed into a Parquet file (``file``: open for binary writing), a row group
    at a time; ``close`` writes the footer that makes the file readable. ``text``: the columns
    that hold text, ``lists`` those that hold lists of text, the others numbers."""

    def __init__(self, file: IO[bytes], columns: list[str], text: Collection[str], lists: Collection[str] = ()) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        kinds = {**dict.fromkeys(text, pa.string()), **dict.fromkeys(lists, pa.list_(pa.string()))}
        self.schema = pa.schema([pa.field(name, kinds.get(name, pa.float64())) for name in columns])
        self.writer = pq.ParquetWriter(file, self.schema)
        self.pending: list[list[Any]] = []

    def write(self, row: Any) -> None:
        self.pending.append([_parquet_text(value) for value in row.values()])
        if len(self.pending) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        columns = [list(column) for column in zip(*self.pending)]
        self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
        self.pending = []

    def close(self) -> None:
        if self.pending:
            self.flush()
        self.writer.close()

    def __enter__(self) -> ParquetRows:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
            return
        # An early end (Ctrl-C, a full disk): the file is discarded, but pyarrow's writer must
        # let go of it now; collected after the file is closed, it prints a traceback.
        with contextlib.suppress(OSError, ValueError):  # pyarrow's errors are both kinds
            self.writer.close()


def _parquet_text(value: Any) -> Any:
    """``value``, a file name whose bytes are not UTF-8 (held as surrogates) with escapes
    (``caf\\udce9.jpg``): Parquet's text is UTF-8, and pyarrow refuses it otherwise."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


def is_predictions_parquet(path: Path) -> bool:
    """Whether ``path`` is a Parquet file with dltool predict's leading column."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return False
    return names[:1] == ["path"] and len(names) > 1


def per_class_frame(document: dict[str, Any]) -> pd.DataFrame:
    """An eval document's per-class scores, one row per class (index ``class``, in
    ``classes.json`` order): precision, recall, f1, support, and whatever else it scores;
    a keypoint model's per point (index ``point``), a regression's per target (``target``)."""
    found = [(key, item) for key, item in tasks.breakdowns() if document.get(key)]
    if not found:
        raise UsageError(f"this evaluation: {tasks.NO_BREAKDOWN} (an autoencoder's)")
    (key, item), *_ = found
    frame = pd.DataFrame.from_dict(document[key], orient="index")
    frame.index.name = item
    return frame


def is_per_class_table(path: Path) -> bool:
    """Whether ``path`` is a per-class table that ``write_table`` wrote (csv or Parquet)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
            return False
        return any(set(header.split(",")) <= set(names) for header in PER_CLASS_HEADERS)
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.readline(4096).startswith(PER_CLASS_HEADERS)


def check_table_path(path: Path, option: str) -> None:
    """A usage error unless ``path`` ends in one of ``TABLE_SUFFIXES``."""
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise UsageError(f"{option} {path}: the file name must end in {' or '.join(TABLE_SUFFIXES)}")


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as csv or Parquet, by ``path``'s suffix, written atomically (index included);
    its folder is made if it is missing."""
    check_table_path(path, "table file")
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(path.parent, of=[path.name])  # what a killed writer left of it
    with atomic_open(path, "wb") as file:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(file, engine="pyarrow")
        else:
            file.write(frame.to_csv(lineterminator="\n").encode())
