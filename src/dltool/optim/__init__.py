"""The optimizer and learning-rate schedule catalogues.

Optimizers are torch's own classes, one table row each; schedules are factor functions
of the optimizer step (``dltool.optim.schedules``), composed with a linear warmup.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from dltool._registry import Registry
from dltool.params import Params


class OptimizerParams(Params):
    """Fields every optimizer shares."""

    common: ClassVar[frozenset[str]] = frozenset({"name", "decay_norm_and_bias", "backbone_lr_scale"})
    fused_on: ClassVar[frozenset[str]] = frozenset()  # device types where torch has a fused step
    lr: float = Field(1e-3, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty (decoupled for adamw)")
    decay_norm_and_bias: bool = Field(True, description="false: no weight decay on norm layers and biases")
    backbone_lr_scale: float = Field(
        1.0, gt=0, description="the backbone's lr as a multiple of the head's (discriminative fine-tuning)"
    )


class SchedulerParams(Params):
    """Fields every learning-rate schedule shares."""

    common: ClassVar[frozenset[str]] = frozenset({"name", "warmup_epochs"})
    warmup_epochs: float = Field(0, ge=0, description="linear warmup from ~0 to lr, in epochs")


optimizers: Registry[OptimizerParams] = Registry("optimizers", OptimizerParams)
schedulers: Registry[SchedulerParams] = Registry("schedulers", SchedulerParams)

Betas = tuple[float, float]
# Where torch fuses SGD, Adam and AdamW (since torch 2.4): one kernel per tensor instead of a
# dozen small ops, 15% of digits-mlp's whole step with Adam on a CPU and most of a small model's
# kernel launches on a GPU. The fused kernels round differently from the per-tensor loop.
FUSED_DEVICES = frozenset({"cpu", "cuda"})


def build_optimizer(spec: OptimizerParams, params: Any, device_type: str) -> Any:
    """torch's optimizer for ``spec`` over ``params`` on ``device_type``, fused where torch can."""
    fused = {"fused": True} if device_type in spec.fused_on else {}
    return optimizers.build(spec, params=params, **fused)


@optimizers.register("sgd", "torch.optim:SGD")
class SGDParams(OptimizerParams):
    """Stochastic gradient descent with (Nesterov) momentum."""

    fused_on = FUSED_DEVICES

    lr: float = Field(0.1, gt=0, description="learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDParams:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self


@optimizers.register("rmsprop", "torch.optim:RMSprop")
class RMSpropParams(OptimizerParams):
    """RMSProp: steps scaled by a running average of squared gradients."""

    lr: float = Field(1e-3, gt=0, description="learning rate")
    alpha: float = Field(0.99, gt=0, lt=1, description="smoothing of the squared-gradient average")
    eps: float = Field(1e-8, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)


@optimizers.register("adam", "torch.optim:Adam")
class AdamParams(OptimizerParams):
    """Adam: adaptive moments; weight decay as an L2 term in the gradient."""

    fused_on = FUSED_DEVICES

    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)


@optimizers.register("adamw", "torch.optim:AdamW")
class AdamWParams(OptimizerParams):
    """AdamW: Adam with decoupled weight decay."""

    fused_on = FUSED_DEVICES

    weight_decay: float = Field(0.01, ge=0, description="decoupled weight decay")
    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)


# One entry per schedule, each of the same shape (a table in code): alike on purpose.
@schedulers.register("none", "dltool.optim.schedules:constant")
class ConstantParams(SchedulerParams):
    """Constant learning rate (after the optional warmup)."""


@schedulers.register("step", "dltool.optim.schedules:step")
class StepParams(SchedulerParams):
    """Multiply the learning rate by `gamma` every `step_size` epochs."""

    step_size: int = Field(30, ge=1, description="epochs between decays")
    gamma: float = Field(0.1, gt=0, le=1)


@schedulers.register("multistep", "dltool.optim.schedules:multistep")
class MultiStepParams(SchedulerParams):
    """Multiply the learning rate by `gamma` at each epoch in `milestones`."""

    milestones: list[int] = Field(default_factory=lambda: [30, 60], min_length=1)
    gamma: float = Field(0.1, gt=0, le=1)

    @model_validator(mode="after")
    def _increasing(self) -> MultiStepParams:
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])) or self.milestones[0] < 1:
            raise ValueError("milestones must be increasing epoch numbers ≥ 1")
        return self


@schedulers.register("exponential", "dltool.optim.schedules:exponential")
class ExponentialParams(SchedulerParams):
    """Multiply the learning rate by `gamma` every epoch."""

    gamma: float = Field(0.95, gt=0, le=1)


@schedulers.register("cosine", "dltool.optim.schedules:cosine")
class CosineParams(SchedulerParams):
    """Cosine annealing from lr to `min_lr_ratio`·lr over the epochs after warmup, per step."""

    min_lr_ratio: float = Field(0.0, ge=0, le=1)


@schedulers.register("linear", "dltool.optim.schedules:linear")
class LinearParams(SchedulerParams):
    """Linear decay from lr to `min_lr_ratio`·lr over the epochs after warmup, per step."""

    min_lr_ratio: float = Field(0.0, ge=0, le=1)


@schedulers.register("plateau", "dltool.optim.schedules:Plateau")
class PlateauParams(SchedulerParams):
    """Multiply the learning rate by `factor` when the monitored metric stalls for `patience` epochs."""

    factor: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(5, ge=0, description="epochs without improvement before a cut")
    threshold: float = Field(1e-4, ge=0, description="relative change that counts as improvement")
    cooldown: int = Field(0, ge=0, description="epochs to wait after a cut")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="floor, as a fraction of lr")


@schedulers.register("onecycle", "dltool.optim.schedules:OneCycle")
class OneCycleParams(SchedulerParams):
    """One-cycle (torch's OneCycleLR): lr/`div_factor` up to lr over `pct_start` of training, then anneal."""

    pct_start: float = Field(0.3, gt=0, lt=1)
    div_factor: float = Field(25.0, ge=1)
    final_div_factor: float = Field(1e4, ge=1)
    cycle_momentum: bool = Field(True, description="momentum (beta1 for adam/adamw) runs max → base → max")
    base_momentum: float = Field(0.85, ge=0, lt=1, description="the momentum at the lr's peak")
    max_momentum: float = Field(0.95, ge=0, lt=1, description="the momentum at the start and the end")

    @model_validator(mode="after")
    def _momentum_range(self) -> OneCycleParams:
        if self.cycle_momentum and self.base_momentum > self.max_momentum:
            raise ValueError(f"base_momentum ({self.base_momentum}) must not exceed max_momentum ({self.max_momentum})")
        return self
