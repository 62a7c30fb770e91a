"""``dltool predict --out DIR`` for segmentation models: a mask PNG per image, a row per mask."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltool.errors import UsageError

COLUMNS = ("path", "mask", "overlay", "classes")
LIST_COLUMNS = {"classes"}  # a list of names: a JSON array in csv, a list in jsonl and Parquet


def check_options(model: Any, out: Path | None, overlay: bool, top_k: int | None) -> bool:
    """Whether this run writes masks; a usage error for options that do not fit the model."""
    import dltool.tasks as tasks

    masks = tasks.info(model.task).masks_out
    if masks and out is None:
        raise UsageError(f"model {model.name!r} is a {model.task} model: add --out DIR for its mask PNGs")
    if masks and out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; --out names the folder for the mask PNGs")
    if not masks and (out is not None or overlay):
        rows = f" (its rows go to a file with --output {out})" if out is not None and out.suffix else ""
        raise UsageError(
            f"--out/--overlay write segmentation masks; model {model.name!r} is a {model.task} model{rows}"
        )
    if top_k is not None and not tasks.info(model.task).ranks_labels:
        raise UsageError(f"--top-k ranks a classifier's labels; model {model.name!r} is a {model.task} model")
    return masks


@dataclass(frozen=True)
class MaskRow:
    """The row of one written mask, in each of predict's formats (as ``dltool.tasks.rows``' rows)."""

    path: str
    mask: str
    overlay: str | None
    classes: list[str]

    def values(self) -> list[Any]:
        """The csv and Parquet cells: no overlay is an empty csv cell and a Parquet null; the
        classes a list (a class name may hold spaces, so no joined text could be split back)."""
        return [self.path, self.mask, self.overlay, self.classes]

    def document(self) -> dict[str, Any]:
        return {"path": self.path, "mask": self.mask, "overlay": self.overlay, "classes": self.classes}

    def line(self) -> str:
        return f"{self.mask}  {', '.join(self.classes)}  {self.path}"


def mask_rows(
    model: Any, inputs: Iterable[str], out: Path | None, options: dict[str, Any]
) -> Generator[Any, None, None]:
    """Segment ``inputs`` into ``out``: a MaskRow per mask written, an ``Unreadable`` per input
    that could not be read, in input order."""
    from dltool.evaluation.predict import Unreadable
    from dltool.evaluation.segment import segment

    assert out is not None  # check_options asks for it
    for row in segment(model, inputs, out, **options):
        yield row if isinstance(row, Unreadable) else MaskRow(row.path, row.mask, row.overlay, row.classes)
