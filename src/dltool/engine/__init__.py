"""Training: the loop, checkpoints, devices; ``train`` and ``resume`` are the entry points."""

from dltool.engine.run import RunResult, resume, start_run, train

__all__ = ["RunResult", "resume", "start_run", "train"]
