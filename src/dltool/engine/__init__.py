"""Training: the loop, checkpoints, devices; ``train`` and ``resume`` are the entry points.

They are imported on first use (PEP 562), so ``eval`` and ``predict``, which use this
package's checkpoint and device modules, do not import the whole training stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dltool.engine.result import RunResult
    from dltool.engine.run import resume, start_run, train

__all__ = ["RunResult", "resume", "start_run", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dltool.engine import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
