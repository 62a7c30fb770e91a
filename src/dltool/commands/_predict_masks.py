"""``dltool predict --out DIR`` for segmentation models: a mask PNG per image, a row per mask."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dltool.commands._output import Tally
from dltool.errors import UsageError

COLUMNS = ("path", "mask", "overlay", "classes")


def check_options(model: Any, out: Path | None, overlay: bool, top_k: int | None, output_format: str | None) -> bool:
    """Whether this run writes masks; a usage error for options that do not fit the model."""
    import dltool.tasks as tasks

    masks = tasks.info(model.task).masks_out
    if masks and out is None:
        raise UsageError(f"model {model.name!r} is a {model.task} model: add --out DIR for its mask PNGs")
    if masks and out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; --out names the folder for the mask PNGs")
    if not masks and (out is not None or overlay):
        raise UsageError(f"--out/--overlay write segmentation masks; model {model.name!r} is a {model.task} model")
    if masks and top_k is not None:
        raise UsageError(f"--top-k ranks a classifier's labels; model {model.name!r} is a {model.task} model")
    if masks and output_format not in (None, "csv", "jsonl"):
        raise UsageError(f"--format {output_format}: the rows of written masks are csv or jsonl")
    return masks


def write_masks(
    model: Any, inputs: Iterable[str], out: Path | None, options: dict[str, Any], output_format: str | None
) -> Tally:
    """Segment ``inputs`` into ``out``; one row per mask on stdout (csv, or jsonl); each input
    that could not be read named on stderr."""
    from dltool.evaluation.predict import Unreadable
    from dltool.evaluation.segment import segment

    assert out is not None  # check_options asks for it
    writer = csv.writer(sys.stdout) if output_format != "jsonl" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    tally = Tally()
    for row in segment(model, inputs, out, **options):
        if isinstance(row, Unreadable):
            tally.skip(row.path, row.reason)
            continue
        values = {"path": row.path, "mask": row.mask, "overlay": row.overlay or "", "classes": row.classes}
        if writer is None:
            sys.stdout.write(json.dumps(values) + "\n")
        else:
            writer.writerow([*list(values.values())[:3], " ".join(row.classes)])
        sys.stdout.flush()
        tally.read += 1
    return tally
