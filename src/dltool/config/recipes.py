"""Recipes: the YAML configs shipped with dltool (``configs/`` in the repo, inside the wheel)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def recipes_dir() -> Path:
    """``dltool/configs`` in an installed wheel; the repo's ``configs/`` in an editable install."""
    installed = _PACKAGE_DIR / "configs"
    return installed if installed.is_dir() else _PACKAGE_DIR.parent.parent / "configs"


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path

    @property
    def description(self) -> str:
        """The recipe's header comment, joined into one line."""
        lines = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            lines.append(line.lstrip("# ").strip())
        return " ".join(filter(None, lines))


def list_recipes() -> list[Recipe]:
    return [Recipe(p.stem, p) for p in sorted(recipes_dir().glob("*.yaml"))]


def find_recipe(name: str) -> Recipe | None:
    path = recipes_dir() / f"{name}.yaml"
    return Recipe(name, path) if path.is_file() else None
