"""Full training state in ``checkpoints/last.pt``, and the best weights as safetensors.

``last.pt`` holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``: nothing in a checkpoint can run code.
"""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from dltool._io import atomic_write, atomic_write_bytes
from dltool._safetensors import canonical
from dltool.errors import CheckpointError


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: torch.save(state, file))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a ``.pt`` file with the safe loader; a corrupt or foreign file is a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable dltool checkpoint ({_reason(error)})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a dltool checkpoint (no model state)")
    return state


def _reason(error: BaseException) -> str:
    """The informative line of torch's (long, multi-line) load error."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    unpickler = [line for line in lines if "WeightsUnpickler error" in line]
    return (unpickler or [line for line in lines if line] or [type(error).__name__])[0]


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str]) -> None:
    """The model's weights as safetensors (no pickle), with string ``metadata``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, canonical(save_safetensors(tensors, metadata=metadata)))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not readable safetensors weights ({error})") from None


def capture_rng() -> dict[str, Any]:
    """Every random number generator training may touch, as weights_only-loadable values."""
    name, keys, pos, has_gauss, gauss = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    return {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    # random.setstate wants tuples all the way down; a round trip may hand back lists.
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
