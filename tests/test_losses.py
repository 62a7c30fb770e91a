"""Loss values against independent computations, class weights, and task checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from dltool.config import validate_config
from dltool.errors import ConfigError
from dltool.losses import losses
from dltool.losses.functions import class_weight_tensor

K = 5


def _loss(name: str, task: str = "classification", class_counts=None, num_classes=K, **params):
    spec = losses.get(name).params(name=name, **params)
    return losses.build(spec, task=task, num_classes=num_classes, class_counts=class_counts)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, K, generator=generator, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4, 0, 0, 1])


def _smoothed(labels: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.stack(
        [
            torch.tensor([1 - eps + eps / K if j == y else eps / K for j in range(K)], dtype=torch.float64)
            for y in labels
        ]
    )


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_nll_and_kl_div(batch, eps: float) -> None:
    logits, labels = batch
    reference = F.cross_entropy(logits, labels, label_smoothing=eps)
    assert torch.allclose(_loss("cross_entropy", label_smoothing=eps)(logits, labels), reference)
    assert torch.allclose(_loss("nll")(logits, labels), F.cross_entropy(logits, labels))
    log_p, q = logits.log_softmax(1), _smoothed(labels, eps)
    kl = (torch.special.xlogy(q, q) - q * log_p).sum() / len(labels)
    assert torch.allclose(_loss("kl_div", label_smoothing=eps)(logits, labels), kl)
    if eps == 0:  # KL to a one-hot distribution is the cross-entropy
        assert torch.allclose(kl, reference)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_bce_with_logits_against_the_formula(batch, eps: float) -> None:
    logits, labels = batch
    y, p = _smoothed(labels, eps), logits.sigmoid()
    expected = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    assert torch.allclose(_loss("bce_with_logits", label_smoothing=eps)(logits, labels), expected)


def test_distances_compare_softmax_with_one_hot_for_classification(batch) -> None:
    logits, labels = batch
    diff = logits.softmax(1) - _smoothed(labels, 0.0)
    assert torch.allclose(_loss("mse")(logits, labels), diff.square().mean())
    assert torch.allclose(_loss("l1")(logits, labels), diff.abs().mean())
    beta = 0.05
    huber = torch.where(diff.abs() < beta, 0.5 * diff.square() / beta, diff.abs() - 0.5 * beta)
    assert torch.allclose(_loss("smooth_l1", beta=beta)(logits, labels), huber.mean())


def test_distances_compare_images_for_reconstruction() -> None:
    output, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.allclose(_loss("mse", "reconstruction")(output, target), ((output - target) ** 2).mean())
    assert torch.allclose(_loss("l1", "reconstruction")(output, target), (output - target).abs().mean())
    with pytest.raises(ValueError, match="differ"):
        _loss("l1", "reconstruction")(output, target[:, :1])


def test_class_weights_given_and_balanced(batch) -> None:
    logits, labels = batch
    weights = [1.0, 2.0, 0.5, 1.0, 3.0]
    given = _loss("cross_entropy", class_weights=weights)(logits, labels)
    assert torch.allclose(given, F.cross_entropy(logits, labels, weight=torch.tensor(weights, dtype=torch.float64)))

    train_labels = np.array([0] * 50 + [1] * 30 + [2] * 10 + [3] * 7 + [4] * 3)
    sklearn = compute_class_weight("balanced", classes=np.arange(K), y=train_labels)
    counts = np.bincount(train_labels).tolist()
    assert torch.allclose(class_weight_tensor("balanced", K, counts), torch.tensor(sklearn, dtype=torch.float32))
    balanced = _loss("cross_entropy", class_weights="balanced", class_counts=counts, label_smoothing=0.1)
    reference = F.cross_entropy(logits, labels, weight=torch.tensor(sklearn), label_smoothing=0.1)
    assert torch.allclose(balanced(logits, labels), reference, atol=1e-6)
    assert class_weight_tensor("balanced", 3, [4, 0, 2]).tolist() == [0.5, 0.0, 1.0]  # absent class: 0


def test_bad_class_weights_are_clear_errors(batch) -> None:
    logits, labels = batch
    with pytest.raises(ConfigError, match="loss.class_weights: 2 weights for 5 classes"):
        _loss("cross_entropy", class_weights=[1.0, 2.0])
    late = _loss("cross_entropy", class_weights=[1.0, 2.0], num_classes=None)  # checked on the logits
    with pytest.raises(ConfigError, match="loss.class_weights: 2 weights for 5 classes"):
        late(logits, labels)
    with pytest.raises(ConfigError, match="'balanced' needs the training set's class counts"):
        _loss("cross_entropy", class_weights="balanced")
    with pytest.raises(ConfigError, match="loss.class_weights: should be null, 'balanced' or a list"):
        validate_config({"loss": {"name": "cross_entropy", "class_weights": "balance"}})


def test_default_cross_entropy_is_torch_s_and_half_outputs_give_float32() -> None:
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    loss_fn = losses.build(losses.get("cross_entropy").params(name="cross_entropy"))  # no context
    assert torch.equal(loss_fn(logits, labels), torch.nn.CrossEntropyLoss()(logits, labels))
    pixels, masks = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    for entry in losses:
        if "labels" in entry.params.targets:
            value = losses.build(entry.params(name=entry.name))(logits.bfloat16(), labels)
        else:  # a loss of masks only
            value = losses.build(entry.params(name=entry.name), task="segmentation")(pixels.bfloat16(), masks)
        assert value.dtype == torch.float32, entry.name


def test_config_refuses_a_loss_that_does_not_suit_the_model() -> None:
    with pytest.raises(ConfigError) as error:
        validate_config({"model": {"name": "autoencoder"}, "loss": {"name": "cross_entropy"}})
    assert str(error.value) == (
        "loss.name: 'cross_entropy' does not suit the reconstruction task; use one of: mse, l1, smooth_l1 "
        "(model 'autoencoder' is a reconstruction model)"
    )
    validate_config({"model": {"name": "autoencoder"}, "loss": {"name": "smooth_l1"}})
    validate_config({"model": {"name": "resnet"}, "loss": {"name": "mse"}})
