"""benches/predict_scale.py, tiny: every row measured, one predict row per file, memory sampled."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import REPO

sys.path.insert(0, str(REPO / "benches"))
import predict_scale


def test_the_bench_runs_at_tiny_sizes(tmp_path: Path, monkeypatch) -> None:
    rows = predict_scale.measure(tmp_path, jpegs=6, pngs=60, jpeg_size=(320, 240), image_size=32, sweep=True)
    assert [r.bench.split(" (")[0] for r in rows] == [
        "predict 6 JPEGs of 320×240, ResNet-18 at 32²",
        "  the same, the run exported to ONNX: `dltool predict model.onnx`, no torch",
        "  the same, the run exported with `--int8`: ONNX with int8 weights and activations",
        "  the same with --amp bf16: the run's forward pass in bf16 autocast",
        "  the ceiling: the run's forward pass alone, nothing decoded",
        "  the same with --workers 0",
        "  the same with --workers 1",
        "  the same with --workers 2",
        "  the same, ONNX with --workers 0",
        "  the same, ONNX with --workers 1",
        "  the same, ONNX with --workers 2",
        "  the same, ONNX int8 with --workers 0",
        "  the same, ONNX int8 with --workers 1",
        "  the same, ONNX int8 with --workers 2",
        "predict peak RSS, 6 JPEGs of 320×240",
        "predict peak RSS, 60 PNGs of 64×48",
        "predict peak RSS, 6 JPEGs of 320×240, the run exported to ONNX",
        "predict peak RSS, 60 PNGs of 64×48, the run exported to ONNX",
        "predict peak RSS, 6 JPEGs of 320×240, the run exported to ONNX with --int8",
    ]
    assert rows[2].goal == rows[1].goal == rows[0].goal == 3.0  # issue 17's speed, held against the same plain loop
    assert rows[2].reference == rows[1].reference == rows[0].reference
    assert rows[2].id == "predict-scale.large-jpegs.onnx-int8"
    assert all(r.ratio is not None and r.ratio > 0 for r in rows)
    memory = rows[-5:]
    assert all(float(r.dltool.split()[0].replace(",", "")) > 0 for r in memory)  # RSS was sampled
    assert all("PSS" in r.dltool and "loading the model alone" in r.reference for r in memory)
    assert [r.id for r in memory[2:]] == [
        "predict-scale.rss.onnx.large-jpegs",
        "predict-scale.rss.onnx.small-pngs",
        "predict-scale.rss.onnx-int8.large-jpegs",
    ]
    assert all(r.goal == 1.0 for r in memory)
