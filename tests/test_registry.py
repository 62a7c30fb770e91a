"""Registry-driven tests: every entry of every kind gets built and exercised."""

from __future__ import annotations

import inspect
import typing

import pytest
import torch

from dltool._registry import Registry
from dltool.catalog import REGISTRIES
from dltool.config import validate_config
from dltool.errors import ConfigError, UnknownNameError
from dltool.losses import TASKS, losses, suited
from dltool.models import Init, ModelParams, models
from dltool.models.build import WEIGHTED_LAYERS, build_model
from dltool.models.zoo import ZooParams
from dltool.optim import OptimizerParams, optimizers, schedulers
from dltool.optim.schedules import build_scheduler
from dltool.params import Params

ENTRIES = [(kind, entry) for kind, registry in REGISTRIES.items() for entry in registry]


@pytest.mark.parametrize(("kind", "entry"), ENTRIES, ids=[f"{k}:{e.name}" for k, e in ENTRIES])
def test_entry_is_described_and_its_builder_takes_its_keys(kind: str, entry) -> None:
    assert entry.description and not entry.description.endswith(":")
    accepted = inspect.signature(entry.load()).parameters
    for key in set(entry.params.model_fields) - entry.params.common:
        assert key in accepted, f"{kind} {entry.name}: the builder has no keyword {key!r}"


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_unknown_name_suggests_the_closest(kind: str) -> None:
    registry = REGISTRIES[kind]
    first = registry.names()[0]
    with pytest.raises(UnknownNameError) as error:
        registry.get(first + "x")
    assert f"did you mean {first!r}" in str(error.value)
    assert f"dltool list {kind}" in str(error.value)


def test_registry_refuses_duplicates_and_foreign_params() -> None:
    registry: Registry[Params] = Registry("things", Params)

    @registry.register("a", "x:y")
    class A(Params):
        """An a."""

    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", "x:y")(A)
    foreign: Registry[ModelParams] = Registry("models", ModelParams)
    with pytest.raises(TypeError):
        foreign.register("b", "x:y")(A)  # type: ignore[arg-type]


SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
INITS = list(typing.get_args(Init))


# Zoo models have their own matrix (tests/test_zoo.py, tests/test_segmentation_models.py): their architectures are the library's.
@pytest.mark.parametrize("entry", [e for e in models if not issubclass(e.params, ZooParams)], ids=lambda e: e.name)
@pytest.mark.parametrize("in_shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("init", INITS)
def test_every_model_runs_forward_and_backward(entry, in_shape, init: str, required_params) -> None:
    torch.manual_seed(0)
    params = entry.params(name=entry.name, init=init, **required_params(entry, in_shape))
    model = build_model(params, in_shape=in_shape, num_classes=10)
    images = torch.randn(2, *in_shape)
    output = model(images)
    shapes = {"classification": (2, 10), "segmentation": (2, 10, *in_shape[1:])}
    assert output.shape == shapes.get(entry.params.task, images.shape)
    output.square().mean().backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    if init != "default":  # every weighted layer was re-initialised, except loaded parts
        loaded = {id(m) for part in getattr(model, "pretrained", ()) for m in part.modules()}
        biases = [m.bias for m in model.modules() if isinstance(m, WEIGHTED_LAYERS) and id(m) not in loaded]
        assert all(not b.any() for b in biases if b is not None)


def _tiny_model() -> torch.nn.Module:
    return torch.nn.Linear(3, 2)


@pytest.mark.parametrize("entry", list(optimizers), ids=lambda e: e.name)
def test_every_optimizer_steps_and_round_trips_its_state(entry) -> None:
    torch.manual_seed(0)
    model = _tiny_model()
    optimizer = optimizers.build(entry.params(name=entry.name), params=model.parameters())
    before = model.weight.detach().clone()
    model(torch.randn(5, 3)).pow(2).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model.weight)
    again = optimizers.build(entry.params(name=entry.name), params=model.parameters())
    again.load_state_dict(optimizer.state_dict())
    assert again.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]


@pytest.mark.parametrize("entry", list(schedulers), ids=lambda e: e.name)
@pytest.mark.parametrize("warmup", [0, 1.5])
def test_every_schedule_steps_and_round_trips_its_state(entry, warmup: float) -> None:
    model = _tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    params = entry.params(name=entry.name, warmup_epochs=warmup)
    scheduler = build_scheduler(params, optimizer, epochs=4, steps_per_epoch=10)
    lrs = []
    for step in range(40):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
        if step % 10 == 9:
            scheduler.epoch_end(1.0)  # a metric that never improves
    assert all(0 <= lr <= 0.1 + 1e-12 for lr in lrs)
    if warmup:
        assert lrs[0] < lrs[10]  # still ramping up in the first epoch
    fresh = torch.optim.SGD(_tiny_model().parameters(), lr=0.1)
    resumed = build_scheduler(params, fresh, epochs=4, steps_per_epoch=10)
    resumed.load_state_dict(scheduler.state_dict())
    assert resumed.state_dict() == scheduler.state_dict()


def test_schedules_follow_their_formulas() -> None:
    def lrs(name: str, **kw) -> list[float]:
        optimizer = torch.optim.SGD(_tiny_model().parameters(), lr=1.0)
        params = schedulers.get(name).params(name=name, **kw)
        scheduler = build_scheduler(params, optimizer, epochs=4, steps_per_epoch=2)
        out = [optimizer.param_groups[0]["lr"]]
        for _ in range(7):
            optimizer.step()
            scheduler.step()
            out.append(optimizer.param_groups[0]["lr"])
        return out

    assert lrs("step", step_size=2, gamma=0.5) == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5]
    assert lrs("multistep", milestones=[1, 3], gamma=0.1)[::2] == pytest.approx([1, 0.1, 0.1, 0.01])
    assert lrs("cosine")[0] == 1 and lrs("cosine")[4] == pytest.approx(0.5)
    assert lrs("none", warmup_epochs=1) == [0.5, 1, 1, 1, 1, 1, 1, 1]
    assert lrs("linear", min_lr_ratio=0.2) == pytest.approx([1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    assert lrs("linear", warmup_epochs=1, min_lr_ratio=0.5)[:5] == pytest.approx([0.5, 1, 1, 11 / 12, 10 / 12])
    onecycle = lrs("onecycle", pct_start=0.25, div_factor=10, final_div_factor=10)
    assert onecycle[0] == pytest.approx(0.1) and onecycle[1] == pytest.approx(1.0)  # peak: step 0.25 × 8 − 1


def _two_groups(optimizer: type, **kw) -> torch.optim.Optimizer:
    model = _tiny_model()
    weights, biases = [p for p in model.parameters() if p.ndim > 1], [p for p in model.parameters() if p.ndim == 1]
    return optimizer([{"params": weights}, {"params": biases, "lr": 0.02}], lr=0.4, **kw)


@pytest.mark.parametrize(
    ("optimizer", "kw", "total_steps", "onecycle"),
    [
        (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}, 37, {}),
        (torch.optim.SGD, {"momentum": 0.9}, 40, {"pct_start": 0.25, "base_momentum": 0.8, "max_momentum": 0.9}),
        (torch.optim.AdamW, {}, 23, {"pct_start": 0.5, "div_factor": 10, "final_div_factor": 100}),
        (torch.optim.RMSprop, {}, 12, {"cycle_momentum": False}),
    ],
)
def test_onecycle_matches_torch_lr_and_momentum_at_every_step(optimizer, kw, total_steps: int, onecycle) -> None:
    ours, theirs = _two_groups(optimizer, **kw), _two_groups(optimizer, **kw)
    params = schedulers.get("onecycle").params(name="onecycle", **onecycle)
    schedule = build_scheduler(params, ours, epochs=1, steps_per_epoch=total_steps)
    reference = torch.optim.lr_scheduler.OneCycleLR(
        theirs, max_lr=[0.4, 0.02], total_steps=total_steps, **params.builder_kwargs()
    )
    momentum = "betas" if "betas" in ours.defaults else "momentum"
    for _ in range(total_steps):  # the lr and momentum each optimizer step uses
        for mine, torchs in zip(ours.param_groups, theirs.param_groups):
            assert mine["lr"] == pytest.approx(torchs["lr"], rel=1e-12, abs=1e-15)
            assert mine[momentum] == pytest.approx(torchs[momentum], rel=1e-12)
        ours.step(), theirs.step()
        schedule.step(), reference.step()
    if not params.cycle_momentum:
        assert ours.param_groups[0]["momentum"] == kw.get("momentum", 0)


def test_onecycle_resumes_its_momentum_and_refuses_an_inverted_range() -> None:
    params = schedulers.get("onecycle").params(name="onecycle")
    first = _two_groups(torch.optim.SGD, momentum=0.9)
    schedule = build_scheduler(params, first, epochs=2, steps_per_epoch=5)
    for _ in range(4):
        first.step(), schedule.step()
    again = _two_groups(torch.optim.SGD, momentum=0.9)
    resumed = build_scheduler(params, again, epochs=2, steps_per_epoch=5)
    resumed.load_state_dict(schedule.state_dict())
    assert again.param_groups[0]["momentum"] == first.param_groups[0]["momentum"] < 0.95
    with pytest.raises(ConfigError, match=r"scheduler: .*base_momentum \(0.95\) must not exceed max_momentum \(0.9\)"):
        validate_config({"scheduler": {"name": "onecycle", "base_momentum": 0.95, "max_momentum": 0.9}})


def test_plateau_cuts_the_rate_after_patience_epochs_without_improvement() -> None:
    optimizer = torch.optim.SGD(_tiny_model().parameters(), lr=1.0)
    params = schedulers.get("plateau").params(name="plateau", factor=0.5, patience=1, cooldown=1)
    scheduler = build_scheduler(params, optimizer, epochs=10, steps_per_epoch=1)
    seen = []
    for metric in [1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.4]:  # min mode: lower is better
        optimizer.step()
        scheduler.epoch_end(metric)
        scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    resumed = build_scheduler(params, torch.optim.SGD(_tiny_model().parameters(), lr=1.0), epochs=10, steps_per_epoch=1)
    resumed.load_state_dict(scheduler.state_dict())
    assert resumed.factor.scale == 0.25


LOSS_TASKS = [(entry, task) for entry in losses for task in TASKS]


def _loss_batch(task: str) -> tuple[torch.Tensor, torch.Tensor]:
    if task == "classification":
        return torch.randn(6, 4, requires_grad=True), torch.tensor([0, 1, 2, 3, 0, 1])
    if task == "segmentation":  # masks of class indices, one pixel ignored
        masks = torch.randint(0, 4, (2, 5, 5))
        masks[0, 0, 0] = 255
        return torch.randn(2, 4, 5, 5, requires_grad=True), masks
    return torch.randn(2, 3, 5, 5, requires_grad=True), torch.randn(2, 3, 5, 5)


@pytest.mark.parametrize(("entry", "task"), LOSS_TASKS, ids=[f"{e.name}-{t}" for e, t in LOSS_TASKS])
def test_every_loss_computes_a_scalar_on_its_tasks_and_refuses_the_others(entry, task: str) -> None:
    params = entry.params(name=entry.name)
    context = {"task": task, "num_classes": 4, "class_counts": [2, 2, 1, 1]}
    if task not in entry.params.tasks:
        with pytest.raises(ConfigError, match=rf"loss.name: '{entry.name}' does not suit the {task} task"):
            losses.build(params, **context)
        return
    output, target = _loss_batch(task)
    loss = losses.build(params, **context)(output, target)
    loss.backward()
    assert loss.ndim == 0 and loss.item() >= 0 and output.grad is not None


def test_every_task_has_a_loss() -> None:
    assert all(suited(task) for task in TASKS)


def test_optimizer_params_share_lr_and_weight_decay() -> None:
    for entry in optimizers:
        assert issubclass(entry.params, OptimizerParams)
        assert {"lr", "weight_decay"} <= set(entry.params.model_fields)
