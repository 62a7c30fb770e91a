"""What every bench shares: a result row, the machine's description, the table they print.

Each bench module has ``run(quick: bool, device: str) -> list[Row]`` (what ``run_all.py``
calls) and a ``main()`` for running it alone.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Row:
    """One measurement: dltool's figure, the reference measured in the same run, the ratio
    (> 1 means dltool is better: faster, smaller or under the goal)."""

    bench: str
    dltool: str
    reference: str
    ratio: float | None  # None: a count or a figure with no meaningful ratio

    def as_dict(self) -> dict:
        return asdict(self)


def machine(device: str = "cpu") -> str:
    threads = torch.get_num_threads()
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"{platform.machine()}, {os.cpu_count()} CPUs"
    return f"{name}, {threads} thread{'s' if threads != 1 else ''}, torch {torch.__version__}"


def table(rows: list[Row], where: str) -> str:
    lines = ["| bench | dltool | reference | ratio | machine |", "|---|---|---|---|---|"]
    lines += [f"| {r.bench} | {r.dltool} | {r.reference} | {'' if r.ratio is None else f'{r.ratio:.2f}×'} | {where} |"
              for r in rows]
    return "\n".join(lines)


def bench_main(run: Callable[[bool, str], list[Row]], doc: str) -> None:
    """Parse --quick/--device, run the bench, print its table."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and samples")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    print(table(run(args.quick, args.device), machine(args.device)))
