"""Where datasets and their caches live: --root, else $DLTOOL_DATA, else the user cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_root(root: str | Path | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    if env := os.environ.get("DLTOOL_DATA"):
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("dltool")) / "data"
