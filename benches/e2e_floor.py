"""What any PyTorch training process pays before its first step: the interpreter, ``import
torch`` and one optimizer step, which imports ``torch._dynamo`` (every ``torch.optim``
optimizer's ``step`` does, compiled or not: about 1 s on 2 cores). One side of
benches/end_to_end.py, timed like the others; it trains nothing (accuracy null) and leaves
without the interpreter's final clean-up (as dltool does: half a second once torch._dynamo
is loaded), so that it is a floor.

Usage: python benches/e2e_floor.py
"""

from __future__ import annotations

import json
import os
import sys

import torch


def main() -> None:
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([weight])
    weight.sum().backward()
    optimizer.step()
    print(json.dumps({"accuracy": None}), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
