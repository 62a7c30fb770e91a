"""dltool: train, tune, evaluate and use PyTorch image models from the command line.

From Python: ``from dltool import train, resume, evaluate, predict, segment, export_model, tune`` (see ``dltool.api``).
They are loaded on first access, so ``import dltool`` (and ``dltool --help``) stays free of torch.
"""

import importlib
from typing import TYPE_CHECKING, Any

from dltool._version import __version__

if TYPE_CHECKING:
    from dltool.api import Masks, Predictions, evaluate, export_model, predict, resume, segment, train, tune

__all__ = [
    "Masks",
    "Predictions",
    "__version__",
    "evaluate",
    "export_model",
    "predict",
    "resume",
    "segment",
    "train",
    "tune",
]
_API = set(__all__) - {"__version__"}  # in dltool.api


def __getattr__(name: str) -> Any:  # PEP 562: a lazy attribute of the package
    if name in _API:
        return getattr(importlib.import_module("dltool.api"), name)
    raise AttributeError(f"module 'dltool' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
