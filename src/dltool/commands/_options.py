"""Options that mean the same on every command that has them, defined once.

One meaning per option name across commands: ``--format`` is how rows and documents are
written (``predict``: csv, jsonl or table); an export's file type is ``--to`` and a plot's is
``--image-format``. The spellings those two had before (``--format``) still work, hidden from
``--help``: scripts written for 0.1.0 keep running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr, errors only.")]
JsonDocument = Annotated[bool, typer.Option("--json", help="Print a JSON document on stdout.")]
TrainedModel = Annotated[Path, typer.Argument(help="Run dir, model.safetensors or a .pt checkpoint.")]
# eval's: a trained model, or a file dltool export wrote (scored on its run's data).
ScoredModel = Annotated[
    Path, typer.Argument(help="Run dir, model.safetensors, a .pt checkpoint or an exported .onnx/.torchscript file.")
]
RowFormat = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="csv, jsonl, parquet (with --output) or table (default: --output's suffix, else table on a terminal, else csv).",
    ),
]
# On a CPU larger batches of large images run no faster and hold more memory
# (dltool.evaluation.model.default_batch_size).
ScoreBatch = Annotated[
    int | None,
    typer.Option(min=1, help="Images per forward pass (default 256; on a CPU 8 at 224 px, as fast there and lighter)."),
]
PredictBatch = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Images per forward pass and per decoded chunk (default 32 on a GPU; on a CPU 8 at 224 px and 32 "
        "from 112 px down, as fast there and lighter).",
    ),
]
InferenceAmp = Annotated[
    str,
    typer.Option(
        "--amp",
        help="off (float32), bf16 or fp16: autocast a run's model. bf16 runs about twice as fast on CPUs with "
        "AVX-512 BF16 or AMX and on GPUs; its scores differ from float32's in the second or third decimal.",
    ),
]
ExportTo = Annotated[str, typer.Option("--to", help="onnx or torchscript.")]
ImageFormat = Annotated[
    str, typer.Option("--image-format", help="Plot files as png, svg or pdf (report.html embeds PNGs).")
]
# 0.1.0's --format of export and visualize (see the module docstring).
LegacyFormat = Annotated[str | None, typer.Option("--format", hidden=True, help="Old spelling; see --help.")]


def renamed(value: str, legacy: str | None) -> str:
    """The value of a renamed option: its old spelling's when that was given."""
    return value if legacy is None else legacy
