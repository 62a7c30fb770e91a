"""OpenMP's wait policy, which torch's CPU thread pool (GNU libgomp) follows.

Between parallel regions libgomp's threads spin, by default, waiting for the next one: the
fastest choice while they have the cores to themselves, and a loss when other processes need
those cores. ``dltool predict`` decodes images in worker processes beside the forward pass;
measured on 2 cores, ResNet-18 at 224 px over 1600×1200 JPEGs with one decoding process:
spinning, 40 images/s in float32 and 62 in bf16; sleeping (``OMP_WAIT_POLICY=PASSIVE``), 45
and 81, better than decoding in the main process (42 and 68 sleeping, 42-48 and 80
spinning). libgomp reads the setting once, when torch is first imported, so a command sets
it before that; a policy the user set wins.

A foundation: the predict command sets it, and the library reads it (``waits_passively``)
to know whether decoding processes may run beside the forward pass at no cost to it.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"


def wait_passively() -> None:
    """Have OpenMP's threads sleep between parallel regions, unless the user chose a policy or
    torch is already imported (the threads already started as they will stay)."""
    if "torch" not in sys.modules:
        os.environ.setdefault(WAIT_POLICY, "PASSIVE")


def waits_passively() -> bool:
    """Whether this process's OpenMP threads sleep between parallel regions (as the
    environment says: libgomp read it at torch's import)."""
    return os.environ.get(WAIT_POLICY, "").strip().upper() == "PASSIVE"
