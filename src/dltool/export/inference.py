"""Any model file ``predict`` takes, opened for inference: a run dir, its weights, a ``.pt``
checkpoint, or an ONNX/TorchScript export (``dltool export``) with its sidecar.

It lives beside the exports because it knows both kinds of file: ``evaluation`` (below)
knows only trained runs, so it never imports this package."""

from __future__ import annotations

from pathlib import Path

from dltool.errors import UsageError
from dltool.evaluation.model import InferenceModel
from dltool.export.exported import is_export, load_exported


def load_inference_model(target: Path | str, *, device: str = "auto", amp: str = "off") -> InferenceModel:
    """``target`` ready for ``dltool.evaluation.predict.predict``; an export runs on the CPU
    unless ``device`` names another (``auto`` means the CPU for exports). An ONNX export is
    loaded without importing torch; anything else imports it. ``amp``: a run's autocast
    (``dltool.evaluation.trained.INFERENCE_AMP``); an export keeps the precision it was written in."""
    if is_export(Path(target)):  # the same pipeline; only the forward pass runs in onnxruntime or torch.jit
        if amp != "off":
            raise UsageError(f"amp {amp!r} autocasts a run's PyTorch model; {target} is an export (use the run)")
        return load_exported(Path(target), device="cpu" if device == "auto" else device)
    from dltool.evaluation.trained import load_trained

    return load_trained(target, device=device, amp=amp)
