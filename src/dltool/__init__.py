"""dltool: train, tune, evaluate and use PyTorch image models from the command line.

From Python: ``from dltool import train, resume, evaluate, predict, segment, export_model, tune``
(see ``dltool.api``) and ``stats_of, summary, visualize`` (``dltool.api_reports``).
They are loaded on first access, so ``import dltool`` (and ``dltool --help``) stays free of torch.
"""

import importlib
from typing import TYPE_CHECKING, Any

from dltool._version import __version__

if TYPE_CHECKING:
    from dltool.api import Masks, Predictions, evaluate, export_model, predict, resume, segment, train, tune
    from dltool.api_reports import stats_of, summary, visualize

__all__ = [
    "Masks",
    "Predictions",
    "__version__",
    "evaluate",
    "export_model",
    "predict",
    "resume",
    "segment",
    "stats_of",
    "summary",
    "train",
    "tune",
    "visualize",
]
_REPORTS = {"stats_of", "summary", "visualize"}
# The module each lazy attribute comes from.
_LAZY = {name: "dltool.api_reports" if name in _REPORTS else "dltool.api" for name in __all__ if name != "__version__"}


def __getattr__(name: str) -> Any:  # PEP 562: a lazy attribute of the package
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dltool' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
