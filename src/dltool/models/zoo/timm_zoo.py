"""The ``timm:ARCH`` family: every model of pytorch-image-models (``timm.list_models()``).

Weights come through the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``), in the repository folder ``models--timm--ARCH.TAG``: the file
``huggingface_hub`` would download, or one put by hand in its ``snapshots/main/`` folder.
"""

from __future__ import annotations

import os
import typing
from functools import cache
from pathlib import Path
from typing import Any

import timm
from timm.models import get_pretrained_cfg, model_entrypoint
from torch import nn

from dltool.models.zoo import HEAD_ATTRIBUTE, init_keywords
from dltool.models.zoo.weights import DOWNLOAD_TIMEOUT_S, WeightsSource

# What a timm hub repository may hold, preferred first (timm tries them in this order).
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


@cache
def architectures() -> list[str]:
    return timm.list_models()


def weight_tags(arch: str) -> list[str]:
    return [name.partition(".")[2] for name in timm.list_pretrained(f"{arch}.*") if name.partition(".")[0] == arch]


def all_weight_tags() -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for name in timm.list_pretrained():
        arch, _, tag = name.partition(".")
        tags.setdefault(arch, []).append(tag)
    return tags


def builder_keywords(arch: str) -> set[str] | None:
    """Keywords of the model class the entrypoint builds (less the class count, set from the data)."""
    model_class = typing.get_type_hints(model_entrypoint(arch)).get("return")
    if not isinstance(model_class, type) or model_class is nn.Module:
        return None
    return init_keywords(model_class)


def _config(arch: str, weights: bool | str) -> Any:
    return get_pretrained_cfg(arch if weights is True else f"{arch}.{weights}")


def preprocessing(arch: str, weights: bool | str) -> dict[str, Any]:
    """The weights' input (size, mean, std, channels, evaluation crop); without weights
    nothing (timm takes any channel count and size)."""
    if weights is False:
        return {}
    cfg = _config(arch, weights)
    channels, _, width = cfg.input_size
    defaults = {"image_size": int(width), "mean": list(cfg.mean), "std": list(cfg.std), "channels": int(channels)}
    return defaults | ({"crop_pct": float(cfg.crop_pct)} if cfg.crop_pct else {})


def build(arch: str, kwargs: dict[str, Any], in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``timm.create_model`` for the data: its channels and (for models fixed to one size) its size."""
    takes = builder_keywords(arch) or set()
    fitted = {key: value for key, value in (("in_chans", in_shape[0]), ("img_size", in_shape[-1])) if key in takes}
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **{**fitted, **kwargs})
    head = getattr(model, "pretrained_cfg", {}).get("classifier") or "head"
    setattr(model, HEAD_ATTRIBUTE, head if isinstance(head, str) else head[0])  # distilled models have two heads
    return model


def hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment now (tests point it elsewhere)."""
    if folder := os.environ.get("HF_HUB_CACHE"):
        return Path(folder)
    if home := os.environ.get("HF_HOME"):
        return Path(home) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def weights_source(arch: str, weights: bool | str) -> WeightsSource:
    cfg = _config(arch, weights)
    label = f"timm:{arch}.{cfg.tag}"
    if not cfg.hf_hub_id:  # a few weights are plain URLs, kept in torch's hub cache like torchvision's
        import torch

        return WeightsSource(
            label, Path(torch.hub.get_dir()) / "checkpoints", (os.path.basename(cfg.url),), cfg.num_classes, url=cfg.url
        )
    repo = cfg.hf_hub_id
    names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HUB_FILES
    repo_folder = hub_cache() / f"models--{repo.replace('/', '--')}"
    return WeightsSource(
        label,
        repo_folder / "snapshots" / "main",
        names,
        cfg.num_classes,
        download=lambda: _hub_download(repo, names),
        page=f"{os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}/{repo}",
        cached=tuple(path for name in names for path in sorted(repo_folder.glob(f"snapshots/*/{name}"))),
    )


def _hub_download(repo: str, names: tuple[str, ...]) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    for name in names[:-1]:
        try:
            return Path(hf_hub_download(repo, name, cache_dir=hub_cache(), etag_timeout=DOWNLOAD_TIMEOUT_S))
        except EntryNotFoundError:
            continue
    return Path(hf_hub_download(repo, names[-1], cache_dir=hub_cache(), etag_timeout=DOWNLOAD_TIMEOUT_S))
