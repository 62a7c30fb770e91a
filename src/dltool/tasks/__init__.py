"""The task catalogue: what a model is trained to output, and what every command does with it.

A task is one registry entry here (its metadata, eager and torch-free: config validation,
``tune`` and the progress lines read it) plus one module ``dltool/tasks/<name>.py`` holding
its behaviour, a subclass of ``dltool.tasks.task.Task`` (imported on first use). Adding a
task touches those two places only; the loop, sanity checks, evaluation, predict, export,
tune and visualize ask the task instead of comparing names.

Metadata (ClassVars of the entry's ``TaskParams`` subclass; its docstring's first line is
the description):

- ``target``: what a batch's target is — ``labels`` (an int64 class index per sample) or
  ``values`` (float numbers the output is compared with elementwise; NaN marks a missing
  value, which the losses on values leave out). The losses that can train the task are
  those whose ``LossParams.targets`` include it (``dltool.losses.suited``).
- ``data``: what the dataset's labels must be (``dltool.data.arrays.target_kind``):
  ``labels`` (a class per image), ``masks``, ``points`` (a points.csv folder) or ``values``
  (a targets.csv folder).
- ``missing``: whether a ``values`` target may be NaN (a missing point): the losses then
  average over the values present.
- ``default_loss``: the loss a config without ``loss.name`` gets.
- ``metrics``: the keys besides ``train_loss``/``val_loss`` that its ``metrics.jsonl``
  records carry (e.g. ``val_acc``): what ``train.monitor.metric`` and ``tune --metric``
  may name. ``higher_is_better``: those of them that improve upwards (losses never do).
- ``objective``: the metric ``tune`` optimises by default.
- ``headline``: the test scores ``dltool train``'s closing line shows, as (key of the test
  means, label) pairs; a key the test score lacks is left out, and the loss stands in when
  none is there. ``headline_higher_is_better``: whether the first of them improves upwards
  (``dltool export --int8`` holds the quantized model to it).
- ``tta``: the test-time augmentations its outputs may be averaged over.
- ``rows``: what ``dltool predict`` writes for it, a lazy ``"module:Class"`` target of a
  ``dltool.tasks.rows.Rows`` (NumPy only: predicting with an export never imports torch);
  None: no rows.
- ``breakdown``: the eval document's key that scores each class (point, target) apart, and
  what one is called: the report's table of it (``("per_class", "class")``); None when it
  has no such scores (a reconstruction's), so ``eval --per-class-out`` is refused up front.
- ``ranks_labels``: its rows rank class labels, so ``dltool predict --top-k`` means something.
- ``names_outputs``: its ``classes`` name the model's outputs (logits, points, targets); an
  autoencoder's are its dataset's, which nothing it outputs refers to (an export's sidecar
  then lists none).
- ``on_backbone``: the task is served by a linear head on any classification backbone,
  chosen with ``model.head: <task>``; its width is ``Task.out_features``.
- ``scales_outputs``: the head learns standardised targets, which the model maps to the
  targets' units in a last step fitted on the training split (``dltool.models.target_scale``).

A model's task is its ``ModelParams.task`` (what the network outputs), unless its
``model.head`` puts another head on a classification backbone (``keypoints``, ``regression``):
``task_name(config.model)``.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from dltool._registry import Registry, import_target
from dltool.errors import ConfigError, UsageError
from dltool.params import Params

if TYPE_CHECKING:
    from dltool.tasks.rows import Rows
    from dltool.tasks.task import Task


class TaskParams(Params):
    """Fields every task shares (none beside its name); the metadata are class variables."""

    target: ClassVar[str] = "labels"
    data: ClassVar[str] = "labels"
    default_loss: ClassVar[str] = "cross_entropy"
    missing: ClassVar[bool] = False
    metrics: ClassVar[tuple[str, ...]] = ()
    higher_is_better: ClassVar[frozenset[str]] = frozenset()
    objective: ClassVar[str] = "val_loss"
    headline: ClassVar[tuple[tuple[str, str], ...]] = (("loss", "loss"),)
    headline_higher_is_better: ClassVar[bool] = False
    tta: ClassVar[tuple[str, ...]] = ("none",)
    on_backbone: ClassVar[bool] = False
    names_outputs: ClassVar[bool] = True
    rows: ClassVar[str | None] = None
    breakdown: ClassVar[tuple[str, str] | None] = ("per_class", "class")
    ranks_labels: ClassVar[bool] = False
    # `dltool predict --out DIR` writes a mask PNG per image (dltool.evaluation.segment).
    masks_out: ClassVar[bool] = False
    # Validation sums need the class count every epoch (a confusion matrix over pixels).
    class_sums: ClassVar[bool] = False
    # data.augment keys the task cannot use (ops that move the image but not its target).
    augment_off: ClassVar[tuple[str, ...]] = ()
    scales_outputs: ClassVar[bool] = False
    # Classes the training data must hold: one class leaves nothing to tell apart (its loss is 0).
    min_classes: ClassVar[int] = 0
    # The next step when the training data holds fewer (``{least}``: min_classes).
    few_classes_hint: ClassVar[str] = ""


tasks: Registry[TaskParams] = Registry("tasks", TaskParams)


@tasks.register("classification", "dltool.tasks.classification:Classification")
class ClassificationTask(TaskParams):
    """One class per image: logits (N, classes) against int64 labels."""

    metrics = ("val_acc", "train_acc")
    higher_is_better = frozenset({"val_acc", "train_acc"})
    objective = "val_acc"
    headline = (("accuracy", "accuracy"),)
    headline_higher_is_better = True
    tta = ("none", "flip")
    min_classes = 2
    few_classes_hint = "a folder per class (or data.classes naming {least} or more)"
    rows = "dltool.tasks.rows:LabelRows"
    ranks_labels = True


@tasks.register("reconstruction", "dltool.tasks.reconstruction:Reconstruction")
class ReconstructionTask(TaskParams):
    """An output that reconstructs the input image, compared with it pixel by pixel."""

    target = "values"
    default_loss = "mse"
    names_outputs = False
    breakdown = None


@tasks.register("segmentation", "dltool.tasks.segmentation:Segmentation")
class SegmentationTask(TaskParams):
    """A class per pixel: logits (N, classes, H, W) against masks of class indices (255: ignored)."""

    target = "masks"
    data = "masks"
    metrics = ("val_miou", "val_pixel_acc")
    higher_is_better = frozenset({"val_miou", "val_pixel_acc"})
    objective = "val_miou"
    headline = (("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy"))
    headline_higher_is_better = True
    masks_out = True  # no rows of labels: a mask per image
    class_sums = True
    augment_off = ("auto", "mixup", "cutmix")
    min_classes = 2
    # Binary masks saved as 0/255 are the usual cause: 255 is "ignore", so one class is left.
    few_classes_hint = (
        "masks hold class indices 0, 1, ... and 255 marks pixels to ignore: save a 0/255 mask's foreground as 1"
    )


@tasks.register("keypoints", "dltool.tasks.keypoints:Keypoints")
class KeypointsTask(TaskParams):
    """Points of each image, (x, y) from a linear head on a classification backbone (model.head)."""

    target = "values"
    data = "points"
    missing = True
    default_loss = "mse"
    metrics = ("val_pck", "val_nme", "val_rmse_px")
    higher_is_better = frozenset({"val_pck"})
    objective = "val_pck"
    headline = (("pck", "PCK"), ("rmse_px", "RMSE (px)"))
    headline_higher_is_better = True
    on_backbone = True
    rows = "dltool.tasks.rows:PointRows"
    breakdown = ("per_point", "point")
    augment_off = ("auto", "mixup", "cutmix")


@tasks.register("regression", "dltool.tasks.regression:Regression")
class RegressionTask(TaskParams):
    """Named numbers per image, from a linear head on a classification backbone (model.head)."""

    target = "values"
    data = "values"
    missing = True
    default_loss = "mse"
    metrics = ("val_mae", "val_rmse", "val_r2")
    higher_is_better = frozenset({"val_r2"})
    objective = "val_r2"
    headline = (("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²"))
    on_backbone = True
    rows = "dltool.tasks.rows:ValueRows"
    breakdown = ("per_target", "target")
    augment_off = ("mixup", "cutmix")
    scales_outputs = True  # ages, prices: a head starting at 0 is far from them


def names() -> list[str]:
    return tasks.names()


def takes_heads(task: str) -> bool:
    """Whether a network of ``task`` is a backbone that may carry another task's head: a
    classifier's (its output layer is a linear head, sized by ``Task.out_features``)."""
    return task == "classification"


def backbone_tasks() -> list[str]:
    """The tasks a head on a classification backbone serves (``model.head``'s values but classifier)."""
    return [entry.name for entry in tasks if entry.params.on_backbone]


def task_name(model: Any) -> str:
    """The task of a model's params (a ``ModelParams``): its head's, else the network's own."""
    head = getattr(model, "head", "classifier")
    return str(model.task) if head == "classifier" else str(head)


def out_features(model: Any, classes: list[str]) -> int:
    """The head's width for a model's params and its class (point, target) names (imports torch)."""
    return get(task_name(model)).out_features(classes)


@cache
def get(name: str) -> Task:
    """The task ``name``'s behaviour (imports its module, and torch)."""
    task: Task = tasks.get(name).load()()
    return task


@cache
def rows_of(name: str) -> Rows:
    """The task ``name``'s ``dltool predict`` rows (imports NumPy, never torch); the task
    must have some (``info(name).rows``)."""
    target = info(name).rows
    assert target is not None, f"the {name} task has no rows"
    rows: Rows = import_target(target)()
    return rows


def info(name: str) -> type[TaskParams]:
    """The task ``name``'s metadata (no torch)."""
    return tasks.get(name).params


def record_metrics() -> tuple[str, ...]:
    """Every key a metrics.jsonl record may carry that a monitor or objective may name."""
    extra = [m for entry in tasks for m in entry.params.metrics]
    return tuple(dict.fromkeys(["val_loss", "train_loss", *extra]))


def check_metric(metric: str, task: str, key: str) -> None:
    """Raise ``ConfigError`` unless ``task``'s records carry ``metric`` (``key`` names the setting)."""
    allowed = ["val_loss", "train_loss", *info(task).metrics]
    if metric not in allowed:
        raise ConfigError(f"{key}: {metric!r} is not measured for the {task} task; use one of: {', '.join(allowed)}")


def breakdowns() -> list[tuple[str, str]]:
    """Every task's ``breakdown`` (eval document key, what one row is), each once."""
    return list(dict.fromkeys(entry.params.breakdown for entry in tasks if entry.params.breakdown))


def require_breakdown(task: str, model: str) -> None:
    """A usage error when ``task`` (of model ``model``) scores nothing per class, point or target."""
    if info(task).breakdown is None:
        raise UsageError(f"model {model!r} is a {task} model: {NO_BREAKDOWN}")


NO_BREAKDOWN = "its evaluation has no scores per class, point or target to write as a table"


def headline_scores() -> list[str]:
    """Every task's headline test scores (``headline``' keys), each once, in task order."""
    return list(dict.fromkeys(key for entry in tasks for key, _ in entry.params.headline))


def maximize(metric: str) -> bool:
    """Whether ``metric`` improves upwards (any task's ``higher_is_better``; losses never)."""
    return any(metric in entry.params.higher_is_better for entry in tasks)
