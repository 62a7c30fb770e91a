"""benches/end_to_end.py: the scripts train on dltool's own digits split, every side runs as
a fresh process, and the rows carry issue 21's goals."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from conftest import REPO
from dltool.data.digits import load_digits

sys.path.insert(0, str(REPO / "benches"))
import _e2e_data
import end_to_end


def test_the_scripts_split_is_dltools_digits_split() -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    splits = load_digits().splits
    bunch = sklearn_digits()
    test = _e2e_data.held_out(bunch.target, _e2e_data.TEST_FRACTION, _e2e_data.TEST_SEED)
    pixels = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[:, None]
    assert np.array_equal(pixels[test], splits["test"].images)
    x_train, y_train, x_test, y_test = _e2e_data.digits_split()
    assert np.array_equal(y_train, splits["train"].labels) and np.array_equal(y_test, splits["test"].labels)
    assert x_test.shape == (len(test), 64) and x_train.dtype == np.float32
    assert abs(float(x_train.mean())) < 1e-5 and abs(float(x_train.std()) - 1) < 1e-3


def test_the_rows_hold_dltool_to_the_issue_goals() -> None:
    measured = {"dltool": (4.0, 0.98), "sklearn": (4.4, 0.972), "torch": (4.8, 0.98), "floor": (2.2, None)}
    rows = {row.id: row for row in end_to_end.rows(measured, rounds=3)}
    sklearn, accuracy = rows["end-to-end.digits-mlp.vs-sklearn"], rows["end-to-end.digits-mlp.accuracy-vs-sklearn"]
    assert sklearn.ratio == pytest.approx(1.1) and sklearn.goal == 1.0 and sklearn.met is True
    assert "4.40 (test accuracy 0.9720)" in sklearn.reference and "median of 3" in sklearn.bench
    assert accuracy.ratio == pytest.approx(0.98 / 0.972) and accuracy.met is True
    torch_row = rows["end-to-end.digits-mlp.vs-torch"]  # 4.0 s is 0.83x the script's 4.8 s: short of 0.8x
    assert torch_row.goal == pytest.approx(1.25) and torch_row.met is False
    lightning = rows["end-to-end.digits-mlp.vs-lightning"]
    assert lightning.reference == "not installed" and lightning.ratio is None and lightning.met is None
    floor = rows["end-to-end.torch-floor-vs-sklearn"]  # scikit-learn's run against torch's start-up
    assert floor.ratio == pytest.approx(2.2 / 4.4) and floor.goal is None
    assert "4.40 scikit-learn" in floor.dltool and "2.20 PyTorch start-up" in floor.reference


@pytest.mark.slow
def test_every_side_runs_as_a_fresh_process_and_reports_its_accuracy() -> None:
    measured = end_to_end.measure(rounds=1, warm_all=False)
    lightning = importlib.util.find_spec("lightning") is not None
    assert set(measured) == {"dltool", "sklearn", "torch", "floor", *(["lightning"] if lightning else [])}
    floor_s, nothing_trained = measured.pop("floor")
    assert nothing_trained is None and 0 < floor_s < measured["torch"][0]  # the script pays the floor, then trains
    assert all(seconds > 0 and 0.9 < accuracy <= 1 for seconds, accuracy in measured.values())
