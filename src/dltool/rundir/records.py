"""The records a run directory holds: a ``metrics.jsonl`` row per epoch, ``summary.json``, and
the metadata in ``model.safetensors`` that lets those weights travel alone.

The JSON is written from these types, key for key in the order DESIGN.md and the files of
earlier releases have them. Reading is lenient: unknown keys are kept, missing ones are None,
so a run written by an older or newer dltool still reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from dltool.errors import CheckpointError

# Statuses whose run went on to score its best weights on the test split (``test`` is then
# written, null when no epoch had a finite metric); the others end before that.
SCORED_STATUSES = ("completed", "early_stopped")


@dataclass(frozen=True)
class EpochRecord:
    """One line of ``metrics.jsonl``: the epoch that just ended, validation included.
    ``train_acc``/``val_acc`` exist for classifiers only (None: the key is left out); other
    tasks' scores are in ``metrics``, written after ``val_loss``."""

    epoch: int
    step: int
    lr: float
    train_loss: float
    val_loss: float
    epoch_time_s: float
    samples_per_s: float
    train_acc: float | None = None
    val_acc: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # the task's other scores (val_pck, ...)

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "lr": self.lr, "train_loss": self.train_loss}
        if self.train_acc is not None:
            row["train_acc"] = self.train_acc
        row["val_loss"] = self.val_loss
        if self.val_acc is not None:
            row["val_acc"] = self.val_acc
        row |= self.metrics
        row["epoch_time_s"] = self.epoch_time_s
        row["samples_per_s"] = self.samples_per_s
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> EpochRecord:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {name: row.get(name) for name in known - {"metrics"}}
        metrics = {k: v for k, v in row.items() if k not in known and isinstance(v, (int, float))}
        return cls(**values, metrics=metrics)


@dataclass(frozen=True)
class Summary:
    """``summary.json``: how a run ended, its kept epoch (``best``: epoch, metric, value), its
    last epoch's record (``final``), the test score of the kept weights (``test_is_val``: scored
    on the val split, the dataset having no test split of its own), how long it trained
    (``wall_time_s``) and set up (``setup_time_s``: data loaded, decoded, cached and measured,
    model built; absent in runs of 0.1.0) and where it ran."""

    status: str | None
    stop_reason: str | None = None
    epochs_run: int | None = None
    best: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    test: dict[str, Any] | None = None  # written for SCORED_STATUSES only
    error: str | None = None  # a failed run's error
    wall_time_s: float | None = None  # training, over every session
    setup_time_s: float | None = None  # loading data and building the model, over every session
    device: str | None = None
    amp: str | None = None
    world_size: int | None = None
    threads: int | None = None
    test_is_val: bool | None = None  # the val split was scored as the test split (absent in older runs)
    model_source: dict[str, Any] | None = None  # a custom model's class, file and SHA-256
    split_sizes: dict[str, int] | None = None  # images of each split as trained (eval checks its data against them)
    dltool_version: str | None = None
    torch_version: str | None = None
    unknown: dict[str, Any] = field(default_factory=dict)  # keys of other releases, kept as read

    def to_dict(self) -> dict[str, Any]:
        document = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "unknown"}
        if self.status not in SCORED_STATUSES:
            del document["test"]
        if self.error is None:
            del document["error"]
        for key in ("setup_time_s", "test_is_val", "model_source", "split_sizes"):
            if document[key] is None:  # not in this run (an older release's, a catalogue model)
                del document[key]
        return document | self.unknown

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Summary:
        known = {f.name for f in fields(cls)} - {"unknown"}
        return cls(
            **{k: v for k, v in document.items() if k in known},
            unknown={k: v for k, v in document.items() if k not in known},
        )


@dataclass(frozen=True)
class WeightsMetadata:
    """What ``model.safetensors`` carries besides its tensors: enough to rebuild and feed the
    model from that one file (the resolved config, class names, input shape)."""

    config: dict[str, Any] | None
    classes: list[str] | None
    in_shape: tuple[int, int, int] | None
    dltool_version: str | None = None

    def to_metadata(self) -> dict[str, str]:
        """The safetensors metadata (strings only)."""
        assert self.config is not None and self.classes is not None and self.in_shape is not None
        return {
            "format": "pt",
            "in_shape": ",".join(map(str, self.in_shape)),
            "num_classes": str(len(self.classes)),
            "dltool_version": self.dltool_version or "",
            "config": json.dumps(self.config),
            "classes": json.dumps(self.classes),
        }

    @classmethod
    def from_metadata(cls, source: object, metadata: dict[str, str]) -> WeightsMetadata:
        """Parse and check ``metadata`` (of file ``source``); a missing key is None, a
        malformed one a ``CheckpointError`` naming the file and the key."""
        config = _json_entry(source, metadata, "config")
        classes = _json_entry(source, metadata, "classes")
        shape_text = metadata.get("in_shape")
        in_shape = None
        if shape_text is not None:
            try:
                parsed: Any = [int(part) for part in shape_text.split(",")]
            except ValueError:
                parsed = shape_text
            in_shape = checked_in_shape(source, "in_shape", parsed)
        return cls(
            checked_config(source, "config", config) if config is not None else None,
            checked_classes(source, "classes", classes) if classes is not None else None,
            in_shape,
            metadata.get("dltool_version"),
        )


def _json_entry(source: object, metadata: dict[str, str], key: str) -> Any:
    if key not in metadata:
        return None
    try:
        return json.loads(metadata[key])
    except (json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{source}: its {key!r} metadata is not JSON") from None


MAX_SIDE = 1 << 16  # pixels (or channels): no dltool model is fed anything near this


def checked_in_shape(source: object, key: str, value: Any) -> tuple[int, int, int]:
    """``value`` as an input shape (channels, height, width), else a ``CheckpointError``."""
    if (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE for v in value)
    ):
        return (value[0], value[1], value[2])
    shown = repr(value)[:60]
    raise CheckpointError(
        f"{source}: its {key!r} entry {shown} is not an input shape (three positive integers: channels, height, width)"
    )


def checked_classes(source: object, key: str, value: Any) -> list[str]:
    """``value`` as a list of class names, else a ``CheckpointError``."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise CheckpointError(f"{source}: its {key!r} entry is not a list of class names")


def checked_config(source: object, key: str, value: Any) -> dict[str, Any]:
    """``value`` as a raw config tree (a map of sections, each a map), else a ``CheckpointError``;
    the config's own schema checks the values later."""
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        return value
    raise CheckpointError(f"{source}: its {key!r} entry is not a dltool config (a map of sections)")
