"""What every bench shares: a result row, the machine's description, the table they print.

Each bench module has ``run(quick: bool, device: str) -> list[Row]`` (what ``run_all.py``
calls) and a ``main()`` for running it alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from dltool.engine.device import synchronize

# The ratios issue 21 holds rows to, shared by several benches (the others sit at their row).
SMALL_LOOP_GOAL = 0.97  # digits-mlp/-cnn vs a bare loop; threads auto vs the better fixed setting
GPU_LOOP_GOAL = 0.95  # every recipe vs its bare loop on a GPU
PEAK_GOAL = 0.30  # cifar10-fast's achieved FLOP/s as a share of the measured bf16 matmul peak

ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*(?:\.[a-z0-9]+(?:-[a-z0-9]+)*)+")


@dataclass(frozen=True)
class Row:
    """One measurement: dltool's figure, the reference measured in the same run, the ratio
    (> 1 means dltool is better: faster, smaller or under the goal).

    ``id`` names the row across runs (``<bench>.<what>``, lower-case words joined by ``-``,
    never a measured figure); ``goal`` is the ratio an issue holds it to (None: no goal), and
    ``met`` says whether the ratio reaches it (None without a goal or without a ratio)."""

    bench: str
    dltool: str
    reference: str
    ratio: float | None  # None: a count or a figure with no meaningful ratio
    id: str = field(kw_only=True)
    goal: float | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not ID.fullmatch(self.id):
            raise ValueError(f"bench row id {self.id!r} is not <bench>.<what> in lower-case words joined by '-'")

    @property
    def met(self) -> bool | None:
        return None if self.goal is None or self.ratio is None else self.ratio >= self.goal

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Row:
        """A row as ``as_dict`` wrote it (``met`` is worked out again, not read)."""
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})


def slug(text: str) -> str:
    """``text`` as an id's word: lower case, each run of other characters one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine(device: str = "cpu") -> str:
    threads = torch.get_num_threads()
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"{platform.machine()}, {os.cpu_count()} CPUs"
    return f"{name}, {threads} thread{'s' if threads != 1 else ''}, torch {torch.__version__}"


def table(rows: list[tuple[Row, str]]) -> str:
    """A Markdown table of (row, the machine it was measured on)."""
    lines = ["| bench | dltool | reference | ratio | goal | met | machine |", "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {r.bench} | {r.dltool} | {r.reference} | {_times(r.ratio)} | {_times(r.goal, '≥ ')} | {MET[r.met]} | {where} |"
        for r, where in rows
    ]
    return "\n".join(lines)


MET = {True: "yes", False: "**no**", None: ""}


def _times(ratio: float | None, prefix: str = "") -> str:
    return "" if ratio is None else f"{prefix}{ratio:.2f}×"


def not_measured(why: str) -> str:
    """The figure of a row that could not be measured here, and why."""
    return f"not measured ({why})"


def matmul_peak(device: torch.device, size: int = 2048, repeats: int = 3) -> float:
    """This device's matmul FLOP/s: the best of 5 rounds of ``repeats`` size² products, in
    bf16 on CUDA (the tensor-core rate mixed-precision training aims at), fp32 elsewhere.
    The first round warms the library up."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    best = 0.0
    for _ in range(5):
        synchronize(device)
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        best = max(best, repeats * 2 * size**3 / (time.perf_counter() - started))
    return best


def timed_epoch(step: Callable[[torch.Tensor], None], samples: int, batch: int, device: torch.device) -> float:
    """Samples/s of one epoch of a bare loop: ``step(indices)`` on each whole batch of a fresh
    random order."""
    started = time.perf_counter()
    order = torch.randperm(samples, device=device)
    steps = samples // batch
    for b in range(steps):
        step(order[b * batch : (b + 1) * batch])
    synchronize(device)
    return steps * batch / (time.perf_counter() - started)


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A folder for one bench's runs, data and images, removed when it ends (a full predict_scale
    leaves gigabytes), with DLTOOL_DATA pointing into it meanwhile."""
    before = os.environ.get("DLTOOL_DATA")
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        os.environ["DLTOOL_DATA"] = str(Path(folder) / "data")
        try:
            yield Path(folder)
        finally:
            if before is None:
                os.environ.pop("DLTOOL_DATA", None)
            else:
                os.environ["DLTOOL_DATA"] = before


def bench_main(run: Callable[..., list[Row]], doc: str, *, data: bool = False) -> None:
    """Parse --quick/--device (and --data DIR when ``data``), run the bench, print its table."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and samples")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    if data:
        parser.add_argument("--data", metavar="DIR", help="data root holding the real dataset (dltool download --root)")
    args = parser.parse_args()
    extra = {"data": args.data} if data else {}
    where = machine(args.device)
    print(table([(row, where) for row in run(args.quick, args.device, **extra)]))
