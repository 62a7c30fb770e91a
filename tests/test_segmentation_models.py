"""Segmentation networks: the U-Net at any size, torchvision's builders and their weight files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torchvision

from dltool.models.unet import UNet
from dltool.models.zoo import NOTES_ATTRIBUTE, torchvision_seg
from dltool.models.zoo.build import build_torchvision_segmentation


def _unet(**kwargs) -> UNet:
    params = {"depth": 2, "width": 4, "batch_norm": True, "upsampling": "bilinear", "in_shape": (3, 16, 16)}
    return UNet(**{**params, **kwargs}, num_classes=5)


@pytest.mark.parametrize("upsampling", ["bilinear", "transposed"])
@pytest.mark.parametrize("size", [(16, 16), (13, 21), (1, 1), (8, 40)])
def test_unet_gives_a_logit_per_class_and_pixel_at_any_size(upsampling: str, size: tuple[int, int]) -> None:
    model = _unet(upsampling=upsampling, depth=3)
    images = torch.randn(2, 3, *size)
    output = model(images)
    assert output.shape == (2, 5, *size)
    output.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unet_depth_width_and_batch_norm_shape_the_network() -> None:
    model = _unet(depth=4, width=8, batch_norm=False, upsampling="transposed", in_shape=(1, 16, 16))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 1 and convs[0].bias is not None
    assert max(c.out_channels for c in convs) == 8 * 2**4  # the bottom doubles the width four times
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules()) == 4
    assert len(model.encoder) == 5 and len(model.decoder) == 4 and model.head.out_channels == 5


def test_the_architecture_list_is_torchvisions() -> None:
    assert torchvision_seg.architectures() == sorted(
        torchvision.models.list_models(module=torchvision.models.segmentation)
    )


@pytest.mark.parametrize("arch", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50"])
def test_torchvision_builders_return_logits_at_the_input_size(arch: str) -> None:
    torch.manual_seed(0)
    model = build_torchvision_segmentation(f"torchvision:{arch}", False, {}, (3, 40, 40), 4).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 40, 52)).shape == (1, 4, 40, 52)
    assert not any("aux" in name for name in model.state_dict())


def _published(arch: str) -> dict[str, torch.Tensor]:
    """A file laid out as torchvision publishes it: 21 VOC classes, the auxiliary head included."""
    model = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    return model.state_dict()


def test_pretrained_weights_load_from_torch_home_without_the_auxiliary_head() -> None:
    arch = "deeplabv3_mobilenet_v3_large"
    published = _published(arch)
    assert any(name.startswith("aux_classifier.") for name in published)
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    folder = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(published, folder / url.rsplit("/", 1)[1])
    model = build_torchvision_segmentation(f"torchvision:{arch}", True, {}, (3, 32, 32), 3)
    torch.testing.assert_close(model.backbone["0"][0].weight, published["backbone.0.0.weight"])
    (note,) = getattr(model, NOTES_ATTRIBUTE)
    assert (
        "COCO_WITH_VOC_LABELS_V1" in note
        and "head classifier re-initialised for 3 classes (the weights have 21)" in note
    )
    assert model.classifier[4].weight.shape[0] == 3
