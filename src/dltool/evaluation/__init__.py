"""After training: load a run's model anywhere, score it (eval), label images (predict)."""

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
