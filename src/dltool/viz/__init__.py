"""Plots and a self-contained HTML report of runs, several runs, a study or a dataset.

The library never prints: each ``visualize_*`` function writes its files into a folder and
returns a ``Visualization`` (the written paths, and notes on what could not be drawn).
Importing ``dltool.viz`` imports matplotlib; torch and Optuna only when a function needs them.
"""

from __future__ import annotations

from dltool.figures.canvas import FORMATS, Visualization
from dltool.viz.compare import visualize_runs
from dltool.viz.dataset import visualize_dataset
from dltool.viz.run import visualize_run
from dltool.viz.study import open_study, visualize_study
from dltool.viz.targets import visualize

__all__ = [
    "FORMATS",
    "Visualization",
    "open_study",
    "visualize",
    "visualize_dataset",
    "visualize_run",
    "visualize_runs",
    "visualize_study",
]
