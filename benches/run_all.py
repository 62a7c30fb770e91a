"""Run every benchmark; write benches/RESULTS.md and benches/results.json, and the README's table.

Usage: python benches/run_all.py [--quick] [--device cpu|cuda] [--only name,name]

Every figure is a ratio against a reference measured in the same run on the same machine.
The README's performance table is RESULTS.md's table, copied between its
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, table  # noqa: E402

BENCHES = [
    "startup",
    "train_overhead",
    "train_throughput",
    "cpu_threads",
    "cifar10_fast",
    "data_pipeline",
    "augment_throughput",
    "eval_throughput",
    "predict_throughput",
    "predict_scale",
    "export_latency",
    "tune_pruning",
    "transfer",
    "finetune_throughput",
    "stream_pipeline",
]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and samples (under 10 minutes on 2 cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="", help="comma-separated bench names")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else BENCHES
    rows, timings = [], {}
    for name in names:
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += importlib.import_module(name).run(args.quick, args.device)
        timings[name] = round(time.perf_counter() - started, 1)
    where = machine(args.device)
    markdown = (
        f"Measured by `python benches/run_all.py{' --quick' if args.quick else ''} --device {args.device}` "
        f"({sum(timings.values()):.0f} s).\n\n" + table(rows, where) + "\n"
    )
    (HERE / "RESULTS.md").write_text(markdown, encoding="utf-8")
    document = {
        "machine": where,
        "quick": args.quick,
        "device": args.device,
        "seconds": timings,
        "rows": [r.as_dict() for r in rows],
    }
    (HERE / "results.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    _update_readme(markdown)
    print(markdown)


def _update_readme(markdown: str) -> None:
    readme = HERE.parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    if START in text and END in text:
        head, rest = text.split(START, 1)
        readme.write_text(head + START + "\n" + markdown + END + rest.split(END, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    main()
