"""After training: load a run's model anywhere, score it (eval), label images (predict)."""

from typing import Any

# The scalar keys of an eval document (eval-<split>.json), in the order people are shown them
# (`dltool eval`'s table, the report of `dltool visualize`). Here, not in evaluate.py, so
# that reading them imports no torch.
SCALAR_KEYS = (
    "n",
    "loss",
    "accuracy",
    "balanced_accuracy",
    "top5_accuracy",
    "macro_f1",
    "weighted_f1",
    "roc_auc",
    "average_precision",
    "ece",
    "brier",
    "mse",
    "psnr",
    "pixel_accuracy",
    "miou",
    "mean_dice",
)


def scalars(document: dict[str, Any]) -> list[tuple[str, Any]]:
    """An eval document's numbers in the order people are shown them: ``SCALAR_KEYS``, then
    the task's others as the document has them (a keypoint model's ``rmse_px``, ``nme``, ...)."""
    numbers = [k for k, v in document.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [(k, document[k]) for k in SCALAR_KEYS if k in document] + [
        (k, document[k]) for k in numbers if k not in SCALAR_KEYS
    ]


def item_tables(document: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The document's per-item score tables besides ``per_class`` (``per_point``,
    ``per_target``, ...): each maps an item's name to its scores."""
    return {
        key: value
        for key, value in document.items()
        if key.startswith("per_") and key != "per_class" and isinstance(value, dict) and value
        if all(isinstance(row, dict) for row in value.values())
    }
