"""Helpers shared by the tests that read a run's TensorBoard events with TensorBoard's reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

SESSION_START = "_hparams_/session_start_info"


def events(run: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator: EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def hparams(accumulator: EventAccumulator) -> dict[str, object]:
    content = accumulator.PluginTagToContent("hparams")[SESSION_START]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}


def epoch_series(run: Path) -> dict[str, list[tuple[int, float]]]:
    """What the events should hold per epoch: every number of metrics.jsonl at step = epoch."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        key: [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in records]
        for key in records[0]
        if key not in {"epoch", "step"}
    }


def logs_every_epoch(run: Path) -> bool:
    """The events hold each epoch of metrics.jsonl once, with its values."""
    logged, expected = scalars(events(run)), epoch_series(run)
    return {tag: logged.get(tag) for tag in expected} == expected
