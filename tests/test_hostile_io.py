"""Hostile and careless inputs on the file-system and network side (issue 18): symlink loops,
FIFOs, empty IDX splits, endless mirrors, full disks, orphaned temporaries, stray run dirs
and empty class folders in datasets, bad environment values, inherited ignored SIGINT.

Each one must end in one line on stderr (or a named skipped file), never a traceback, a
hang or a filled disk. Everything here is small: the whole file runs in seconds.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import dltool_command
from dltool._io import TEMPORARY, atomic_write_bytes, sweep_stale_temporaries
from dltool.data.download import download_dataset
from dltool.data.folders import load_folder
from dltool.data.sources import CHECKSUMS, SIZES
from dltool.errors import DatasetError, DiskFullError
from fakedata import FileServer, fake_idx, idx

TRACEBACK = "Traceback (most recent call last)"


def one_line(stderr: str) -> str:
    """The error line of a failed command: exactly one 'error:' line and no traceback."""
    assert TRACEBACK not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def image_folder(root: Path, classes: dict[str, int]) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(np.full((8, 8), 20 * i + 60 * len(name), np.uint8)).save(root / name / f"{i}.png")
    return root


def fill(mount: Path, leave: int) -> None:
    """Fill the filesystem at ``mount`` until about ``leave`` bytes are free."""
    stats = os.statvfs(mount)
    (mount / "filler").write_bytes(bytes(max(0, stats.f_bavail * stats.f_frsize - leave)))


# --- 6, 7: symlink loops and FIFOs in image folders ------------------------------------------


def test_a_symlink_loop_in_an_image_folder_is_skipped_and_named(cli, tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"a": 3, "b": 3})
    (root / "a" / "self.png").symlink_to("self.png")
    os.mkfifo(root / "b" / "pipe.png")  # a FIFO would block an open() for ever
    report = json.loads(cli("stats", root, "--json").stdout)
    unreadable = {Path(item["path"]).name: item["reason"] for item in report["unreadable"]}
    assert set(unreadable) == {"self.png", "pipe.png"}
    assert "symbolic links" in unreadable["self.png"] and "FIFO" in unreadable["pipe.png"]


def test_a_loop_or_fifo_changes_nothing_else_in_the_dataset(tmp_path: Path) -> None:
    clean = load_folder(image_folder(tmp_path / "ds", {"a": 2, "b": 2}), cache_root=tmp_path / "c1")
    (tmp_path / "ds" / "a" / "loop.png").symlink_to("loop.png")
    hostile = load_folder(tmp_path / "ds", cache_root=tmp_path / "c2")
    assert hostile.classes == clean.classes
    np.testing.assert_array_equal(hostile.splits["train"].images, clean.splits["train"].images)
    # "data ready in 0.1 s: decoded 5 images" counted the file it skipped as decoded.
    assert hostile.load is not None and hostile.load.describe() == "decoded 4 images, cache written"
    (tmp_path / "ds" / "b" / "empty.png").write_bytes(b"")
    in_memory = load_folder(tmp_path / "ds")  # no cache root: decoded into memory only
    assert in_memory.load is not None and in_memory.load.decoded == 4


# --- 8: an IDX dataset that declares 0 images ---------------------------------------------------


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_an_idx_split_of_zero_images_is_one_line_naming_dataset_and_split(cli, split: str, tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, data in fake_idx("mnist").outputs.items():
        (folder / name).write_bytes(data)
    (folder / f"{split}-images-idx3-ubyte").write_bytes(idx(np.zeros((0, 28, 28), np.uint8)))
    (folder / f"{split}-labels-idx1-ubyte").write_bytes(idx(np.zeros(0, np.uint8)))
    result = cli("train", "digits-mlp", "--dataset", "mnist", "--set", f"data.root={tmp_path}", "--epochs", "1", code=1)
    line = one_line(result.stderr)
    assert "mnist" in line and f"the {'train' if split == 'train' else 'test'} split is empty" in line


# --- 9: a mirror that never stops, a disk that fills ------------------------------------------


def _endless_mnist(server: FileServer, monkeypatch: pytest.MonkeyPatch) -> str:
    dataset = fake_idx("mnist")
    server.files.update(dataset.published)
    name = "train-images-idx3-ubyte.gz"
    server.faults[name] = "endless"
    monkeypatch.setitem(CHECKSUMS, "mnist", dataset.checksums())
    monkeypatch.setitem(SIZES, "mnist", {n: len(data) for n, data in dataset.published.items()})
    return name


def test_an_endless_mirror_stops_at_the_known_size_and_leaves_no_part(monkeypatch, tmp_path: Path) -> None:
    with FileServer() as server:
        name = _endless_mnist(server, monkeypatch)
        with pytest.raises(DatasetError, match="sent more than the expected") as error:
            download_dataset("mnist", tmp_path, mirrors=[server.url], retries=0)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "mnist" / f"{name}.part").exists()


def test_an_endless_mirror_on_a_full_disk_is_one_line_and_no_part(cli, small_fs: Path, monkeypatch) -> None:
    with FileServer() as server:
        name = _endless_mnist(server, monkeypatch)
        monkeypatch.setitem(SIZES, "mnist", {})  # no known size: only the disk stops it
        result = cli("download", "mnist", "--root", small_fs, "--mirror", server.url, code=1)
    line = one_line(result.stderr)
    assert f"no space left on {small_fs} while writing" in line and name in line
    assert not list((small_fs / "mnist").glob("*.part"))


def test_every_atomic_writer_names_a_full_disk(small_fs: Path) -> None:
    fill(small_fs, 8 << 10)
    with pytest.raises(DiskFullError, match=f"no space left on {small_fs} while writing {small_fs}/big"):
        atomic_write_bytes(small_fs / "big", bytes(1 << 20))
    assert [p.name for p in small_fs.iterdir()] == ["filler"]  # its temporary is gone too


def test_a_cache_that_does_not_fit_is_skipped_not_fatal(small_fs: Path, tmp_path: Path) -> None:
    images = image_folder(tmp_path / "ds", {"a": 2, "b": 2})
    fill(small_fs, 0)
    arrays = load_folder(images, cache_root=small_fs)  # decoded, just not cached
    assert arrays.classes == ["a", "b"] and not list((small_fs / "folders").rglob("*.safetensors"))


# --- 11: a full disk while training writes its checkpoint -------------------------------------


def test_a_full_disk_mid_training_is_one_line_and_the_last_checkpoint_survives(cli, small_fs: Path) -> None:
    run = Path(cli("train", "digits-mlp", "--epochs", "1", "--runs-dir", small_fs, "--name", "r").stdout.strip())
    before = (run / "checkpoints" / "last.pt").read_bytes()
    fill(small_fs, 64 << 10)  # the small files of a resume fit; weights and checkpoint do not
    result = cli("train", "--resume", run, "--epochs", "3", code=1)
    line = one_line(result.stderr)
    assert f"no space left on {small_fs} while writing {run}" in line
    assert line.endswith("the last good checkpoint (epoch 1) is intact")
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert not list(run.rglob("*.tmp"))


# --- 10: temporaries of killed writers -------------------------------------------------------


def test_stale_temporaries_are_swept_by_name_and_lock_only(tmp_path: Path) -> None:
    names = {
        ".train-images-idx3-ubyte.k1ll3d00.tmp": False,  # ours, from a killed unpack: removed
        ".size-auto-channels-auto.safetensors.ab_cd123.tmp": False,  # ours, from a cache write
        ".model.safetensors.live0000.tmp": True,  # ours but held by its (live) writer: kept
        "notes.tmp": True,  # someone else's
        ".vimrc.swp.tmp": True,  # not our pattern (no 8-character tag)
        ".x.12345678.tmpx": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    with open(tmp_path / ".model.safetensors.live0000.tmp", "rb+") as live:
        fcntl.flock(live, fcntl.LOCK_EX)
        removed = sweep_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, kept in names.items() if not kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, kept in names.items() if kept)


# A cache build that SIGKILLs itself while it decodes (its temporary reserved, rows half written).
KILLED_BUILD = """
import os, signal, sys
from pathlib import Path
from dltool.data.folders import load_folder
load_folder(Path(sys.argv[1]), cache_root=sys.argv[2], progress=lambda done, total: os.kill(os.getpid(), signal.SIGKILL))
"""
# Another process writing a temporary (an atomic write in progress): holds its lock until killed.
LIVE_WRITER = """
import fcntl, sys, time
file = open(sys.argv[1], "rb+")
fcntl.flock(file, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def test_a_killed_cache_build_leaves_a_temporary_the_next_build_removes_at_once(tmp_path: Path) -> None:
    """It was kept an hour (a 37 MB one for 3,000 photos), however certainly its writer was gone."""
    import sys

    images = image_folder(tmp_path / "ds", {"a": 3, "b": 3})
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD, images, tmp_path], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (cache,) = (tmp_path / "folders").iterdir()
    (left,) = cache.iterdir()
    final = TEMPORARY.fullmatch(left.name)["final"]  # type: ignore[index]
    assert left.stat().st_size > 0
    live = cache / f".{final}.l1vewr1t.tmp"
    live.write_bytes(b"rows")
    with subprocess.Popen([sys.executable, "-c", LIVE_WRITER, live], stdout=subprocess.PIPE, text=True) as writer:
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "held\n"
            load_folder(images, cache_root=tmp_path)  # the next build: its own temporary is renamed
            assert sorted(p.name for p in cache.iterdir()) == sorted([live.name, final])
        finally:
            writer.kill()
    load_folder(images, cache_root=tmp_path)  # that writer gone too: its temporary with it
    assert [p.name for p in cache.iterdir()] == [final]


def test_download_and_the_cache_sweep_their_folders(cli, monkeypatch, tmp_path: Path) -> None:
    dataset = fake_idx("mnist")
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, data in dataset.published.items():
        (folder / name).write_bytes(data)  # put in place by hand: no network needed
    monkeypatch.setitem(CHECKSUMS, "mnist", dataset.checksums())
    orphan = folder / ".t10k-images-idx3-ubyte.k1ll3d00.tmp"
    orphan.write_bytes(bytes(1000))
    cli("download", "mnist", "--root", tmp_path)
    assert not orphan.exists()
    images = image_folder(tmp_path / "ds", {"a": 2, "b": 2})
    load_folder(images, cache_root=tmp_path)
    (cache,) = (tmp_path / "folders").iterdir()
    orphan = cache / ".size-auto-channels-auto.safetensors.k1ll3d00.tmp"
    orphan.write_bytes(bytes(1000))
    load_folder(images, cache_root=tmp_path)
    assert not orphan.exists()


# --- 15: empty class folders and run dirs inside a dataset -----------------------------------


def _run_dir(path: Path) -> None:
    (path / "plots").mkdir(parents=True)
    (path / "config.yaml").write_text("data: {}\n")
    (path / "summary.json").write_text("{}\n")
    Image.new("L", (8, 8)).save(path / "plots" / "loss.png")


def test_empty_class_folders_are_left_out_with_a_note(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"a": 2, "b": 2})
    (root / "empty").mkdir()
    (root / "only-text").mkdir()
    (root / "only-text" / "readme.txt").write_text("no images here")
    arrays = load_folder(root, cache_root=tmp_path)
    assert arrays.classes == ["a", "b"]
    assert any("'empty'" in note and "left out" in note for note in arrays.source.notes)
    assert any("'only-text'" in note for note in arrays.source.notes)


@pytest.mark.parametrize("layout", ["flat", "splits"])
def test_a_runs_dir_inside_the_dataset_is_never_a_class(layout: str, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    image_folder(root / "train" if layout == "splits" else root, {"a": 2, "b": 2})
    _run_dir(root / "runs" / "digits-mlp-1")  # a runs dir beside the classes (or splits)
    _run_dir(root / ("train" if layout == "splits" else "") / "a" / "run-in-a-class")
    arrays = load_folder(root, cache_root=tmp_path)
    assert arrays.classes == ["a", "b"]
    assert len(arrays.splits["train"]) == 4  # no plots/*.png among the images


def test_the_plots_of_visualize_run_inside_the_dataset_are_never_a_class(cli, tmp_path: Path, monkeypatch) -> None:
    # `cd photos && dltool visualize .` wrote plots/dataset/*.png there: the next run had a
    # class "plots" of dltool's own figures, and predict labelled them.
    root = image_folder(tmp_path / "ds", {"a": 4, "b": 4})
    (root / "mine").mkdir()
    monkeypatch.chdir(root)
    cli("visualize", ".")
    cli("visualize", ".", "--out", "mine")  # a folder that was there is the user's: not marked
    assert (root / "plots" / "dataset" / "samples.png").is_file()
    arrays = load_folder(root, cache_root=tmp_path)
    assert arrays.classes == ["a", "b", "mine"] and len(arrays.splits["train"]) == 8 + 2


# --- 16: environment values ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "1e300", "soon"])
def test_a_bad_download_timeout_is_one_usage_line(cli, monkeypatch, value: str) -> None:
    monkeypatch.setenv("DLTOOL_DOWNLOAD_TIMEOUT", value)
    line = one_line(cli("download", "mnist", code=2).stderr)
    assert "$DLTOOL_DOWNLOAD_TIMEOUT" in line and repr(value) in line


@pytest.mark.parametrize(("name", "value"), [("RANK", "zero"), ("WORLD_SIZE", "0"), ("LOCAL_RANK", "-1")])
def test_a_bad_torchrun_variable_is_one_usage_line(cli, monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    line = one_line(cli("train", "digits-mlp", "--epochs", "1", code=2).stderr)
    assert f"${name}" in line and repr(value) in line


# --- 17: a download started with SIGINT ignored ----------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("command", ["download", "train"])  # train downloads a missing dataset first
def test_download_stops_on_a_signal_even_when_sigint_was_inherited_ignored(
    command: str, signum: int, tmp_path: Path
) -> None:
    args = ("download", "mnist") if command == "download" else ("train", "mnist-lenet", "--runs-dir", tmp_path / "runs")
    with FileServer() as server:
        server.files["train-images-idx3-ubyte.gz"] = bytes(100)
        server.faults["train-images-idx3-ubyte.gz"] = "stall"
        process = subprocess.Popen(
            dltool_command(*args, "--root", tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DLTOOL_DOWNLOAD_TIMEOUT": "60", "DLTOOL_MIRROR": server.url, "DLTOOL_OFFLINE": "0"},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # what `cmd &` in a script does
        )
        try:
            deadline = time.monotonic() + 60
            while not server.requests and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
            assert server.requests, "the download never reached the server"
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 128 + signum, stderr
    assert "interrupted: run the same command again to resume" in stderr and TRACEBACK not in stderr
    assert not (tmp_path / "runs").exists()


def test_a_read_only_run_dir_is_named_with_the_option_that_writes_elsewhere(cli, small_fs: Path) -> None:
    """visualize, export, predict --output and train showed "[Errno 30] Read-only file system:
    '.../.p.csv.mwvp929r.tmp'" (a temporary's name), and --resume the lock file's."""
    run = Path(cli("train", "digits-mlp", "--epochs", "1", "--runs-dir", small_fs, "--name", "r", "-q").stdout.strip())
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True, text=True)
    if remounted.returncode:
        pytest.skip(f"cannot remount a tmpfs read-only: {remounted.stderr.strip()}")
    image = small_fs.parent / "digit.png"
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(image)
    cases = {
        (
            "visualize",
            run,
        ): f"{run}: cannot write there (read-only file system); write to a folder you can write (--out DIR)",
        ("export", run): "write to a folder you can write (--output FILE)",
        ("predict", run, image, "--output", run / "p.csv"): f"{run}: cannot write there (read-only file system); "
        "write to a folder you can write (--output FILE)",
        ("train", "digits-mlp", "--runs-dir", small_fs / "more"): f"{small_fs}: cannot write there (read-only file "
        "system); write to a folder you can write (--runs-dir DIR)",
        ("train", "--resume", run, "--epochs", "2"): f"{run}: cannot write there (read-only file system); copy the "
        "run dir to a folder you can write and resume the copy",
    }
    for args, expected in cases.items():
        line = one_line(cli(*args, code=1).stderr)
        assert expected in line and "Errno" not in line, args


def test_a_permission_refused_names_the_folder_or_file_and_what_to_do(cli, as_user: list[str], tmp_path: Path) -> None:
    """A user who may not write a folder (or read a file) saw "[Errno 13] Permission denied:
    '.../.p.csv.eg4palog.tmp'", and eval scored the whole split before finding it could not
    write its --per-class-out."""
    run = Path(cli("train", "digits-mlp", "--epochs", "1", "--runs-dir", tmp_path, "--name", "r", "-q").stdout.strip())
    shut, config, image = tmp_path / "shut", tmp_path / "secret.yaml", tmp_path / "digit.png"
    shut.mkdir(mode=0o555)
    config.write_text((run / "config.yaml").read_text())
    config.chmod(0)
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(image)
    denied = "cannot write there (permission denied); write to a folder you can write"
    cases = {
        ("train", "digits-mlp", "--runs-dir", shut): f"{shut}: {denied} (--runs-dir DIR)",
        ("predict", run, image, "--output", shut / "p.csv"): f"{shut}: {denied} (--output FILE)",
        ("eval", run, "--per-class-out", shut / "c.csv"): f"{shut}: {denied} (--per-class-out FILE)",
        ("visualize", run, "--out", shut / "plots"): f"{shut}: {denied} (--out DIR)",
        ("train", config): f"{config}: cannot read it (permission denied); give this user read access",
    }
    for args, expected in cases.items():
        result = subprocess.run([*as_user, *dltool_command(*args)], capture_output=True, text=True)
        assert result.returncode == 1 and result.stdout == "", (args, result.stderr)
        assert one_line(result.stderr).startswith(f"error: {expected}"), args
    run.chmod(0o555)
    result = subprocess.run([*as_user, *dltool_command("train", "--resume", run)], capture_output=True, text=True)
    copy = "copy the run dir to a folder you can write and resume the copy"
    assert one_line(result.stderr) == f"error: {run}: cannot write there (permission denied); {copy}"


def test_a_killed_writers_temporary_in_an_output_folder_goes_at_the_next_write(
    cli, digits_run: Path, tmp_path: Path
) -> None:
    """A SIGKILLed `export --output`, `predict --output FILE` or `eval --per-class-out` left its
    `.FILE.XXXXXXXX.tmp` in the user's folder for good: only run dirs and data were swept."""
    out, image = tmp_path / "out", tmp_path / "digit.png"
    out.mkdir()
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(image)
    names = ("p.csv", "m.onnx", "m.onnx.json", "c.csv")
    dead = [out / f".{name}.k1ll3d00.tmp" for name in names]
    kept = [out / ".notes.txt.k1ll3d00.tmp", out / ".p.csv.l1vewr1t.tmp"]  # another file's; a live writer's
    for path in dead + kept:
        path.write_bytes(b"half")
    with open(kept[1], "rb+") as writing:
        fcntl.flock(writing, fcntl.LOCK_EX)
        cli("predict", digits_run, image, "--output", out / "p.csv")
        cli("export", digits_run, "--output", out / "m.onnx")
        cli("eval", digits_run, "--per-class-out", out / "c.csv")
        assert sorted(out.iterdir()) == sorted([*kept, *(out / name for name in names)])
