"""dltool tune on a damaged or lost storage: one line naming it and what to do (exit 1),
never a traceback, never a study silently started over, never a trial written into an
existing trial dir. ``--restart-study`` starts afresh with the old records set aside."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import run_dltool
from studies import QUICK, study_json, trials_csv, write

GRID = "optimizer.lr: [1.0e-3, 1.0e-2]\n"  # two trials
ARGS = ["tune", "digits-mlp", "--space", "space.yaml", "--sampler", "grid", "--pruner", "none", *QUICK, "--name", "s"]


def _finished_study(root: Path, data_dir: Path, *extra: str) -> Path:
    write(root / "space.yaml", GRID)
    run_dltool(*ARGS, "-q", *extra, cwd=root, env={"DLTOOL_DATA": str(data_dir)})
    return root


@pytest.fixture(scope="module")
def journal_study(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A finished two-trial study on the default journal, made once; tests copy it."""
    return _finished_study(tmp_path_factory.mktemp("journal-study"), data_dir)


@pytest.fixture
def study(journal_study: Path, tmp_path: Path) -> Path:
    shutil.copytree(journal_study, tmp_path, dirs_exist_ok=True)
    return tmp_path / "runs" / "s"


def _one_line(result) -> str:
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def _line_of(journal: Path, number: int) -> bytes:
    return journal.read_bytes().splitlines(keepends=True)[number - 1]


DAMAGE = {
    "cut short": lambda data: data[: len(data.splitlines(keepends=True)[0]) + 10],
    "binary": lambda data: random.Random(0).randbytes(3000),
    "a garbage line at the end": lambda data: data + b"garbage{\n",
    "a garbage line inside": lambda data: b"".join(
        b"xx\n" if i == 2 else line for i, line in enumerate(data.splitlines(keepends=True))
    ),
    "a JSON list": lambda data: data + b"[1, 2]\n",
    "a record of the wrong shape": lambda data: data + b'{"op_code": 4, "worker_id": "w"}\n',
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_journal_is_one_line_naming_it_and_what_to_do(cli, study: Path, damage: str) -> None:
    journal = study / "study.journal"
    journal.write_bytes(DAMAGE[damage](journal.read_bytes()))
    before = journal.read_bytes()
    line = _one_line(cli(*ARGS, code=1))
    assert f"{journal.resolve()}: damaged study journal" in line, line
    assert "restore it from a copy" in line and "--restart-study" in line
    assert journal.read_bytes() == before and len(trials_csv(study)) == 2  # nothing was touched


def test_visualize_names_a_damaged_journal_in_one_line(cli, study: Path) -> None:
    journal = study / "study.journal"
    journal.write_bytes(journal.read_bytes() + b"garbage{\n")
    line = _one_line(cli("visualize", str(study), code=1))
    assert "damaged study journal" in line, line


@pytest.mark.parametrize("loss", ["emptied", "deleted"])
def test_a_lost_journal_is_refused_with_what_the_study_dir_records(cli, study: Path, loss: str) -> None:
    journal = study / "study.journal"
    journal.write_bytes(b"") if loss == "emptied" else journal.unlink()
    record = study_json(study)
    line = _one_line(cli(*ARGS, "--trials", "2", code=1))
    assert "runs/s: its storage runs/s/study.journal has no study 's', but the study dir records 2 trials" in line
    assert "trial dirs trial-0000 to trial-0001" in line and f"best trial {record['best']['number']}" in line
    assert "--restart-study" in line
    assert study_json(study) == record and len(trials_csv(study)) == 2  # the earlier best stays


def test_an_older_copy_of_the_journal_is_refused(cli, study: Path) -> None:
    journal = study / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    second = [i for i, line in enumerate(lines) if json.loads(line)["op_code"] == 4][1]  # CREATE_TRIAL
    journal.write_bytes(b"".join(lines[:second]))  # as it was before trial 1 was created
    line = _one_line(cli(*ARGS, code=1))
    assert "has 1 trial, but the study dir records 2 trials" in line, line


def test_restart_study_sets_the_records_aside_and_starts_afresh(cli, study: Path) -> None:
    (study / "study.journal").write_bytes(b"garbage{\n")
    result = cli(*ARGS, "--restart-study")
    aside = study / "restarted-1"
    assert (
        result.stdout == "runs/s\n" and "started afresh: the earlier records are in runs/s/restarted-1" in result.stderr
    )
    assert {p.name for p in aside.iterdir()} == {
        "study.json",
        "trials.csv",
        "best.yaml",
        "study.journal",
        "trial-0000",
        "trial-0001",
    }
    assert (aside / "study.journal").read_bytes() == b"garbage{\n"
    assert [r["state"] for r in trials_csv(study)] == ["COMPLETE", "COMPLETE"]
    assert study_json(study)["states"]["COMPLETE"] == 2


def test_a_trial_is_never_written_into_an_existing_trial_dir(tmp_path: Path) -> None:
    from dltool.errors import StorageError
    from dltool.tuning import StudyOptions, open_study, prepare_study, tune

    settings = prepare_study("digits-mlp", {"optimizer.lr": [1e-3]}, StudyOptions(name="s"), flags={"train.epochs": 1})
    stray = settings.study_dir / "trial-0000"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(StorageError, match="trial-0000 exists already, but the study's storage has trial 0 as a new"):
        tune(settings)
    assert [p.name for p in stray.iterdir()] == ["notes.txt"]
    (trial,) = open_study(settings.study_dir).trials
    assert trial.state.name == "FAIL" and trial.user_attrs["stopped"].startswith("not run")  # not counted


@pytest.mark.parametrize("page", [1, "trials"])
def test_a_damaged_sqlite_database_is_one_line_naming_it(cli, data_dir: Path, tmp_path: Path, page) -> None:
    database = tmp_path / "s.db"
    _finished_study(tmp_path, data_dir, "--storage", f"sqlite:///{database}")
    with sqlite3.connect(database) as connection:
        size = connection.execute("PRAGMA page_size").fetchone()[0]
        number = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'trials'").fetchone()[0]
    connection.close()
    number = 1 if page == 1 else number
    with open(database, "r+b") as file:  # past page 1's 100-byte file header, or a whole table page
        file.seek((number - 1) * size + (16 if number == 1 else 0))
        file.write(b"\xde\xad\xbe\xef" * 64)
    storage = f"sqlite:///{database}"
    line = _one_line(cli(*ARGS, "--storage", storage, "--trials", "3", code=1))
    assert f"--storage {storage}: damaged SQLite database" in line and "restore it from a copy" in line, line


def test_a_storage_that_cannot_open_leaves_no_folder_behind(cli, tmp_path: Path) -> None:
    write(tmp_path / "space.yaml", GRID)
    storage = f"sqlite:///{tmp_path / 'no-such-folder' / 's.db'}"
    line = _one_line(cli(*ARGS[:-2], "--storage", storage, "--runs-dir", "new/runs", code=1))
    assert f"--storage {storage}: cannot open" in line, line
    assert not (tmp_path / "new").exists()  # neither the study dir nor the runs folders made for it
    (tmp_path / "runs").mkdir()
    _one_line(cli(*ARGS, "--storage", storage, code=1))
    assert (tmp_path / "runs").is_dir() and not (tmp_path / "runs" / "s").exists()  # it was there before
