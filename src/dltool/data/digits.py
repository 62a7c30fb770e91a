"""scikit-learn's embedded 8×8 digits, as uint8 images with a fixed held-out test split."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np

from dltool.data.arrays import ImageArrays, Split
from dltool.data.cache import cached
from dltool.data.roots import data_root
from dltool.data.splits import stratified_split

TEST_FRACTION = 0.2
# The test split never depends on the run's seeds, so every run is scored on the same images.
TEST_SEED = 0


def load_digits(root: str | Path | None = None) -> ImageArrays:
    """All 1,797 digits: 20% held out (stratified, fixed) as 'test', the rest 'train'.

    Cached after the first call, so later runs do not import scikit-learn at all.
    """
    fingerprint = f"scikit-learn {version('scikit-learn')}; test {TEST_FRACTION} seed {TEST_SEED}"
    return cached(data_root(root) / "digits" / "digits.safetensors", fingerprint, _decode)


def _decode() -> ImageArrays:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    # Pixel values are counts 0..16; scale them to the 0..255 range of every other dataset.
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[:, None, :, :]
    everything = Split(images, bunch.target.astype(np.int64))
    train, test = stratified_split(everything, TEST_FRACTION, TEST_SEED)
    return ImageArrays(classes=[str(c) for c in bunch.target_names], splits={"train": train, "test": test})
