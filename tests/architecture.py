"""The layer rule of ``src/dltool``, read from the source with ``ast`` (nothing is imported).

Packages (and top-level modules) sit in layers, lowest first. A package may import its own
layer and the layers below, never one above, and the graph of imports between packages has
no cycle. Module strings count as imports (``"dltool.models.mlp:MLP"`` registry targets,
``importlib.import_module``, ``python -m`` worker modules): they are dependencies too.
CONTRIBUTING.md and docs/design-notes.md explain the order.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Lowest first. Inside a layer, imports may go either way as long as there is no cycle.
LAYERS: list[tuple[str, set[str]]] = [
    (
        "foundations",
        {
            "errors",
            "_version",
            "params",
            "_io",
            "_yaml",
            "_safetensors",
            "_registry",
            "_signals",
            "_memory",
            "_extras",
            "_openmp",
            "_text",
            "_torch_load",
            "_env",
        },
    ),
    ("run-dir layout", {"rundir"}),
    ("components and figures", {"tasks", "losses", "optim", "models", "figures"}),
    ("config", {"config"}),
    ("data", {"data"}),
    ("engine", {"engine"}),
    ("uses of a run", {"evaluation", "stats", "catalog", "tuning"}),
    ("exports and plots", {"export", "viz"}),
    ("Python API", {"api", "api_reports", "__init__"}),
    ("commands", {"commands"}),
    ("cli", {"cli", "__main__"}),
]
RANK = {package: rank for rank, (_, packages) in enumerate(LAYERS) for package in packages}
MODULE_STRING = re.compile(r"dltool(\.\w+)+(:\w+)?")


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    source: str  # the importing package
    target: str  # the imported package
    name: str  # the module as written

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.source} imports {self.name} ({self.target})"


def package_of(module: str) -> str:
    """``dltool.engine.run`` → ``engine``; the package root itself → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(file: Path, src: Path) -> str:
    parts = list(file.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, module) for every import statement and every module string of ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, _absolute(node, module, is_package)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.fullmatch(node.value):
            yield node.lineno, node.value.partition(":")[0]


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: None if is_package else -1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def package_imports(src: Path) -> list[Import]:
    """Every import in ``src/dltool`` from one package of it into another."""
    found = []
    for file in sorted((src / "dltool").rglob("*.py")):
        module = module_name(file, src)
        tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
        for line, name in imported_modules(tree, module, file.name == "__init__.py"):
            if name == "dltool" or name.startswith("dltool."):
                source, target = package_of(module), package_of(name)
                if source != target:
                    found.append(Import(file, line, source, target, name))
    return found


def upward(imports: list[Import]) -> list[Import]:
    """The imports that point from a layer to one above it (or into a package of no layer)."""
    return [i for i in imports if RANK.get(i.target, len(LAYERS)) > RANK.get(i.source, -1)]


def cycles(imports: list[Import]) -> list[list[str]]:
    """Each cycle of the package graph once, as the packages around it (first one repeated)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        graph.setdefault(i.source, set()).add(i.target)
    found: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == path[0]:
                found.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle from its smallest package only
                walk([*path, nxt])

    for start in sorted(graph):
        walk([start])
    return found
