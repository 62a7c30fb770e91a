"""Trained models as ONNX or TorchScript files with a sidecar JSON, and those files run again.

``dltool.export.export.export_trained`` writes and verifies an export (``dltool export``;
imports torch); ``load_exported`` loads one for inference with the same interface as a
trained run (``dltool predict``; an ONNX file without importing torch, so this package's
root imports only that side).
"""

from dltool.export.exported import Exported, is_export, load_exported, sidecar_path
from dltool.export.formats import FORMATS

__all__ = ["FORMATS", "Exported", "is_export", "load_exported", "sidecar_path"]
