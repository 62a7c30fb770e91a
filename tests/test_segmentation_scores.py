"""Pixel scores and dense losses against hand computations; the segmentation entries of the registries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dltool.config.validate import validate_config
from dltool.errors import ConfigError
from dltool.losses import losses, suited
from dltool.losses.dense import soft_dice
from dltool.losses.functions import CrossEntropy
from dltool.models import models
from dltool.tasks.pixels import IGNORE, image_miou, pixel_confusion, segmentation_scores


def test_scores_leave_out_a_class_absent_from_truth_and_prediction() -> None:
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    scores = segmentation_scores(confusion, ["a", "b", "c"])
    assert scores["pixel_accuracy"] == 8 / 11
    assert scores["per_class"]["a"] == {"iou": 5 / 8, "dice": 10 / 13, "pixels": 6, "predicted": 7}
    assert scores["per_class"]["c"]["iou"] is None and scores["absent_classes"] == ["c"]
    assert scores["miou"] == pytest.approx((5 / 8 + 3 / 6) / 2)
    assert scores["mean_dice"] == pytest.approx((10 / 13 + 6 / 9) / 2)
    predicted_only = segmentation_scores(np.array([[4, 2], [0, 0]]), ["a", "b"])
    assert predicted_only["per_class"]["b"]["iou"] == 0.0 and predicted_only["miou"] == pytest.approx((4 / 6 + 0.0) / 2)


def test_the_confusion_counts_only_pixels_that_are_not_ignored() -> None:
    target = torch.tensor([[[0, 1], [IGNORE, 2]]])
    predicted = torch.tensor([[[0, 2], [1, 2]]])
    assert pixel_confusion(predicted, target, 3).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    scores = image_miou(torch.cat([predicted, predicted]), torch.cat([target, torch.full_like(target, IGNORE)]), 3)
    assert scores[0].item() == pytest.approx((1 + 0 + 0.5) / 3) and math.isnan(scores[1].item())


def test_dice_is_zero_for_a_sure_right_answer_and_ignores_pixels() -> None:
    target = torch.tensor([[[0, 1], [1, IGNORE]]])
    sure = F.one_hot(target.clamp(max=1), 2).permute(0, 3, 1, 2).float() * 50
    assert soft_dice(sure, target, smooth=0.0).item() == pytest.approx(0.0, abs=1e-6)
    flipped = sure.clone()
    flipped[0, :, 1, 1] = flipped[0, :, 1, 1].flip(0)  # the ignored pixel: wrong, and it does not count
    assert soft_dice(flipped, target, smooth=0.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_dice(torch.zeros(1, 2, 2, 2), target, smooth=0.0).item() == pytest.approx(
        1 - (1 / 2.5 + 2 / 3.5) / 2
    )  # p = 1/2 on 3 pixels


def test_cross_entropy_on_masks_ignores_255() -> None:
    logits = torch.randn(2, 3, 4, 4)
    masks = torch.randint(0, 3, (2, 4, 4))
    masks[0, 0] = IGNORE
    loss = CrossEntropy(label_smoothing=0.0, class_weights=None, task="segmentation")(logits, masks)
    keep = masks != IGNORE
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], masks[keep])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_losses_and_models_of_segmentation_are_registered() -> None:
    assert set(suited("segmentation")) == {"cross_entropy", "dice", "ce_dice"}
    assert "dice" not in suited("classification")
    dice = losses.build(losses.get("ce_dice").params(name="ce_dice"), task="segmentation", num_classes=3)
    assert dice(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.int64)).item() > 0
    for name in (
        "unet",
        "torchvision:deeplabv3_mobilenet_v3_large",
        "torchvision:lraspp_mobilenet_v3_large",
        "torchvision:fcn_resnet50",
    ):
        assert models.get(name).params.task == "segmentation"
    config = validate_config({"model": {"name": "torchvision:lraspp_mobilenet_v3_large", "pretrained": True}})
    assert config.loss.name == "cross_entropy" and config.data.mean == [0.485, 0.456, 0.406]
    assert models.get("torchvision:resnet18").params.task == "classification"
    with pytest.raises(ConfigError, match="IMAGENET1K_V1"):
        validate_config({"model": {"name": "torchvision:fcn_resnet50", "pretrained": "IMAGENET1K_V1"}})
    with pytest.raises(ConfigError, match="does not suit"):
        validate_config({"model": {"name": "unet"}, "loss": {"name": "nll"}})
