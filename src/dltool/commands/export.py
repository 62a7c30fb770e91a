"""``dltool export``: the model as an ONNX or TorchScript file others can run, verified first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dltool.commands._options import ExportTo, LegacyFormat, TrainedModel, renamed
from dltool.commands._output import emit_line, say, stderr
from dltool.export.int8 import CALIBRATION_IMAGES, MAX_DROP, Int8, Int8Check

if TYPE_CHECKING:
    from dltool.evaluation.trained import Trained

Opt = typer.Option


def export(
    target: TrainedModel,
    to: ExportTo = "onnx",
    output: Annotated[
        Path | None,
        Opt(help="File to write (default: RUN/export/model.onnx or .torchscript); its sidecar is FILE.json."),
    ] = None,
    opset: Annotated[int | None, Opt(help="ONNX opset, 18 or newer (default: torch's, 20).")] = None,
    force: Annotated[bool, Opt("--force", help="Replace an existing file and its sidecar.")] = False,
    int8: Annotated[
        bool,
        Opt("--int8", help="ONNX quantized to int8 (default file: model.int8.onnx), kept if it scores as well."),
    ] = False,
    calibration: Annotated[
        int, Opt(min=1, help="--int8: training images that set the activation ranges.")
    ] = CALIBRATION_IMAGES,
    max_drop: Annotated[
        float,
        Opt(min=0, max=1, help="--int8: how much worse its test score may be, as a fraction of the model's."),
    ] = MAX_DROP,
    legacy_format: LegacyFormat = None,
) -> None:
    """Export a model with a dynamic batch size and a sidecar JSON (classes, input size,
    normalisation); prints the file. Its outputs are checked against PyTorch's first; an
    --int8 file is kept only if its test score is within --max-drop of the model's.

    Example: dltool predict $(dltool export runs/digits-mlp-1 --to onnx) photos/
    """
    from dltool.evaluation.trained import load_trained
    from dltool.export.export import export_trained

    trained = load_trained(target)
    quantized = Int8(calibration, max_drop) if int8 else None
    format_name = renamed(to, legacy_format)
    if quantized is not None:
        _announce_int8(trained, format_name, opset, quantized)
    result = export_trained(trained, format_name, output, opset=opset, force=force, int8=quantized)
    sizes = " and ".join(map(str, result.batch_sizes))
    stderr.print(
        f"verified with {result.runtime}: max abs diff from PyTorch {result.max_abs_diff:.2g} "
        f"≤ {_allowed(result.tolerance)} at batch sizes {sizes}",
        soft_wrap=True,
    )
    if result.int8 is not None:
        stderr.print(_int8_line(result.int8), soft_wrap=True)
    say(f"wrote {result.path} and {result.sidecar.name}")
    emit_line(str(result.path))


def _allowed(tolerance: float) -> str:
    from dltool.export.export import TOLERANCE

    return f"{tolerance:g}" + (f" ({TOLERANCE:g} of the largest output)" if tolerance > TOLERANCE else "")


def _announce_int8(trained: Trained, format_name: str, opset: int | None, int8: Int8) -> None:
    """Minutes of work for a large model: say what is coming, once the settings are known to fit."""
    from dltool.export.export import checked_format

    checked_format(trained, format_name, opset, int8)
    say(
        f"int8: after the float file's check, calibrating on up to {int8.calibration} training images, "
        "then scoring both models on the test split"
    )


def _int8_line(check: Int8Check) -> str:
    change = f"{check.drop:.2%} worse" if check.drop > 0 else "no worse"
    scores = f"{check.score} {check.int8_score:.4g} on {check.images} {check.split} images"
    against = f"against the model's {check.float_score:.4g} ({change}; allowed: {check.max_drop:.1%})"
    return f"int8, calibrated on {check.calibration_images} training images: {scores} {against}{_speed(check.speedup)}"


def _speed(speedup: float | None) -> str:
    if speedup is None:
        return ""
    slower = " (the float file is the faster one for this model)" if speedup < 1 else ""
    return f"; {speedup:.2g}× the float file's speed here{slower}"
