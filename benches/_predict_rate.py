"""Images/s of predict as `dltool predict` runs it, in a fresh process set up as the command
sets one up (``prepare_process``: OpenMP's threads sleep between parallel regions where
decoding processes run beside them, which libgomp reads once, at torch's import, so the
bench's own process cannot show it). The model is loaded first; the figure is the better of
two passes over the folder (the first also warms the model up).

Usage (from the benches): python benches/_predict_rate.py MODEL FOLDER COUNT [--workers N]
[--amp bf16] [--batch-size N] — prints the rate.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def command_rate(
    model: Path, folder: Path, count: int, workers: int | None = None, amp: str = "off", batch_size: int | None = None
) -> float:
    """Images/s of ``dltool predict MODEL FOLDER`` with these options, measured in a child process."""
    options = [*(["--workers", str(workers)] if workers is not None else []), "--amp", amp]
    options += ["--batch-size", str(batch_size)] if batch_size else []
    command = [sys.executable, __file__, str(model), str(folder), str(count), *options]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("folder")
    parser.add_argument("count", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--amp", default="off")
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args()
    from dltool.commands.predict import prepare_process

    prepare_process(args.workers)  # before anything imports torch, as the command does
    from dltool.evaluation.predict import Prediction, predict
    from dltool.export.inference import load_inference_model

    model = load_inference_model(Path(args.model), device="cpu", amp=args.amp)
    best = 0.0
    for _ in range(2):
        started = time.perf_counter()
        rows = predict(model, [args.folder], workers=args.workers, batch_size=args.batch_size)
        found = sum(isinstance(row, Prediction) for row in rows)
        assert found == args.count, f"{found} rows for {args.count} files"
        best = max(best, args.count / (time.perf_counter() - started))
    print(best)


if __name__ == "__main__":
    main()
