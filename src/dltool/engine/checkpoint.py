"""Full training state in ``checkpoints/last.pt``, and the best weights as safetensors.

``last.pt`` holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``: nothing in a checkpoint can run code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from dltool._torch_load import safe_load
from dltool.errors import CheckpointError
from dltool.rundir.records import checked_classes, checked_config, checked_in_shape


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: torch.save(state, file))


def load_checkpoint(path: Path, require: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a ``.pt`` file with the safe loader and check its structure (``check_checkpoint``;
    ``require``: entries besides ``model`` that must be there): a corrupt, foreign or
    malformed file is a CheckpointError naming the file and the fault."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    state = check_checkpoint(path, safe_load(path, "dltool checkpoint"))
    if missing := [key for key in require if key not in state]:
        raise CheckpointError(f"{path}: not a full training state (no {', '.join(missing)})")
    return state


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _is_module_state(value: Any) -> bool:
    # An EMA (torch's AveragedModel) state: the averaged module's tensors under "module.*".
    return _is_state_dict(value) and any(k.startswith("module.") for k in value)


def _entry(check: Callable[[Any], bool], what: str) -> Callable[[Path, str, Any], object]:
    def require(path: Path, key: str, value: Any) -> object:
        if not check(value):
            raise CheckpointError(f"{path}: not a dltool checkpoint (its {key!r} entry is not {what})")
        return value

    return require


def _is_map(value: Any) -> bool:
    return isinstance(value, dict)


def _is_rank_state(value: Any) -> bool:
    # One process's random state and partial-epoch sums (None at an epoch's end).
    return _is_map(value) and _is_map(value.get("rng")) and (value.get("partial") is None or _is_map(value["partial"]))


# How each entry of a checkpoint is checked when present ("model" always is): every reader
# of a checkpoint can then trust the types it meets.
CHECKPOINT_ENTRIES: dict[str, Callable[[Path, str, Any], object]] = {
    "model": _entry(_is_state_dict, "a map of names to tensors"),
    "ema": _entry(lambda v: v is None or _is_module_state(v), "an averaged model's state"),
    "config": checked_config,
    "classes": checked_classes,
    "in_shape": checked_in_shape,
    **{key: _entry(_is_map, "a map") for key in ("progress", "rng", "versions", "split_sizes")},
    **{key: _entry(_is_map, "a state") for key in ("optimizer", "scheduler", "scaler")},
    "ranks": _entry(lambda v: isinstance(v, list) and bool(v) and all(map(_is_rank_state, v)), "a list of rank states"),
}


def check_checkpoint(path: Path, state: Any) -> dict[str, Any]:
    """Refuse a loaded checkpoint whose structure is not dltool's (one check, before any use)."""
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a dltool checkpoint (no model state)")
    for key, check in CHECKPOINT_ENTRIES.items():
        if key in state:
            check(path, key, state[key])
    return state


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str]) -> None:
    """The model's weights as safetensors (no pickle), with string ``metadata``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, canonical(save_safetensors(tensors, metadata=metadata)))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(path.read_bytes())
    except PermissionError:  # the file may be fine: the CLI names the permission missing
        raise
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not readable safetensors weights ({error})") from None


def capture_rng(cuda: bool | None = None) -> dict[str, Any]:
    """Every random number generator training may touch, as weights_only-loadable values
    (``cuda``: the GPUs' too; None: where there are any)."""
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
        "cuda": torch.cuda.get_rng_state_all() if (torch.cuda.is_available() if cuda is None else cuda) else [],
    }


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Every generator seeded with ``seed`` for the block, then put back as it was: a script
    that calls ``dltool.train`` goes on with its own random sequence afterwards (the GPUs'
    only where it had started CUDA: reading theirs would start it)."""
    kept = capture_rng(cuda=torch.cuda.is_initialized())  # type: ignore[no-untyped-call]
    seed_everything(seed)
    try:
        yield
    finally:
        restore_rng(kept)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # numpy's global seed is 32-bit; train.seed goes to 2^63 - 1
    torch.manual_seed(seed)


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
