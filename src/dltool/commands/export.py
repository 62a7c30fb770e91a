"""``dltool export``: the model as an ONNX or TorchScript file others can run, verified first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dltool.commands._options import ExportTo, LegacyFormat, TrainedModel, renamed
from dltool.commands._output import emit_line, stderr

Opt = typer.Option


def export(
    target: TrainedModel,
    to: ExportTo = "onnx",
    output: Annotated[
        Path | None,
        Opt(help="File to write (default: RUN/export/model.onnx or .torchscript); its sidecar is FILE.json."),
    ] = None,
    opset: Annotated[int | None, Opt(help="ONNX opset, 18 or newer (default: torch's, 20).")] = None,
    force: Annotated[bool, Opt(help="Replace an existing file and its sidecar.")] = False,
    legacy_format: LegacyFormat = None,
) -> None:
    """Export a model with a dynamic batch size and a sidecar JSON (classes, input size,
    normalisation); prints the file. Its outputs are checked against PyTorch's first.

    Example: dltool predict $(dltool export runs/digits-mlp-1 --to onnx) photos/
    """
    from dltool.evaluation.trained import load_trained
    from dltool.export.export import export_trained

    trained = load_trained(target)
    result = export_trained(trained, renamed(to, legacy_format), output, opset=opset, force=force)
    sizes = " and ".join(map(str, result.batch_sizes))
    stderr.print(
        f"verified with {result.runtime}: max abs diff from PyTorch {result.max_abs_diff:.2g} "
        f"≤ {result.tolerance:g} at batch sizes {sizes}",
        soft_wrap=True,
    )
    stderr.print(f"wrote {result.path} and {result.sidecar.name}", soft_wrap=True, markup=False)
    emit_line(str(result.path))
