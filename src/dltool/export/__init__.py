"""Trained models as ONNX or TorchScript files with a sidecar JSON, and those files run again.

``export_trained`` writes and verifies an export (``dltool export``); ``load_exported``
loads one for inference with the same interface as a trained run (``dltool predict``).
"""

from dltool.export.export import ExportResult, default_output, export_trained
from dltool.export.exported import Exported, is_export, load_exported, sidecar_path
from dltool.export.formats import FORMATS

__all__ = [
    "FORMATS",
    "ExportResult",
    "Exported",
    "default_output",
    "export_trained",
    "is_export",
    "load_exported",
    "sidecar_path",
]
