"""Inside a trained network: its first layer's filters as images, and the activations of a
chosen layer for a chosen image (``dltool visualize RUN --feature-maps LAYER --image FILE``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn

from dltool._io import slug
from dltool.errors import DatasetError, UsageError, option, suggest
from dltool.figures.canvas import Plotter, Visualization, grid_shape, new_figure

SHOWN = 64  # filters or channels drawn at most
COLUMNS = 8
TILE = 1.0  # inches per tile


def first_layer_weights(model: nn.Module, in_shape: tuple[int, ...]) -> tuple[str, np.ndarray] | None:
    """The first weighted layer's name and its weights as images (N, C, kH, kW): a Conv2d's
    kernels, or a Linear's rows reshaped to the input (an MLP's first layer looks at whole
    images). None when the first weighted layer is neither."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module.weight.detach().float().cpu().numpy()
        if isinstance(module, nn.Linear):
            if module.in_features != math.prod(in_shape):
                return None
            return name, module.weight.detach().float().cpu().numpy().reshape(-1, *in_shape)
    return None


def filters_figure(name: str, kind: str, weights: np.ndarray) -> Figure:
    """Up to ``SHOWN`` filters, each stretched to its own range: RGB where they read three
    channels, else grey (the mean over input channels)."""
    shown = weights[:SHOWN]
    rows, columns = grid_shape(len(shown), COLUMNS)
    figure = new_figure(columns * TILE, rows * TILE + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, kernel in zip(axes.flat, shown):
        image = kernel.transpose(1, 2, 0) if kernel.shape[0] == 3 else kernel.mean(0)
        low, high = image.min(), image.max()
        ax.imshow((image - low) / (high - low or 1), cmap="gray", interpolation="nearest")
        ax.set_axis_off()
    for ax in axes.flat[len(shown) :]:
        ax.set_axis_off()
    size = "×".join(map(str, weights.shape[2:]))
    figure.suptitle(f"First layer {name} ({kind}): {len(shown)} of {len(weights)} filters, {size}", fontsize=9)
    return figure


def save_filters(plotter: Plotter, model: nn.Module, in_shape: tuple[int, ...]) -> list[Path]:
    """``filters`` in ``plotter``'s folder, when the network starts with filters to draw."""
    found = first_layer_weights(model, in_shape)
    if found is None:
        return []
    name, weights = found
    kind = type(model.get_submodule(name)).__name__
    caption = "the first layer's filters (weights as images, each scaled to its own range)"
    return [plotter.save(filters_figure(name, kind, weights), "filters", caption)]


def visualize_feature_maps(
    run: Path, layer: str, image: Path, *, out: Path | None = None, fmt: str = "png", device: str = "auto"
) -> Visualization:
    """``feature-maps-<layer>`` in ``out`` (default ``RUN/plots``): what ``layer`` (a dotted
    module name, as ``dltool summary`` lists them) outputs for ``image``, decoded as predict
    decodes it."""
    from dltool.evaluation.trained import load_trained
    from dltool.rundir import RunDir

    trained = load_trained(run, device=device)
    modules = dict(trained.model.named_modules())
    if layer not in modules or not layer:
        raise UsageError(
            f"{option('feature_maps', layer)}: no such layer in {trained.name}"
            + suggest(layer, [n for n in modules if n])
            + f" (see: {option('summary', str(run), python=f'dltool.summary({str(run)!r})')})"
        )
    activation = _activation(trained, modules[layer], image)
    plotter = Plotter(Path(out) if out is not None else RunDir(run).plots, fmt)
    figure = feature_maps_figure(activation, layer, type(modules[layer]).__name__, image.name)
    caption = f"the output of {layer} for {image.name}, each channel scaled to its own range"
    return plotter.visualization([plotter.save(figure, f"feature-maps-{slug(layer, 'layer')}", caption)], [])


def _activation(trained: Any, module: nn.Module, image: Path) -> np.ndarray:
    """``module``'s output for the one image (batch dimension dropped), as float32."""
    from dltool.evaluation.inputs import Decoder, decoded_chunks

    chunk = next(iter(decoded_chunks([str(image)], Decoder.of(trained), chunk=1, workers=0)))
    if chunk.unreadable:
        raise DatasetError(f"{option('image', str(image))}: {chunk.unreadable[0].reason}")
    captured: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        with torch.inference_mode():
            trained.model(trained.normalise(torch.from_numpy(chunk.images).to(trained.device)))
    finally:
        hook.remove()
    output = captured[0] if captured else None
    if not isinstance(output, torch.Tensor) or output.dim() not in (2, 4):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise UsageError(
            f"{option('feature_maps', python='feature_maps')}: the layer's output is {shape}; "
            "expected channels (1, C, H, W) or features (1, F)"
        )
    return output[0].float().cpu().numpy()


def feature_maps_figure(activation: np.ndarray, layer: str, kind: str, image_name: str) -> Figure:
    """Channels (C, H, W) as a grid of images (viridis, each to its own range), or features
    (F,) as bars."""
    title = f"{layer} ({kind}) on {image_name}"
    if activation.ndim == 1:
        figure = new_figure(6.4, 2.6)
        ax = figure.add_subplot()
        ax.bar(np.arange(len(activation)), activation, width=1.0, color="C0")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # feature 0, 1, ...: no ticks at 0.25
        ax.set_xlabel("feature")
        ax.set_ylabel("activation")
        ax.set_title(f"{title}: {len(activation)} features", fontsize=9)
        return figure
    shown = activation[:SHOWN]
    rows, columns = grid_shape(len(shown), COLUMNS)
    figure = new_figure(columns * TILE, rows * TILE + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, (ax, channel) in enumerate(zip(axes.flat, shown)):
        ax.imshow(channel, cmap="viridis", interpolation="nearest")
        ax.set_title(str(index), fontsize=6)
        ax.set_axis_off()
    for ax in axes.flat[len(shown) :]:
        ax.set_axis_off()
    size = "×".join(map(str, activation.shape[1:]))
    figure.suptitle(f"{title}: {len(shown)} of {len(activation)} channels, {size}", fontsize=9)
    return figure
