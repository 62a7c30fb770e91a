"""Run every benchmark; write benches/RESULTS.md and benches/results.json, and the README's table.

Usage: python benches/run_all.py [--quick] [--device cpu|cuda] [--only name,name]

Every figure is a ratio against a reference measured in the same run on the same machine.
Each row of results.json has a stable ``id``, the ``goal`` ratio an issue holds it to (null
where none) and whether it was ``met`` (null without a goal or a measured ratio).
The README's performance table is RESULTS.md's table, copied between its
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import Row, machine, table  # noqa: E402

BENCHES = [
    "startup",
    "train_overhead",
    "end_to_end",
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
    "heap_reuse",
    "stream_pipeline",
]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and samples (about 4 minutes on 2 cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="", help="comma-separated bench names; the others keep their stored rows")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else BENCHES
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; the benches are {', '.join(BENCHES)}")
    stored = _stored() if args.only else {}
    for name in names:  # saved after each bench: one that fails loses none before it
        stored[name] = _run_one(name, args.quick, args.device)
        markdown = _save(stored)
    print(markdown)


def _save(stored: dict[str, dict]) -> str:
    """results.json, RESULTS.md and the README's table from ``stored``; the markdown."""
    (HERE / "results.json").write_text(json.dumps({"benches": stored}, indent=2) + "\n", encoding="utf-8")
    markdown = _markdown(stored)
    (HERE / "RESULTS.md").write_text(markdown, encoding="utf-8")
    _update_readme(markdown)
    return markdown


def _run_one(name: str, quick: bool, device: str) -> dict:
    """One bench's rows and how they were measured."""
    print(f"running {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with _every_core():
        rows = importlib.import_module(name).run(quick, device)
    check_ids(name, rows)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "quick": quick,
        "device": device,
        "machine": machine(device),
        "measured": datetime.date.today().isoformat(),
        "rows": [r.as_dict() for r in rows],
    }


def _every_core() -> AbstractContextManager[None]:
    """torch's thread count at one per core for a bench, and the caller's back after it: the
    benches share this process, and one left at a single thread (finetune_throughput's) made
    the next bench's references single-threaded (predict_scale's plain loop, 2026-12-07); a
    count left at every core made a later in-process run of the test suite train on two
    threads where its reference ran on one."""
    from dltool.engine.threads import cpu_threads, usable_cores

    return cpu_threads(usable_cores())


def check_ids(name: str, rows: list[Row]) -> None:
    """Each row's id begins with its bench's name and no two rows share one: the ids are how
    results are compared across runs."""
    prefix = name.replace("_", "-") + "."
    wrong = [r.id for r in rows if not r.id.startswith(prefix)]
    if wrong:
        raise ValueError(f"{name}: row ids must begin with {prefix!r}: {', '.join(wrong)}")
    ids = [r.id for r in rows]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"{name}: row ids used twice: {', '.join(repeated)}")


def _stored() -> dict[str, dict]:
    """The results of the last runs, by bench (what ``--only`` leaves in place)."""
    path = HERE / "results.json"
    return json.loads(path.read_text(encoding="utf-8"))["benches"] if path.exists() else {}


def _markdown(results: dict[str, dict]) -> str:
    """RESULTS.md: one table in BENCHES order; each bench says when and how it ran."""
    rows, runs = [], []
    for name in (n for n in BENCHES if n in results):
        result = results[name]
        flags = (" --quick" if result["quick"] else "") + f" --device {result['device']}"
        runs.append(f"- `{name}`: {result['measured']}, {result['seconds']:.0f} s (`run_all.py{flags}`)")
        rows += [(Row.from_dict(row), result["machine"]) for row in result["rows"]]
    head = "Measured by `python benches/run_all.py`; each bench's last run:\n\n" + "\n".join(runs)
    return head + "\n\n" + table(rows) + "\n"


def _update_readme(markdown: str) -> None:
    readme = HERE.parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    if START in text and END in text:
        head, rest = text.split(START, 1)
        readme.write_text(head + START + "\n" + markdown + END + rest.split(END, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    main()
