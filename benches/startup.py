"""How fast the command line answers: `dltool --help` and `dltool list` against `python -c pass`;
and the import budget of a plain training run, package by package.

Usage: python benches/startup.py [--quick]

Each command runs as a fresh process; the figure is the best of several runs (the least
disturbed by a busy machine). Neither command may import torch, so both should sit a few
hundred milliseconds above the bare interpreter. The import budget is ``python -X importtime``
over a one-epoch ``dltool train digits-mlp`` (digits cache built), each module's own time
summed by top-level package, from the run whose imports took least; none of the packages a
plain training run does not use (HEAVY) may appear.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main, slug

# The packages a plain training run must not import (issue 21: import them where they are used).
HEAVY = ("matplotlib", "optuna", "scipy", "sklearn", "pandas", "torchvision", "timm", "mlflow")
# The budget's rows, a stable set: torch and what its optimisers pull in (torch._dynamo: sympy,
# triton), numpy, dltool, the CLI's packages, the config's; the rest is "other".
BUDGET = {
    "torch": ("torch", "torchgen"),
    "sympy and triton (torch._dynamo, imported by torch.optim)": ("sympy", "mpmath", "triton"),
    "numpy": ("numpy",),
    "dltool": ("dltool",),
    "command line (typer, click, rich)": ("typer", "click", "rich", "shellingham"),
    "config (pydantic, yaml)": ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "yaml"),
}


def best_seconds(command: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    repeats = 3 if quick else 7
    bare = best_seconds([sys.executable, "-c", "pass"], repeats)
    rows = []
    for args in (["--help"], ["list"], ["list", "--json"]):
        seconds = best_seconds([sys.executable, "-m", "dltool", *args], repeats)
        rows.append(
            Row(
                f"`dltool {' '.join(args)}` (s)",
                f"{seconds:.3f}",
                f"{bare:.3f} `python -c pass`",
                bare / seconds,
                id=f"startup.{slug(' '.join(args))}",
            )
        )
    return rows + import_rows(repeats)


def import_seconds(lines: list[str]) -> Counter[str]:
    """``-X importtime``'s stderr lines: each module's own seconds, summed by top-level package."""
    total: Counter[str] = Counter()
    for line in lines:
        if line.startswith("import time:") and "self [us]" not in line:
            own, _, name = line.removeprefix("import time:").split("|")
            total[name.strip().split(".")[0]] += int(own) / 1e6
    return total


def train_imports(repeats: int) -> Counter[str]:
    """The import seconds by package of the one-epoch training run that imported fastest."""
    with tempfile.TemporaryDirectory(prefix="dltool-startup-bench-") as work:
        env = {**os.environ, "DLTOOL_DATA": f"{work}/data"}
        command = [sys.executable, "-X", "importtime", "-m", "dltool", "train", "digits-mlp", "--epochs", "1"]
        command += ["--runs-dir", f"{work}/runs", "-q"]
        subprocess.run(command, check=True, env=env, capture_output=True)  # builds the digits cache
        runs = [
            import_seconds(
                subprocess.run(command, check=True, env=env, capture_output=True, text=True).stderr.splitlines()
            )
            for _ in range(repeats)
        ]
    return min(runs, key=lambda run: sum(run.values()))


def import_rows(repeats: int) -> list[Row]:
    imports = train_imports(repeats)
    total = sum(imports.values())
    what = "`dltool train digits-mlp --epochs 1` imports"
    rows = []
    for name, packages in [*BUDGET.items(), ("other", ())]:
        named = packages or [p for p in imports if not any(p in group for group in BUDGET.values())]
        seconds = sum(imports[p] for p in named)
        row_id = f"startup.train-imports.{slug(name.split(' (')[0])}"
        rows.append(
            Row(f"{what}: {name} (ms)", f"{1000 * seconds:,.0f}", f"of {1000 * total:,.0f} in all", None, id=row_id)
        )
    heavy = sorted(p for p in HEAVY if p in imports)
    rows.append(
        Row(f"{what}: {', '.join(HEAVY)}", ", ".join(heavy) or "none", "none", None, id="startup.train-imports.heavy")
    )
    return rows


if __name__ == "__main__":
    bench_main(run, __doc__)
