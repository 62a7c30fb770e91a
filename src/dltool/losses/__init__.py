"""The loss catalogue: one row per loss, its implementation in ``dltool.losses.functions``.

Every builder takes its config keys plus the context keywords ``task`` (a name of
``dltool.tasks``, the model's), ``num_classes`` and ``class_counts`` (training samples per
class), and returns a module called as ``loss_fn(output, target)``: logits (N, K) and int64
labels (N,) (or float target distributions (N, K), from MixUp/CutMix) for a task whose
target is ``labels``, two float tensors of the same shape (NaN: missing) for ``values``.
``targets`` says which kinds of target a loss takes; ``tasks``, the tasks it suits, follows.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from dltool._registry import Registry
from dltool.errors import ConfigError
from dltool.params import Params
from dltool.tasks import info, tasks

TASKS = tuple(tasks.names())
Smoothing = Annotated[float, Field(ge=0, lt=1, description="ε: targets 1−ε+ε/K for the true class, ε/K elsewhere")]
ClassWeights = Literal["balanced"] | Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)] | None


class LossParams(Params):
    """Fields every loss shares."""

    # The kinds of target this loss compares the output with (``TaskParams.target``).
    targets: ClassVar[frozenset[str]] = frozenset({"labels"})
    # The tasks registered with dltool's own task catalogue that this loss can train (those
    # whose target it takes); ``check_task`` and ``suited`` also know tasks registered later.
    tasks: ClassVar[frozenset[str]] = frozenset()


losses: Registry[LossParams] = Registry("losses", LossParams)


def suited(task: str) -> list[str]:
    """Names of the losses that can train a model of ``task``."""
    return [entry.name for entry in losses if info(task).target in entry.params.targets]


def check_task(name: str, task: str) -> None:
    """Raise ``ConfigError`` unless loss ``name`` suits ``task``."""
    if task not in tasks:
        raise ConfigError(f"unknown task {task!r}; expected one of: {', '.join(tasks.names())}")
    if info(task).target not in losses.get(name).params.targets:
        raise ConfigError(f"loss.name: {name!r} does not suit the {task} task; use one of: {', '.join(suited(task))}")


BOTH = frozenset({"labels", "values"})


@losses.register("cross_entropy", "dltool.losses.functions:CrossEntropy")
class CrossEntropyParams(LossParams):
    """Cross-entropy on logits, with optional label smoothing and class weights (masks: per pixel, 255 ignored)."""

    targets: ClassVar[frozenset[str]] = frozenset({"labels", "masks"})
    label_smoothing: Smoothing = 0.0
    class_weights: ClassWeights = Field(
        None, description="null, 'balanced' (n_samples / (n_classes · count)), or one weight per class"
    )

    @field_validator("class_weights", mode="before")
    @classmethod
    def _one_clear_message(cls, value: Any) -> Any:
        # The union's own errors would name each alternative; say once what is allowed.
        numbers = (
            isinstance(value, list)
            and value
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value)
        )
        if value is None or value == "balanced" or numbers:
            return value
        raise ValueError("should be null, 'balanced' or a list of one weight ≥ 0 per class")


@losses.register("bce_with_logits", "dltool.losses.functions:BCEWithLogits")
class BCEWithLogitsParams(LossParams):
    """Binary cross-entropy of each logit's sigmoid against one-hot targets (one-vs-rest)."""

    label_smoothing: Smoothing = 0.0


@losses.register("nll", "dltool.losses.functions:NLL")
class NLLParams(LossParams):
    """Negative log-likelihood of the log-softmax of the logits."""


@losses.register("kl_div", "dltool.losses.functions:KLDiv")
class KLDivParams(LossParams):
    """KL divergence from the (smoothed) one-hot target distribution to the softmax, per sample."""

    label_smoothing: Smoothing = 0.0


@losses.register("mse", "dltool.losses.functions:MSE")
class MSEParams(LossParams):
    """Mean squared error: output vs image, or softmax vs one-hot target."""

    targets: ClassVar[frozenset[str]] = BOTH


@losses.register("l1", "dltool.losses.functions:L1")
class L1Params(LossParams):
    """Mean absolute error: output vs image, or softmax vs one-hot target."""

    targets: ClassVar[frozenset[str]] = BOTH


@losses.register("smooth_l1", "dltool.losses.functions:SmoothL1")
class SmoothL1Params(LossParams):
    """Smooth L1 (Huber-like): quadratic below `beta`, linear above; as mse/l1 for targets."""

    targets: ClassVar[frozenset[str]] = BOTH
    beta: float = Field(1.0, ge=0, description="where the quadratic part ends (0: plain L1)")


@losses.register("dice", "dltool.losses.dense:Dice")
class DiceParams(LossParams):
    """Soft Dice of the softmax against the masks, averaged over classes (255 ignored)."""

    targets: ClassVar[frozenset[str]] = frozenset({"masks"})
    smooth: float = Field(1.0, ge=0, description="added to both sides of each class's Dice ratio")


@losses.register("ce_dice", "dltool.losses.dense:CrossEntropyDice")
class CrossEntropyDiceParams(LossParams):
    """Cross-entropy per pixel plus `dice_weight` × soft Dice (255 ignored)."""

    targets: ClassVar[frozenset[str]] = frozenset({"masks"})
    dice_weight: float = Field(1.0, ge=0, description="weight of the Dice term")
    smooth: float = Field(1.0, ge=0, description="added to both sides of each class's Dice ratio")


for _entry in losses:
    _entry.params.tasks = frozenset(t for t in TASKS if info(t).target in _entry.params.targets)
