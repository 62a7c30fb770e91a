"""Matplotlib figures of plain numbers: the canvas (headless backend, sizes, reproducible
saving) and the figures more than one layer draws (the confusion matrix: ``dltool
visualize`` and the engine's TensorBoard events).

It knows nothing of runs, studies or datasets, so it sits below the engine; ``viz`` builds
the figures of a run, a study or a dataset on top of it.
"""
