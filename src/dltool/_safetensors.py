"""Byte-level helpers for the safetensors format: 8-byte header length, JSON header, data.

The library writes the header from a Rust HashMap, so its key order (metadata and tensor
entries) changes from one process to the next; ``canonical`` sorts it, which makes equal
weights give equal files (what exact resume promises).
"""

from __future__ import annotations

import json


def canonical(blob: bytes) -> bytes:
    """``blob`` with its header re-serialised with sorted keys (data offsets are unchanged)."""
    header = read_header(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8-byte alignment
    return len(text).to_bytes(8, "little") + text + blob[8 + _header_length(blob) :]


def read_metadata(blob: bytes) -> dict[str, str]:
    return read_header(blob).get("__metadata__", {})


def read_header(blob: bytes) -> dict:
    return json.loads(blob[8 : 8 + _header_length(blob)])


def _header_length(blob: bytes) -> int:
    if len(blob) < 8:
        raise ValueError("too short for a safetensors file")
    length = int.from_bytes(blob[:8], "little")
    if length > len(blob) - 8:
        raise ValueError("header runs past the end of the file")
    return length
