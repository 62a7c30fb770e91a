"""The run directory's records: written from typed records, byte for byte as release 0.1.0
wrote them (tests/fixtures/runs/digits-mlp-0.1.0), and read back leniently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open

from dltool._safetensors import canonical, read_header
from dltool.errors import CheckpointError
from dltool.rundir import EpochRecord, RunDir, Summary, WeightsMetadata, open_run_dir, run_dir_of, runs_named_after

FIXTURE = Path(__file__).parent / "fixtures" / "runs" / "digits-mlp-0.1.0"


@pytest.fixture
def release_run(tmp_path: Path) -> RunDir:
    return open_run_dir(Path(shutil.copytree(FIXTURE, tmp_path / "digits-mlp-0.1.0")))


def test_summary_written_from_its_record_is_the_release_file(release_run: RunDir, tmp_path: Path) -> None:
    original = release_run.summary.read_bytes()
    record = Summary.from_dict(release_run.read_summary() or {})
    assert record.status == "completed" and record.best == {"epoch": 2, "metric": "val_loss", "value": 2.03222152069732}
    assert record.unknown == {}
    out = RunDir(tmp_path)
    out.write_summary(record)
    assert out.summary.read_bytes() == original


def test_metrics_rows_written_from_their_records_are_the_release_file(release_run: RunDir, tmp_path: Path) -> None:
    rows = release_run.read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    out = RunDir(tmp_path)
    for row in rows:
        out.append_metrics(EpochRecord.from_dict(row))
    assert out.metrics.read_bytes() == release_run.metrics.read_bytes()


def test_summary_key_order_per_status() -> None:
    base = {"status": "completed", "stop_reason": "epochs", "epochs_run": 1, "best": None, "final": None}
    scored = Summary(**base, test=None, wall_time_s=1.0).to_dict()
    assert list(scored)[:7] == ["status", "stop_reason", "epochs_run", "best", "final", "test", "wall_time_s"]
    failed = Summary(**base | {"status": "failed"}, error="ValueError: x").to_dict()
    assert "test" not in failed and list(failed)[5] == "error"
    interrupted = Summary(**base | {"status": "interrupted"}, test={"n": 1}).to_dict()
    assert "test" not in interrupted and "error" not in interrupted


def test_summaries_of_other_releases_still_read() -> None:
    older = Summary.from_dict({"status": "completed", "epochs_run": 3})  # keys missing
    assert older.best is None and older.threads is None and older.setup_time_s is None
    newer = Summary.from_dict({"status": "completed", "energy_j": 12.5})  # a key this release lacks
    assert newer.to_dict()["energy_j"] == 12.5


def test_a_cut_last_metrics_line_is_not_an_epoch(release_run: RunDir) -> None:
    with open(release_run.metrics, "a", encoding="utf-8") as file:
        file.write('{"epoch": 3, "st')
    assert len(release_run.read_metrics()) == 2


def test_one_safetensors_header_reader_agrees_with_safetensors(release_run: RunDir) -> None:
    header = release_run.weights_header()
    assert header == read_header(release_run.weights.read_bytes())
    with safe_open(str(release_run.weights), framework="np") as file:
        assert header.metadata == file.metadata()
        assert header.shapes == {k: tuple(file.get_slice(k).get_shape()) for k in file.keys()}  # noqa: SIM118
    blob = release_run.weights.read_bytes()
    assert canonical(blob) == blob  # dltool writes canonical files; canonical keeps them


def test_weights_metadata_round_trip(release_run: RunDir) -> None:
    metadata = release_run.weights_header().metadata
    parsed = WeightsMetadata.from_metadata(release_run.weights, metadata)
    assert parsed.in_shape == (1, 8, 8) and parsed.classes == [str(d) for d in range(10)]
    assert parsed.to_metadata() == metadata


@pytest.mark.parametrize(
    ("key", "value", "fault"),
    [
        ("config", "{not json", "'config' metadata is not JSON"),
        ("classes", "[1, 2]", "'classes' entry is not a list of class names"),
        ("in_shape", "a,b,c", "'in_shape' entry"),
        ("in_shape", "1,8", "'in_shape' entry"),
        ("config", "[1]", "'config' entry is not a dltool config"),
    ],
)
def test_malformed_weights_metadata_is_named(key: str, value: str, fault: str) -> None:
    with pytest.raises(CheckpointError, match="w.safetensors: its " + fault):
        WeightsMetadata.from_metadata("w.safetensors", {key: value})


def test_run_dir_of_a_weights_file(release_run: RunDir, tmp_path: Path) -> None:
    assert run_dir_of(release_run.weights) == release_run
    assert run_dir_of(release_run.last_checkpoint) == release_run
    assert run_dir_of(tmp_path / "loose.safetensors") is None


def test_a_runs_folder_named_where_one_run_goes_names_its_newest_run(cli, digits_run: Path) -> None:
    # eval runs/ said "no best weights (model.safetensors)"; visualize --augmentations told
    # to train on the images in it.
    for command, *rest in (["eval"], ["predict", "x.png"], ["visualize", "--augmentations"]):
        error = cli(command, digits_run.parent, *rest, code=2).stderr
        assert (
            f"{digits_run.parent} is a folder of runs, not one run: name one, e.g. {digits_run} (the newest)" in error
        )


def test_a_runs_folder_with_a_find_lr_dir_is_still_a_folder_of_runs(cli, tmp_path: Path) -> None:
    # A --find-lr dir (config.yaml and lr_find.json) made the folder no folder of runs: eval
    # runs/ said "no best weights", and the newest "run" it could name was the range test.
    run = Path(cli("train", "digits-mlp", "--epochs", "1", "--runs-dir", tmp_path / "r").stdout.strip())
    cli("train", "digits-mlp", "--find-lr", "--runs-dir", tmp_path / "r")
    error = cli("eval", tmp_path / "r", code=2).stderr
    assert f"{tmp_path / 'r'} is a folder of runs, not one run: name one, e.g. {tmp_path / 'r' / run.name}" in error


def test_a_folder_claimed_with_its_lock_appears_locked_and_whole(tmp_path: Path) -> None:
    from dltool.rundir import claimed_with_lock, wait_until_made

    runs = tmp_path / "new" / "runs"
    with claimed_with_lock(runs, "s", ".lock") as claimed:
        assert claimed.path == runs / "s" and (runs / "s" / ".lock").is_file()
        assert not wait_until_made(runs / "s", ".lock", timeout_s=0.05)  # its maker still holds it
        with pytest.raises(FileExistsError), claimed_with_lock(runs, "s", ".lock"):
            pass
    assert wait_until_made(runs / "s", ".lock", timeout_s=0.05)
    assert sorted(p.name for p in runs.iterdir()) == ["s"]  # the losing claim's folder is gone
    claimed.discard()
    assert not (tmp_path / "new").exists()  # with the folders made for it


@pytest.mark.parametrize(
    ("name", "damage", "fault", "readers"),
    [
        ("summary.json", '{"status": "compl', "not readable JSON (", ["stats", "visualize"]),
        ("classes.json", "[1,", "not readable JSON (", ["stats"]),  # visualize reads the weights' classes
        ("config.yaml", "data: [\n", "not a readable config (", ["stats", "visualize"]),
    ],
)
def test_a_damaged_record_says_how_to_write_it_again(
    cli, digits_run: Path, tmp_path: Path, name: str, damage: str, fault: str, readers: list[str]
) -> None:
    """stats and visualize stopped at "not readable JSON" (or config) with no next step."""
    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    (run / name).write_text(damage)  # a damaged disk, a hand edit
    for command in readers:
        args = [command, run] + (["--out", tmp_path / "plots"] if command == "visualize" else [])
        line = cli(*args, code=1).stderr
        assert line.startswith(f"error: {run / name}: {fault}") and line.count("\n") == 1, line
        assert line.rstrip().endswith(f"; dltool train --resume {run} writes it again"), line
    cli("train", "--resume", run, "-q")  # nothing more to train: it writes its records again
    assert json.loads(cli("stats", run, "--json").stdout)["status"] == "completed"


def test_resuming_an_ended_run_says_so_and_writes_nothing(cli, digits_run: Path, tmp_path: Path) -> None:
    """--resume of a completed run loaded its data, scored its test split again and wrote its
    records and summary again, exit 0 as if it had resumed something."""
    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    written = {path: path.stat().st_mtime_ns for path in run.rglob("*")}
    result = cli("train", "--resume", run)
    assert result.stdout == f"{run}\n" and "data ready" not in result.stderr
    assert result.stderr.startswith(f"{run}: completed already; nothing to resume (more epochs train further)\n")
    assert result.stderr.splitlines()[1].startswith("completed after 1 epoch: ")
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*")} == written
    cli("train", "--resume", run, "--tensorboard", "-q")  # something new asked: its events written
    assert (run / "tensorboard").is_dir()


def test_a_damaged_summary_without_a_checkpoint_can_be_removed(cli, digits_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    (run / "checkpoints" / "last.pt").unlink()
    (run / "summary.json").write_text("[")
    assert cli("stats", run, code=1).stderr.rstrip().endswith("; remove it to read the run without it")


def test_resume_removes_other_commands_temporaries_that_no_live_writer_holds(
    cli, digits_run: Path, tmp_path: Path
) -> None:
    """A SIGKILLed eval, visualize or export left its temporary in the run for good: resume
    swept only training's own, as another command might be writing the others right now."""
    import fcntl

    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    (run / "plots").mkdir()
    dead = [run / ".eval-test.json.k1ll3d00.tmp", run / "plots" / ".loss.png.k1ll3d00.tmp"]
    for path in dead:
        path.write_bytes(b"half")
    live = run / ".eval-val.json.l1vewr1t.tmp"  # an eval writing its report right now
    live.write_bytes(b"half")
    with open(live, "rb+") as writing:
        fcntl.flock(writing, fcntl.LOCK_EX)
        cli("train", "--resume", run, "-q")
        assert live.exists() and not any(path.exists() for path in dead)


def test_runs_trained_from_a_study_or_a_run_are_named_after_it(tmp_path: Path) -> None:
    # A study's best.yaml named its runs "best-<n>", whichever study it came from.
    study = tmp_path / "runs" / "digits-mlp-tune-2"
    run = tmp_path / "runs" / "digits-mlp-3"
    for folder, names in ((study, ("study.json", "best.yaml")), (run, ("config.yaml",)), (tmp_path, ("best.yaml",))):
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / name).write_text("{}\n")
    assert runs_named_after(study / "best.yaml") == "digits-mlp-tune-2-best"
    assert runs_named_after(run / "config.yaml") == "digits-mlp"
    assert runs_named_after(tmp_path / "best.yaml") == "best"  # a file of the user's own: its stem


def test_runs_dir_that_is_a_file_is_a_usage_error_naming_it(cli, tmp_path: Path) -> None:
    # It was "error: [Errno 17] File exists: 'notes.txt'", exit 1, naming no setting.
    from dltool import train
    from dltool.errors import UsageError

    (tmp_path / "notes.txt").write_text("mine")
    for runs_dir in ("notes.txt", "notes.txt/runs"):
        refused = cli("train", "digits-mlp", "--epochs", 1, "--runs-dir", runs_dir, code=2).stderr
        assert refused == f"error: --runs-dir {runs_dir}: notes.txt is a file, not a folder\n"
        with pytest.raises(UsageError, match=f"^runs_dir='{runs_dir}': notes.txt is a file, not a folder$"):
            train("digits-mlp", runs_dir=runs_dir, overrides={"train.epochs": 1})
    assert (tmp_path / "notes.txt").read_text() == "mine"
