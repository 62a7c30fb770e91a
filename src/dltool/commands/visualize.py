"""``dltool visualize``: plots and a self-contained report.html of runs, a study or a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dltool.commands import _complete
from dltool.commands._options import ImageFormat, LegacyFormat, ScoreBatch, renamed
from dltool.commands._output import emit_line, say

# Command modules open alike (imports, Opt, a list-of-names argument): one per subcommand.
Opt = typer.Option
Targets = Annotated[
    list[str],
    typer.Argument(
        help="A run dir; several run dirs (compared); a study dir; or a dataset name or image folder "
        "(with --augmentations: a run dir, recipe or config file).",
        show_default=False,
        autocompletion=_complete.registry("datasets"),
    ),
]
Augmentations = Annotated[
    bool,
    Opt(
        "--augmentations",
        help="Only augmentations.png: training images under 5 epochs' draws of a run's or recipe's "
        "data.augment (a run's report.html shows it from then on).",
    ),
]

OutFolder = Annotated[
    Path | None,
    Opt(
        help="Folder for the files. Default: RUN/plots, STUDY/plots; "
        "plots/compare-<runs> or plots/<dataset> in the working directory."
    ),
]
FeatureMaps = Annotated[
    str | None,
    Opt(help="Only this layer's output for --image (a layer name as dltool summary RUN lists it, e.g. 0.0)."),
]


def visualize(
    targets: Targets,
    out: OutFolder = None,
    image_format: ImageFormat = "png",
    split: Annotated[
        str | None, Opt(help="Run: the split scored (default test). Dataset: the split sampled (default train).")
    ] = None,
    root: Annotated[str | None, Opt(help="data.root of a dataset target.")] = None,
    batch_size: ScoreBatch = None,
    device: Annotated[str, Opt(help="Where a run is scored: auto, cpu, cuda, cuda:N or mps.")] = "auto",
    augmentations: Augmentations = False,
    feature_maps: FeatureMaps = None,
    image: Annotated[Path | None, Opt(help="The image whose feature maps --feature-maps draws.")] = None,
    legacy_format: LegacyFormat = None,
) -> None:
    """Draw curves, scores, comparisons, study plots or dataset samples; print each written file.

    A run: loss/accuracy/lr curves, confusion matrices, per-class F1, reliability, ROC and
    precision-recall curves, the most confidently wrong images (or reconstructions), the first
    layer's filters; eval-<split>.json is made when missing. With --feature-maps LAYER --image
    FILE: only that layer's output for that image.
    Several runs: overlaid curves and runs.csv/runs.md of config differences and results.
    A study (dltool tune): history, importances, parallel coordinates, slices. A dataset:
    samples per class and class balance. Each adds report.html, one self-contained page.

    Example: dltool visualize runs/digits-mlp-1 --image-format svg
    """
    from dltool.commands._fetch import fetch_dataset
    from dltool.viz import visualize as draw

    for target in targets:  # a named dataset not downloaded yet (nothing for a run, study or folder)
        fetch_dataset(target, root, quiet=False)
    result = draw(
        targets,
        out=out,
        fmt=renamed(image_format, legacy_format),
        split=split,
        device=device,
        batch_size=batch_size,
        root=root,
        augmentations=augmentations,
        feature_maps=feature_maps,
        image=image,
    )
    for note in result.notes:
        say(f"note: {note}")
    for path in result.written:
        emit_line(str(path))
