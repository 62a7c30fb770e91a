"""``dltool summary``: a model's layers, output shapes, parameters and MACs, before or after training."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from dltool.commands import _complete
from dltool.commands._options import JsonDocument
from dltool.commands._output import emit_json, stderr


def summary(
    target: Annotated[
        str,
        typer.Argument(
            help="Recipe name, YAML file, run dir or checkpoint (model.safetensors, last.pt).",
            autocompletion=_complete.recipes,
        ),
    ],
    depth: Annotated[int, typer.Option(min=1, max=10, help="How deep nested layers are listed (1: top level).")] = 3,
    root: Annotated[str | None, typer.Option(help="data.root of a recipe's or config's dataset.")] = None,
    as_json: JsonDocument = False,
) -> None:
    """Show the network's layers, output shapes, parameters (trainable, frozen) and
    multiply-accumulates for one input of the configured shape (measured by torchinfo).

    Example: dltool summary digits-cnn --json | jq .macs
    """
    from dltool.api_reports import summary as summarize

    found = summarize(target, depth=depth, root=root)
    if as_json:
        emit_json(found.to_dict())
    else:
        _show(found)


def _show(found: Any) -> None:
    table = Table("layer", "type", "output shape", "params", "MACs", box=None, title=found.model, title_justify="left")
    for row in found.layers:
        shape = "×".join(map(str, row.output_shape)) or "-"
        frozen = "" if row.trainable == row.params else f" ({row.params - row.trainable:,} frozen)"
        indent = "  " * (row.depth - 1)
        table.add_row(f"{indent}{row.name}", row.kind, shape, f"{row.params:,}{frozen}", f"{row.macs:,}")
    stderr.print(table)
    stderr.print(found.totals_line(), soft_wrap=True)
