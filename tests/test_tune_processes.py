"""dltool tune as real processes: the best.yaml pipeline, local workers, PostgreSQL."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import dltool_command, run_dltool
from dltool.tuning import open_study
from dltool.tuning.storage import open_storage
from studies import QUICK, RANDOM_SPACE, study_json, trials_csv, write


@pytest.mark.slow
def test_train_best_yaml_trains_the_best_configuration(tmp_path: Path) -> None:
    space = write(tmp_path / "S.yaml", RANDOM_SPACE)
    dltool = shlex.join(dltool_command())
    quick = shlex.join(QUICK)
    pipeline = f"{dltool} train $({dltool} tune digits-mlp --space {space} --trials 4 {quick} -q)/best.yaml -q"
    result = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / result.stdout.strip()
    study = tmp_path / "runs" / "digits-mlp-tune-1"
    assert run.name == "digits-mlp-tune-1-best-1"  # after the study, not "best-1"
    best = study_json(study)["best"]
    trial = study / best["run_dir"]
    import yaml

    strip = lambda c: {**c, "data": {k: v for k, v in c["data"].items() if k not in ("mean", "std")}}  # noqa: E731
    assert strip(yaml.safe_load((run / "config.yaml").read_text())) == strip(
        yaml.safe_load((trial / "config.yaml").read_text())
    )
    reached = max(json.loads(line)["val_acc"] for line in (run / "metrics.jsonl").read_text().splitlines())
    assert reached == pytest.approx(best["value"])  # the same seed and config train the same way


@pytest.mark.slow
def test_two_workers_share_the_journal_and_finish_8_trials(tmp_path: Path) -> None:
    space = write(tmp_path / "space.yaml", RANDOM_SPACE)
    result = run_dltool(
        "tune",
        "digits-mlp",
        "--space",
        space,
        "--trials",
        "8",
        *QUICK,
        "--workers",
        "2",
        "--name",
        "pool",
        cwd=tmp_path,
    )
    study = tmp_path / "runs" / "pool"
    rows = trials_csv(study)
    assert [int(r["number"]) for r in rows] == list(range(8))
    assert {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}
    assert sorted(p.name for p in study.glob("trial-*")) == [f"trial-{n:04d}" for n in range(8)]
    workers = {t.user_attrs["worker"]["pid"] for t in open_study(study).trials}
    assert len(workers) == 2  # both worker processes ran trials
    logs = result.stderr + "".join(p.read_text() for p in (study / "workers").glob("*.log"))
    assert "lock" not in logs.lower() and "Traceback" not in logs and "error" not in logs.lower()
    assert "Warning" not in logs  # runpy's RuntimeWarning opened every worker's log


def postgres_url() -> str | None:
    url = os.environ.get("DLTOOL_TEST_POSTGRES")
    if url is None and os.environ.get("CI"):
        pytest.fail("CI is set but DLTOOL_TEST_POSTGRES is not: .ci/run starts PostgreSQL and sets it")
    return url


@pytest.mark.slow
def test_two_processes_share_one_study_on_postgresql(tmp_path: Path) -> None:
    import optuna

    url = postgres_url()
    if url is None:
        pytest.skip("DLTOOL_TEST_POSTGRES is not set (.ci/run sets it)")
    name = f"test-{uuid.uuid4().hex[:12]}"
    space = write(tmp_path / "space.yaml", RANDOM_SPACE)
    args = ["tune", "digits-mlp", "--space", space, "--trials", "8", *QUICK, "--storage", url, "--study", name, "-q"]
    processes = [
        subprocess.Popen(
            dltool_command(*args, "--runs-dir", f"machine-{i}"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    try:
        every = optuna.load_study(study_name=name, storage=open_storage(url, tmp_path)).trials
        # Two machines can both ask for the last trial at once; the later one is failed at
        # once as surplus (docs/design-notes.md) and is listed but never run or counted.
        trials = [t for t in every if t.state.name != "FAIL"]
        surplus = [t for t in every if t.state.name == "FAIL"]
        assert [t.number for t in trials] == list(range(8))
        assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
        assert all(t.user_attrs["stopped"].startswith("not run:") and t.number >= 8 for t in surplus)
        assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both processes ran trials
        dirs = sorted(p.name for p in tmp_path.glob("machine-*/digits-mlp-tune-1/trial-*"))
        assert dirs == [f"trial-{n:04d}" for n in range(8)]
        for stdout, _ in outputs:  # each study dir records the whole study, without the password
            document = study_json(tmp_path / stdout.strip())
            assert document["states"]["COMPLETE"] + document["states"]["PRUNED"] == 8
            assert ":dltool@" not in document["storage"] and document["study_name"] == name
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(url, tmp_path))


@pytest.mark.slow
def test_processes_started_at_once_on_one_name_share_its_study(tmp_path: Path) -> None:
    # A job array on one machine: each process makes or continues the study `s`. One that
    # found the study dir half made (no study.json yet) was refused: "not a study to continue".
    space = write(tmp_path / "space.yaml", RANDOM_SPACE)
    args = dltool_command("tune", "digits-mlp", "--space", space, "--trials", "6", *QUICK, "--name", "s", "-q")
    processes = [
        subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=240) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0 and stdout == "runs/s\n", stderr
    trials = [t for t in open_study(tmp_path / "runs" / "s").trials if t.state.name != "FAIL"]
    assert len(trials) >= 6 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["s"]  # no folder left half made
