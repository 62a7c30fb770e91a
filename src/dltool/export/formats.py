"""How each export format is written from a PyTorch module and run again.

- **ONNX** is written by torch's ``torch.export``-based exporter (``dynamo=True``) and run by
  onnxruntime. It is slower than the TorchScript-based ``dynamo=False`` exporter (about 1 s
  per model against 0.1 s, and 2 s more for its first import), but that one is deprecated
  since torch 2.9 and on its way out, and it cannot take what ``torch.export`` can; an export
  is a one-off, so the supported path wins. It writes opset 18 or newer: older opsets would
  go through onnx's version converter, which fails on common operators (Pad) and then
  silently keeps 18, so they are refused up front.
- **TorchScript** is ``torch.jit.trace``: every dltool model is a fixed graph of modules, so
  tracing records all of it, and the verification in ``dltool.export.export`` runs the traced
  file at two batch sizes. PyTorch deprecates TorchScript for ``torch.export`` but still
  writes and loads it; its ``FutureWarning`` on every trace, save and load says nothing about
  the model, so it is hidden.

Both take and give float32 (N, C, H, W) → (N, ...) with a dynamic batch dimension N, opened
as a function on NumPy arrays. Running an ONNX file imports no torch (torch is imported
where a format is written, or a TorchScript file opened).
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from dltool._extras import require as require_extra
from dltool._signals import interrupts_kept
from dltool.errors import CheckpointError, ExportError, UsageError, first_line

if TYPE_CHECKING:
    import torch
    from torch import nn

Forward = Callable[[np.ndarray], np.ndarray]  # normalised float32 images → the model's output, float32
INPUT_NAME = "images"
MIN_OPSET = 18  # the oldest opset torch's exporter implements itself (torch.onnx's TORCHLIB_OPSET)


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # of the default file name
    runtime: str  # what runs the file, for messages
    write: Callable[[nn.Module, torch.Tensor, int | None, str], bytes]  # (model, example batch, opset, output name)
    open: Callable[[bytes, str], Forward]  # (file, device: cpu, cuda, cuda:N, mps) -> its forward pass
    describe: Callable[[bytes], dict[str, Any]]  # the format's own sidecar fields


def require(module: str) -> ModuleType:
    """``module``, an optional dependency of the ONNX format, or a usage error saying how to install it."""
    return require_extra(module, "onnx", "ONNX export and inference")


# --- ONNX ------------------------------------------------------------------------------


def _check_opset(opset: int) -> None:
    newest = require("onnx").defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise UsageError(
            f"opset {opset}: torch's ONNX exporter writes opsets {MIN_OPSET} to {newest} (the installed onnx's newest)"
        )


def write_onnx(model: nn.Module, example: torch.Tensor, opset: int | None, output_name: str) -> bytes:
    import torch

    for module in ("onnx", "onnxscript", "onnxruntime"):  # the exporter's, and the verification's
        require(module)
    if opset is not None:
        _check_opset(opset)
    try:
        # A Ctrl-C in the exporter is a stop (exit 130), not "the exporter failed", nor lost.
        with interrupts_kept(), quiet_loggers("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir"):
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[output_name],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                opset_version=opset,
                verbose=False,
            )
    except Exception as error:  # the exporter raises many types; any is "cannot export this model"
        raise ExportError(f"torch's ONNX exporter failed: {first_line(error)}") from None
    assert program is not None  # dynamo=True always returns the program
    data = program.model_proto.SerializeToString()
    if opset is not None and (written := onnx_opset(data)) != opset:
        raise ExportError(f"torch's ONNX exporter could not write opset {opset} (it wrote {written})")
    return data


def onnx_opset(data: bytes) -> int:
    """The version of the standard operator set that the ONNX file ``data`` uses."""
    proto = require("onnx").load_from_string(data)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def open_onnx(data: bytes, device: str) -> Forward:
    """An onnxruntime session on the CPU (``session_options``), as a function on NumPy arrays."""
    if device != "cpu":
        raise UsageError(f"device {device!r}: ONNX files run on onnxruntime's CPU provider here")
    ort = require("onnxruntime")
    try:
        session = ort.InferenceSession(data, session_options(ort), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
        raise CheckpointError(f"onnxruntime cannot load it: {first_line(error)}") from None
    name = session.get_inputs()[0].name

    def forward(images: np.ndarray) -> np.ndarray:
        output: np.ndarray = session.run(None, {name: images})[0]
        return output

    return forward


def session_options(ort: ModuleType) -> Any:
    """onnxruntime's options for predict: one thread per usable core (``OMP_NUM_THREADS`` where
    set, as torch counts them) and no spinning."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its notes on graph optimisation are not the user's business
    options.intra_op_num_threads = intra_op_threads()
    # Its threads would otherwise spin for a while after each run, taking the cores from what
    # runs between batches (predict's image decoding, PyTorch in the same process).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def intra_op_threads() -> int:
    if (setting := os.environ.get("OMP_NUM_THREADS", "")).isdigit() and int(setting) > 0:
        return int(setting)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Silence these loggers for the duration: the exporter logs its progress and its
    version-conversion attempts (tracebacks included) as warnings on stderr."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# --- TorchScript -----------------------------------------------------------------------


@contextmanager
def _without_torchscript_deprecation() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        yield


def write_torchscript(model: nn.Module, example: torch.Tensor, opset: int | None, output_name: str) -> bytes:
    import torch

    del opset, output_name  # ONNX's; a TorchScript module has no opset and unnamed outputs
    buffer = io.BytesIO()
    with _without_torchscript_deprecation():
        traced = torch.jit.trace(model, example, check_trace=False)  # checked by the verification instead
        torch.jit.save(traced, buffer)
    return buffer.getvalue()


def open_torchscript(data: bytes, device: str) -> Forward:
    import torch

    from dltool.engine.device import resolve_device

    where = resolve_device(device)
    try:
        with _without_torchscript_deprecation():
            module = torch.jit.load(io.BytesIO(data), map_location=where).eval()
    except RuntimeError as error:
        raise CheckpointError(f"torch.jit cannot load it: {first_line(error)}") from None

    def forward(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            output: np.ndarray = module(torch.from_numpy(images).to(where)).float().cpu().numpy()
        return output

    return forward


FORMATS = {
    "onnx": Format("onnx", ".onnx", "onnxruntime", write_onnx, open_onnx, lambda data: {"opset": onnx_opset(data)}),
    "torchscript": Format(
        "torchscript", ".torchscript", "torch.jit", write_torchscript, open_torchscript, lambda data: {}
    ),
}
