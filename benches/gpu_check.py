"""The GPU check: every CUDA path dltool has, measured once on one GPU, in one JSON + Markdown table.

Usage: python benches/gpu_check.py [--quick] [--out DIR]   (benches/gpu_check.sh sets the paths)

Rows (each with the peak GPU memory it allocated, ``torch.cuda.max_memory_allocated`` reset
before it): cifar10-fast with bf16 + channels_last + compile against a bare loop with the same
settings and its FLOP/s against the measured bf16 matmul peak; the same epoch in fp16 with the
gradient scaler; a torchvision resnet50 fine-tune at 224²; what ``train.amp: auto`` picks for
three small recipes against bf16 and fp32 fixed; ``torchrun --nproc-per-node=1`` with NCCL;
``predict`` on the GPU. Without a CUDA device every row reads "not measured (no
CUDA device)" and the check still succeeds: CI runs ``--quick`` that way. ``--quick`` on a GPU
uses small sizes (a smoke test, minutes); the full form is the one whose figures go to
RESULTS.md, under 8 minutes on one datacenter GPU.

This module imports nothing outside the standard library at the top: it first checks that
dltool's dependencies are installed (a GPU machine may lack some) and names the missing ones.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the other benches' modules (_common, _gpu_rows)
NO_CUDA = "no CUDA device"
# (row label without CUDA, the _gpu_rows function that measures it on a GPU, whether it runs
# in this process: a check that trains in a child process has no peak memory to read here)
CHECKS = [
    ("cifar10-fast bf16 + channels_last + compile: images/s and FLOP/s", "cifar10_fast_bf16", True),
    ("cifar10-fast fp16 + gradient scaler: images/s", "cifar10_fast_fp16", True),
    ("fine-tune torchvision resnet50, 224², bf16: images/s", "resnet50_finetune", True),
    ("amp auto against bf16 and fp32, small recipes (eager): samples/s", "amp_auto", True),
    ("torchrun --nproc-per-node=1, NCCL: dltool train digits-mlp, 1 epoch", "torchrun_nccl", False),
    ("predict on the GPU, ResNet-18 at 224²: images/s", "predict_gpu", True),
]


def missing_packages(pyproject: Path = HERE.parent / "pyproject.toml") -> list[str]:
    """dltool's base dependencies (pyproject.toml) that are absent or older than it needs,
    as "name (have X, need SPEC)" or "name"; checked by distribution metadata, so nothing
    is imported."""
    missing = []
    for requirement in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        name, spec = re.match(r"([A-Za-z0-9_.\-]+)(\S*)", requirement).groups()  # type: ignore[union-attr]
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if spec and not _satisfies(have, spec):
            missing.append(f"{name} (have {have}, need {spec})")
    return missing


def _satisfies(version: str, spec: str) -> bool:
    from packaging.specifiers import SpecifierSet  # pip's own dependency: present wherever pip is

    return SpecifierSet(spec).contains(version, prereleases=True)


def run_checks(
    quick: bool, cuda: bool, budget_s: float, write: Callable[[list[dict[str, Any]]], None]
) -> list[dict[str, Any]]:
    """Every check's rows, written after each check (a run killed at its time limit keeps the
    rows it measured); once ``budget_s`` has passed, the checks not started yet are rows that
    say so, so that a slow machine still ends in time with a whole table. The measuring module
    is imported without CUDA too, so that CI catches a check that no longer imports."""
    import _gpu_rows

    deadline = time.perf_counter() + budget_s
    results: list[dict[str, Any]] = []
    for label, name, in_process in CHECKS:
        function = getattr(_gpu_rows, name)
        if not cuda:
            results.append(not_measured_row(label, NO_CUDA))
        elif time.perf_counter() > deadline:
            results.append(not_measured_row(label, f"the {budget_s:.0f} s budget was spent before it"))
        else:
            results += measured(label, function, quick, in_process)
        write(results)
    return results


def measured(
    label: str, function: Callable[[bool], list[Any]], quick: bool, in_process: bool = True
) -> list[dict[str, Any]]:
    """The check's rows with its peak GPU memory (None for a check run in another process) and
    wall time; a check that raises is a row that says so (the others still run)."""
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        rows = [row.as_dict() for row in function(quick)]
    except Exception as error:  # the table reports it; the next check still runs
        rows = [not_measured_row(label, f"failed: {type(error).__name__}: {error}".splitlines()[0])]
    peak = round(torch.cuda.max_memory_allocated() / 2**20, 1) if in_process else None
    seconds = round(time.perf_counter() - started, 1)
    return [{**row, "peak_gpu_mib": peak, "seconds": seconds} for row in rows]


def not_measured_row(label: str, why: str) -> dict[str, Any]:
    return {
        "bench": label,
        "dltool": f"not measured ({why})",
        "reference": "",
        "ratio": None,
        "peak_gpu_mib": None,
        "seconds": None,
    }


def markdown(results: list[dict[str, Any]], where: str) -> str:
    lines = [f"GPU check on {where}", "", "| check | dltool | reference | ratio | peak GPU memory | seconds |"]
    lines.append("|---|---|---|---|---|---|")
    for r in results:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        memory = "" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib']:,.0f} MiB"
        lines.append(
            f"| {r['bench']} | {r['dltool']} | {r['reference']} | {ratio} | {memory} | {'' if r['seconds'] is None else r['seconds']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test (CI runs it without CUDA)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for gpu_check.json and gpu_check.md")
    # 7 minutes, then the checks not started are skipped: the last (predict) takes about one.
    parser.add_argument("--budget", type=float, default=420, help="seconds after which no further check starts")
    args = parser.parse_args(argv)
    missing = missing_packages()
    if missing:
        print(f"gpu_check: missing Python packages: {', '.join(missing)} (carry them as wheels)", file=sys.stderr)
        return 2
    import torch

    from _common import machine

    cuda = torch.cuda.is_available()
    where = machine("cuda" if cuda else "cpu")
    args.out.mkdir(parents=True, exist_ok=True)

    def write(results: list[dict[str, Any]]) -> None:
        document = {"machine": where, "cuda": cuda, "quick": args.quick, "rows": results}
        (args.out / "gpu_check.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        (args.out / "gpu_check.md").write_text(markdown(results, where), encoding="utf-8")

    results = run_checks(args.quick, cuda, args.budget, write)
    print(markdown(results, where))
    return 0


if __name__ == "__main__":
    sys.exit(main())
