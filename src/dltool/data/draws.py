"""Per-sample random numbers: uniforms that depend only on (seed, epoch, sample index, stream).

Every random choice a training transform makes for a sample (its crop box, whether it is
flipped, its jitter factors, ...) is read from these, never from a global or per-worker RNG.
So a sample is transformed identically however the epoch is batched, however many worker
processes decode it, whichever rank of a torchrun job reads it, and whether the run was
resumed in the middle of the epoch.

The numbers are a counter-based hash (SplitMix64's finaliser over the four keys and the
draw number), vectorised in NumPy: a batch of 512 samples × 16 draws costs microseconds,
with no generator objects to create per sample.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 with good avalanche."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def _key(*parts: int) -> np.uint64:
    """One 64-bit key from integers (each reduced mod 2**64), in plain Python arithmetic."""
    state = 0
    for part in parts:
        x = (state + (part & _MASK) + int(_GOLDEN)) & _MASK
        x = ((x ^ (x >> 30)) * int(_MIX1)) & _MASK
        x = ((x ^ (x >> 27)) * int(_MIX2)) & _MASK
        state = x ^ (x >> 31)
    return np.uint64(state)


def sample_uniforms(seed: int, epoch: int, indices: np.ndarray, stream: int, count: int) -> np.ndarray:
    """float64 uniforms in [0, 1), shape (len(indices), count): row i depends only on
    (seed, epoch, indices[i], stream), column j is its j-th draw. ``stream`` keeps the
    draws of different consumers (augmentation, mixing) apart."""
    key = _key(seed, epoch, stream)
    samples = np.asarray(indices, dtype=np.int64).astype(np.uint64)[:, None]
    draws = np.arange(count, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        x = _mix(_mix(samples * _GOLDEN + key) + (draws + np.uint64(1)) * _GOLDEN)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
