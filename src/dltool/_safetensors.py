"""The one reader of safetensors headers: 8-byte header length, JSON header, then the data.

Every part of dltool that looks inside a safetensors file without loading its tensors
(``stats``, the dataset cache, the weights' metadata) reads the header here, from a file
(only the header's bytes are read) or from bytes already in memory.

The library writes the header from a Rust HashMap, so its key order (metadata and tensor
entries) changes from one process to the next; ``canonical`` sorts it, which makes equal
weights give equal files (what exact resume promises).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = 8  # bytes of the little-endian header length that opens every file


@dataclass(frozen=True)
class Header:
    """A parsed, checked header: tensor entries (``dtype``, ``shape``, ``data_offsets``),
    the string metadata, and where the tensor data starts in the file."""

    tensors: dict[str, dict[str, Any]]
    metadata: dict[str, str]
    data_start: int
    document: dict[str, Any]  # the header as it was parsed, metadata included

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(entry["shape"]) for name, entry in self.tensors.items()}


def read_header(source: Path | bytes) -> Header:
    """The header of a file (reading only its header bytes) or of a whole file's bytes.

    Raises ``OSError`` when the file cannot be read and ``ValueError`` when it is not a
    well-formed safetensors header; callers name the file in their own error.
    """
    if isinstance(source, (bytes, bytearray)):
        length = _header_length(bytes(source[:PREFIX]), len(source))
        return _parse(bytes(source[PREFIX : PREFIX + length]))
    with open(source, "rb") as file:
        length = _header_length(file.read(PREFIX), Path(source).stat().st_size)
        return _parse(file.read(length))


def read_metadata(blob: bytes) -> dict[str, str]:
    """The string metadata of a whole file's bytes."""
    return read_header(blob).metadata


def canonical(blob: bytes) -> bytes:
    """``blob`` with its header re-serialised with sorted keys (data offsets are unchanged)."""
    header = read_header(blob)
    text = json.dumps(header.document, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8-byte alignment
    return len(text).to_bytes(8, "little") + text + blob[header.data_start :]


def _header_length(prefix: bytes, size: int) -> int:
    if len(prefix) < PREFIX:
        raise ValueError("too short for a safetensors file")
    length = int.from_bytes(prefix, "little")
    if length > size - PREFIX:
        raise ValueError("header runs past the end of the file")
    return length


def _parse(text: bytes) -> Header:
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("header is not JSON") from None
    if not isinstance(document, dict):
        raise ValueError("header is not a JSON object")
    metadata = document.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("header metadata is not a map of strings")
    tensors = {name: entry for name, entry in document.items() if name != "__metadata__"}
    for name, entry in tensors.items():
        if not _is_tensor_entry(entry):
            raise ValueError(f"header entry {name!r} is not a tensor description")
    return Header(tensors, metadata, PREFIX + len(text), document)


def _is_tensor_entry(entry: Any) -> bool:
    def integers(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, int) and v >= 0 for v in value)

    return (
        isinstance(entry, dict)
        and isinstance(entry.get("dtype"), str)
        and integers(entry.get("shape"))
        and integers(entry.get("data_offsets"))
        and len(entry["data_offsets"]) == 2
    )
