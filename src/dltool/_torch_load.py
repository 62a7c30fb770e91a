"""The one way dltool reads a ``.pt``/``.pth`` file: ``torch.load(weights_only=True)``.

Any failure is a CheckpointError that names the file and the fault, in torch's words but
without its advice: among those lines, "re-run with weights_only=False", which would let the
file run code. A TorchScript archive (``dltool export --to torchscript``) is named as such.
"""

from __future__ import annotations

import errno
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

from dltool.errors import CheckpointError

# Lines of torch's load error that are advice, not the fault. Never passed on.
_ADVICE = ("weights only load failed", "weights_only", "check the documentation", "safe_globals", "file an issue")
_UNPICKLER = "WeightsUnpickler error:"
_ZIP_READER = "PytorchStreamReader failed"  # torch's zip reader: a file cut short or damaged


def safe_load(path: Path, what: str) -> Any:
    """The objects of ``path`` (tensors and plain values only); ``what`` the file should be,
    for the error: ``"{path}: not a readable {what} ({fault})"``."""
    import torch

    try:
        with warnings.catch_warnings():  # torch's note on TorchScript archives: the error says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:  # the file may be fine: the CLI names the permission missing
        raise
    # The unpickler meets arbitrary bytes here and fails in many ways (KeyError, IndexError,
    # UnpicklingError, RuntimeError from the zip reader...): any failure is "not readable".
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable {what} ({_fault(path, error)})") from None


def _fault(path: Path, error: BaseException) -> str:
    if _is_torchscript(path):
        return "a TorchScript archive, as dltool export writes, not a state dict"
    if path.suffix.lower() == ".onnx":
        return "an ONNX model, as dltool export writes, not a state dict"
    return load_failure(error)


def load_failure(error: BaseException) -> str:
    """The informative line of torch's (long, multi-line) load error; for the unpickler's
    internal failures on bytes that are no pickle at all (KeyError: 101...), what that means."""
    if not isinstance(error, (pickle.UnpicklingError, RuntimeError, ValueError, OSError, EOFError)):
        return f"corrupt, or not a PyTorch file: {type(error).__name__}"
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    # The fault follows the unpickler's marker, on its line or (newer torch) on the next ones.
    lines = [line.split(_UNPICKLER, 1)[1].strip() if _UNPICKLER in line else line for line in lines]
    facts = [line for line in lines if line and not any(a in line.lower() for a in _ADVICE)]
    if facts and facts[0].startswith("Unsupported operand"):  # the unpickler's first byte is no opcode
        return "corrupt, or not a PyTorch file"
    if facts and facts[0].startswith(_ZIP_READER):  # its first sentence; the rest is advice
        return f"truncated or damaged: {facts[0].split('. ', 1)[0]}"
    if isinstance(error, OSError) and error.errno == errno.EINVAL:  # the zip reader seeks before the start
        return "truncated or damaged: not a whole zip archive"
    if isinstance(error, EOFError) and not facts:  # the unpickler ran out of bytes
        return "empty, or cut short"
    return (facts or [type(error).__name__])[0][:200]


def _is_torchscript(path: Path) -> bool:
    # torch.jit.save's zip holds constants.pkl; torch.save's does not.
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") for name in archive.namelist())
    except Exception:  # a damaged zip fails in many ways (BadZipFile, a name that is no UTF-8...)
        return False
