"""Which weights train: the classifier head, freezing by glob, frozen norm layers.

Every classifier names its head in a ``dltool_head`` attribute (the dotted module name of
the layer(s) that map features to classes): course models declare it on their class, zoo
models carry it from their builder. ``backbone`` is everything else.
"""

from __future__ import annotations

import fnmatch
import types
from dataclasses import dataclass

from torch import nn

from dltool.errors import ConfigError

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def find_head(model: nn.Module) -> str:
    """The dotted module name of ``model``'s classifier head; a ConfigError for a model without one."""
    head = getattr(model, "dltool_head", None)
    if not isinstance(head, str) or not head:
        raise ConfigError(
            f"{type(model).__name__} has no classifier head (no dltool_head attribute): "
            "model.freeze: backbone and optimizer.backbone_lr_scale need one; give model.freeze as globs"
        )
    return head


def in_head(name: str, head: str) -> bool:
    """Whether the parameter or buffer ``name`` belongs to the module ``head``."""
    return name == head or name.startswith(head + ".")


@dataclass(frozen=True)
class Frozen:
    """What ``freeze`` fixed: parameter names, and the norm layers held in eval mode."""

    parameters: tuple[str, ...]
    norms: tuple[str, ...]


def freeze(model: nn.Module, spec: str | list[str]) -> Frozen:
    """Fix the weights ``spec`` names (``none``, ``backbone`` or parameter-name globs).

    Frozen parameters get ``requires_grad=False``; a norm layer whose tensors (running
    statistics included) are all frozen stays in eval mode even in ``model.train()``, so
    its statistics never change. A glob that matches nothing, or globs that match every
    parameter, are a ConfigError.
    """
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    chosen = set(_chosen(model, spec, names))
    _refuse_freezing_all(model, chosen, spec)
    for name, parameter in model.named_parameters():
        if name in chosen:
            parameter.requires_grad_(False)
    norms = [name for name, module in model.named_modules() if _all_frozen(name, module, chosen)]
    for name in norms:
        module = model.get_submodule(name)
        module.train = types.MethodType(_stay_in_eval, module)  # type: ignore[method-assign]
        module.eval()
    frozen = tuple(n for n, _ in model.named_parameters() if n in chosen)
    return Frozen(frozen, tuple(norms))


def unfreeze(model: nn.Module, frozen: Frozen) -> None:
    """Undo ``freeze``: its parameters train again, its norm layers follow ``model.train()``."""
    for name in frozen.parameters:
        model.get_parameter(name).requires_grad_(True)
    for name in frozen.norms:
        module = model.get_submodule(name)
        if "train" in vars(module):
            del module.train
        module.train(model.training)


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def _chosen(model: nn.Module, spec: str | list[str], names: list[str]) -> list[str]:
    if spec == "none":
        return []
    if spec == "backbone":
        head = find_head(model)
        return [n for n in names if not in_head(n, head)]
    unmatched = [pattern for pattern in spec if not fnmatch.filter(names, pattern)]
    if unmatched:
        raise ConfigError(
            f"model.freeze: {', '.join(map(repr, unmatched))} matches no parameter of the model "
            f"(names look like {', '.join(names[:3])}, ...)"
        )
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in spec)]


def _refuse_freezing_all(model: nn.Module, chosen: set[str], spec: str | list[str]) -> None:
    # Nothing left to train fails at the first backward pass, after the run dir is made.
    parameters = [name for name, _ in model.named_parameters()]
    if parameters and chosen.issuperset(parameters):
        raise ConfigError(
            f"model.freeze: {spec} fixes every parameter of the model, so nothing would train; "
            "leave the head (or some layers) out of the globs"
        )


def _all_frozen(name: str, module: nn.Module, chosen: set[str]) -> bool:
    if not isinstance(module, NORM_LAYERS):
        return False
    prefix = f"{name}." if name else ""
    tensors = [prefix + n for n, _ in module.named_parameters()]
    tensors += [prefix + n for n, b in module.named_buffers() if b.is_floating_point()]
    return bool(tensors) and all(t in chosen for t in tensors)


def _stay_in_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    """``train`` of a frozen norm layer: eval mode whatever is asked (its statistics stay)."""
    del mode
    return nn.Module.train(module, False)
