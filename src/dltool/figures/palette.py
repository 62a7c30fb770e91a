"""The class colours of masks: the palette of ``predict``'s mask PNGs and overlays and of
``visualize``'s mask pictures (NumPy only: predicting imports no matplotlib)."""

from __future__ import annotations

import numpy as np

# Class colours (RGB) of the masks' palette and the overlays; class 0 (often the background) black.
PALETTE = np.array(
    [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
     (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
     (170, 110, 40), (255, 250, 200), (128, 0, 0)],
    np.uint8,
)  # fmt: skip


def colours(count: int) -> np.ndarray:
    """(count, 3) uint8 class colours: the palette, repeated."""
    return PALETTE[np.arange(count) % len(PALETTE)]
