"""The dataset catalogue. Importing this package never imports torch.

A dataset's loader returns uint8 images (N, C, H, W) and integer labels per split;
``dltool.data.prepare`` draws the validation split, resizes and computes normalisation.
"""

from __future__ import annotations

from typing import ClassVar

from dltool._registry import Registry
from dltool.params import Params


class DatasetParams(Params):
    """A named dataset; `info` is shown by `dltool list datasets`."""

    info: ClassVar[str] = ""


datasets: Registry[DatasetParams] = Registry("datasets", DatasetParams)


@datasets.register("digits", "dltool.data.digits:load_digits")
class DigitsParams(DatasetParams):
    """scikit-learn's 1,797 handwritten digits, 8×8 grey, 10 classes; embedded, no download."""

    info: ClassVar[str] = "UCI ML hand-written digits (CC BY 4.0), shipped inside scikit-learn"
