"""`dltool predict`: every readable image labelled once, in order, pipeline-friendly."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import REPO, dltool_command
from dltool.config import load_config
from dltool.data.normalise import Normalise, normalise
from dltool.data.prepare import prepare_data
from dltool.engine import train
from dltool.evaluation.predict import Prediction, predict
from dltool.evaluation.trained import Trained, load_trained
from dltool.rundir import create_run_dir

BAD = {"truncated.png", "text.jpg", "empty.png", "random.jpeg", "missing.png"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    os.environ["DLTOOL_DATA"] = str(data_dir)
    return train(
        load_config("digits-mlp", ["train.epochs=3"]), create_run_dir(tmp_path_factory.mktemp("r"), "d")
    ).run_dir


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 digit-like images of mixed sizes and modes in nested folders, plus bad files."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("imgs")
    digits = load_digits()
    rng = np.random.default_rng(0)
    modes = ["L", "RGB", "RGBA", "P", "I;16"]
    for i in range(1000):
        pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
        image = Image.fromarray(pixels).resize((int(rng.integers(8, 48)),) * 2)
        mode = modes[i % len(modes)]
        if mode == "I;16":
            image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
        else:
            image = image.convert(mode)
        sub = folder / f"part{i % 3}"
        sub.mkdir(exist_ok=True)
        image.save(sub / f"img{i:04d}.png")
    good = next(folder.glob("part0/*.png")).read_bytes()
    (folder / "part1" / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "part1" / "text.jpg").write_text("hello, not a picture")
    (folder / "part2" / "empty.png").write_bytes(b"")
    (folder / "part2" / "random.jpeg").write_bytes(rng.bytes(500))
    (folder / "notes.txt").write_text("a non-image file in the folder is not an input")
    return folder


def test_a_mixed_folder_is_labelled_once_each_and_bad_files_named(cli, run: Path, images: Path) -> None:
    result = cli("predict", run, images, images / "missing.png", "--format", "jsonl", "--batch-size", "50")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    paths = [row["path"] for row in rows]
    assert len(rows) == 1000 and len(set(paths)) == 1000
    assert paths == sorted(paths, key=lambda p: (Path(p).parent.name, Path(p).name))  # walk order
    named = [
        line.split(":")[0].removeprefix("skipped ") for line in result.stderr.splitlines() if line.startswith("skipped")
    ]
    assert sorted(Path(p).name for p in named) == sorted(BAD)
    assert result.stderr.splitlines()[-1] == f"{len(BAD)} inputs could not be read"  # counted at the end
    assert all(0 <= row["score"] <= 1 and row["label"] == row["top_k"][0]["label"] for row in rows)
    accuracy = np.mean([row["label"] == str(_digit_of(row["path"])) for row in rows])
    assert accuracy > 0.5  # a 3-epoch MLP reading resized, re-encoded digits


def _digit_of(path: str) -> int:
    from sklearn.datasets import load_digits

    return int(load_digits().target[int(Path(path).stem[3:])])


def test_a_glob_that_matches_nothing_is_named_and_counted(cli, run: Path, images: Path) -> None:
    # It was dropped without a word: a mistyped pattern gave a header and exit 0, even with --strict.
    pattern = str(images / "part0" / "*.jpgg")
    result = cli("predict", run, pattern, str(images / "part0" / "img000*.png"), "--strict", code=1)
    assert len(result.stdout.splitlines()) == 1 + 4  # the header, img0000/3/6/9
    assert f"skipped {pattern}: " in result.stderr
    assert result.stderr.splitlines()[-1] == "1 input could not be read"


def test_a_folder_is_walked_as_training_walks_one(cli, run: Path, images: Path, tmp_path: Path) -> None:
    # predict read macOS's ._ files and hidden folders (--strict failed on them) and passed
    # over linked folders, where training leaves out the first and follows the second.
    folder = tmp_path / "photos"
    (folder / ".thumbnails").mkdir(parents=True)
    shutil.copy(images / "part0" / "img0000.png", folder / "a.png")
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    shutil.copy(images / "part0" / "img0003.png", folder / ".thumbnails" / "a.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(images / "part0" / "img0006.png", elsewhere / "b.png")
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    shutil.copytree(run, folder / "runs" / "d")  # a run kept inside: its plots are no inputs
    (folder / "runs" / "d" / "plots").mkdir()
    shutil.copy(images / "part0" / "img0009.png", folder / "runs" / "d" / "plots" / "loss.png")
    result = cli("predict", run, folder, "--format", "jsonl", "--strict")
    paths = [json.loads(line)["path"] for line in result.stdout.splitlines()]
    assert paths == [str(folder / "a.png"), str(folder / "linked" / "b.png")]
    assert "skipped" not in result.stderr


def test_a_folder_linked_from_inside_the_tree_is_labelled_at_its_own_path(
    cli, run: Path, images: Path, tmp_path: Path
) -> None:
    # "favourites" links to 2024/best: named first in the walk, it took best's photos, and
    # 2024/best/b.png had no row of its own, only favourites/b.png.
    folder = tmp_path / "photos"
    (folder / "2024" / "best").mkdir(parents=True)
    shutil.copy(images / "part0" / "img0000.png", folder / "2024" / "best" / "b.png")
    (folder / "0-favourites").symlink_to(folder / "2024" / "best", target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"  # a link out of the tree is still followed
    elsewhere.mkdir()
    shutil.copy(images / "part0" / "img0003.png", elsewhere / "c.png")
    (folder / "2024" / "from-phone").symlink_to(elsewhere, target_is_directory=True)
    paths = [json.loads(line)["path"] for line in cli("predict", run, folder, "--format", "jsonl").stdout.splitlines()]
    assert paths == [str(folder / "2024" / "best" / "b.png"), str(folder / "2024" / "from-phone" / "c.png")]


@pytest.mark.parametrize("pattern", ["**", "**/*.png", "*", "s*/../**/*.png"])
def test_a_glob_finds_each_image_once_through_a_link_loop_and_walks_the_folders_it_matches(
    cli, run: Path, images: Path, tmp_path: Path, pattern: str
) -> None:
    # 'photos/**' named every folder it matched as unreadable ("not a regular file"), and
    # glob's ** went round a link loop to the OS's limit: 2 photos gave 70 rows.
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(images / "part0" / "img0000.png", folder / "a.png")
    shutil.copy(images / "part0" / "img0003.png", folder / "sub" / "b.png")
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    result = cli("predict", run, f"{folder}/{pattern}", "--format", "jsonl", "--strict")
    paths = [os.path.normpath(json.loads(line)["path"]) for line in result.stdout.splitlines()]
    assert paths == [str(folder / "a.png"), str(folder / "sub" / "b.png")]
    assert "skipped" not in result.stderr


def test_strict_exits_1_and_still_writes_every_good_row(cli, run: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    result = cli("predict", run, images, "--output", out, "--strict", code=1)
    frame = pd.read_csv(out)
    assert len(frame) == 1000 and list(frame.columns[:3]) == ["path", "label", "score"]
    assert {"top3_label", "top3_score"} <= set(frame.columns) and result.stdout == ""
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_hidden_file_named_on_the_command_line_is_read(run: Path, tmp_path: Path) -> None:
    # A folder's walk leaves hidden files out (above); one the user names is an input.
    (tmp_path / ".thumbnails").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / ".thumbnails" / "IMG_0001.png")
    rows = list(predict(load_trained(run), [str(tmp_path / ".thumbnails" / "IMG_0001.png")], workers=0))
    assert [type(row) for row in rows] == [Prediction]


def test_a_glob_or_folder_that_finds_nothing_is_named_and_nothing_read_is_exit_1(
    cli, run: Path, tmp_path: Path
) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "IMG_0001.CR3").write_bytes(b"not a format dltool reads")
    Image.new("L", (8, 8)).save(tmp_path / "good.png")
    nothing = cli("predict", run, tmp_path / "raw", tmp_path / "*.jpg", tmp_path / "typo.png", code=1)
    assert nothing.stdout.splitlines() == [nothing.stdout.splitlines()[0]]  # the header: no row
    kinds = ".avif, .bmp, .gif, .heic, .heif, .jpeg, .jpg, .png, .tif, .tiff, .webp"
    assert nothing.stderr.splitlines() == [
        f"skipped {tmp_path / 'raw'}: a folder without image files ({kinds})",
        f"skipped {tmp_path / '*.jpg'}: the pattern matches no file",
        f"skipped {tmp_path / 'typo.png'}: cannot read (No such file or directory)",
        "3 inputs could not be read",
    ]
    some = cli("predict", run, tmp_path / "raw", tmp_path / "*.png", "--format", "jsonl")  # exit 0: rows came
    assert [Path(json.loads(line)["path"]).name for line in some.stdout.splitlines()] == ["good.png"]
    assert some.stderr.splitlines()[-1] == "1 input could not be read"


def test_fifos_and_devices_named_png_are_skipped_and_named_never_opened(run: Path, tmp_path: Path) -> None:
    # A FIFO blocks the first open() until a writer comes: a real process with a timeout, so
    # a regression fails here instead of hanging the suite.
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("L", (8, 8)).save(folder / "good.png")
    os.mkfifo(folder / "pipe.png")
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "device.png").symlink_to("/dev/zero")
    outside = tmp_path / "given.png"
    os.mkfifo(outside)
    result = subprocess.run(
        dltool_command("predict", run, folder, outside, "--format", "jsonl"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [Path(json.loads(line)["path"]).name for line in result.stdout.splitlines()] == ["good.png"]
    skipped = {line.split(":")[0].removeprefix("skipped ") for line in result.stderr.splitlines() if "skipped" in line}
    assert {Path(p).name for p in skipped} == {"pipe.png", "loop.png", "device.png", "given.png"}
    assert "FIFO" in result.stderr and "character device" in result.stderr and "Traceback" not in result.stderr


def test_stdin_paths_give_the_same_rows_as_the_folder(run: Path, images: Path) -> None:
    script = f"find {images} -name '*.png' | sort | {' '.join(dltool_command('predict', run, '-', '--format', 'csv'))}"
    piped = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=os.environ)
    direct = subprocess.run(
        dltool_command("predict", run, *sorted(map(str, images.rglob("*.png"))), "--format", "csv"),
        capture_output=True,
        text=True,
        env=os.environ,
    )
    assert piped.returncode == direct.returncode == 0
    assert piped.stdout == direct.stdout and piped.stdout.count("\n") == 1000 + 1  # readable pngs + header


def test_stdin_paths_that_are_not_utf8_are_read(run: Path, images: Path, tmp_path: Path) -> None:
    # A desktop's UTF-8 locale reads stdin strictly: `find` listing a Latin-1 "café.png" (a
    # Windows zip unpacked on Linux) stopped predict with an internal UnicodeDecodeError.
    photo = tmp_path / os.fsdecode(b"caf\xe9.png")
    shutil.copy(next(images.glob("part0/*.png")), photo)
    strict = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # as Python reads stdin in en_US.UTF-8
    command = dltool_command("predict", run, "-", "--format", "csv")
    piped = subprocess.run(command, input=os.fsencode(photo) + b"\n", capture_output=True, env=strict)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[1].startswith(os.fsencode(photo) + b",")


def test_a_stdin_list_saved_with_a_byte_order_mark_reads_its_first_path(run: Path, images: Path) -> None:
    # Notepad's and PowerShell's UTF-8 starts with EF BB BF: the first photo was "skipped
    # \ufeffphotos/a.png: cannot read (No such file or directory)", the mark unseen.
    paths = sorted(images.glob("part0/*.png"))[:2]
    listed = b"\xef\xbb\xbf" + b"".join(os.fsencode(path) + b"\r\n" for path in paths)
    command = dltool_command("predict", run, "-", "--format", "csv")
    piped = subprocess.run(command, input=listed, capture_output=True, env=os.environ)
    assert piped.returncode == 0 and piped.stderr == b"", piped.stderr
    assert [row.split(b",")[0] for row in piped.stdout.splitlines()[1:]] == [os.fsencode(p) for p in paths]


def test_photos_with_malformed_exif_tags_are_read_without_pillows_warnings(run: Path, tmp_path: Path) -> None:
    # Pillow's "Tag data larger than file. Skipping tag 270", with its source line, printed
    # again and again over a folder of such photos, naming none of them.
    exif = Image.Exif()
    exif[0x010E] = "an image description longer than the bytes kept " * 3
    for i in range(6):
        Image.new("L", (8, 8), 30 * i).save(tmp_path / f"{i}.jpg", exif=exif.tobytes()[:-40])
    result = subprocess.run(dltool_command("predict", run, tmp_path), capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0 and result.stdout.count("\n") == 1 + 6
    assert result.stderr == ""


def test_out_given_a_file_name_for_a_classifier_points_to_output(cli, run: Path, images: Path) -> None:
    # --out DIR is for segmentation masks; a classifier's rows go to --output FILE. The refusal
    # only said the model was a classification model.
    error = cli("predict", run, images / "part0", "--out", "labels.csv", code=2).stderr
    assert "model 'mlp' is a classification model (its rows go to a file with --output labels.csv)" in error
    assert "--output" not in cli("predict", run, images / "part0", "--overlay", code=2).stderr


def test_a_reader_that_stops_early_ends_predict_quietly_and_as_done(run: Path, images: Path) -> None:
    """`dltool predict RUN photos/ | head`: the reader has gone before the first row is written
    (its end of the pipe is closed at once), so every write fails: exit 0, nothing on stderr."""
    process = subprocess.Popen(
        dltool_command("predict", run, images / "part0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert stderr == ""


@pytest.mark.skipif(shutil.which("jq") is None and not os.environ.get("CI"), reason="jq not installed")
def test_jsonl_feeds_jq(run: Path, images: Path) -> None:
    script = f"{' '.join(dltool_command('predict', run, images / 'part0', '--format', 'jsonl'))} | jq -r .label"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=os.environ)
    labels = result.stdout.split()
    assert result.returncode == 0 and len(labels) == 334 and set(labels) <= {str(d) for d in range(10)}


def test_prediction_preprocessing_is_the_training_preprocessing(tmp_path: Path) -> None:
    """A model trained on an image folder scores its own files the same way through predict."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path / "folder"
    for i in range(120):
        (root / str(digits.target[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 16).astype(np.uint8)).resize((12, 12)).convert("RGB").save(
            root / str(digits.target[i]) / f"{i}.png"
        )
    config = load_config("digits-mlp", [f"data.name={root}", "data.image_size=10", "train.epochs=1"])
    run = train(config, create_run_dir(tmp_path, "folder")).run_dir
    trained = load_trained(run)
    files = sorted(map(str, root.rglob("*.png")))
    rows = [r for r in predict(trained, files, top_k=10, batch_size=7) if isinstance(r, Prediction)]
    data = prepare_data(trained.config.data)
    everything = np.concatenate([data.splits[name].images for name in ("train", "val", "test")])
    inputs = Normalise(data.mean, data.std, torch.device("cpu"))(torch.from_numpy(everything))
    with torch.no_grad():
        expected = torch.softmax(trained.model(inputs), 1).max(1).values.sort().values.numpy()
    assert len(rows) == 120
    assert np.allclose(np.sort([r.score for r in rows]), expected, atol=1e-5)


def test_a_reconstruction_model_is_refused(cli, images: Path) -> None:
    run = cli(
        "train", "digits-mlp", "--model", "autoencoder", "--set", "loss.name=mse", "--epochs", "1", "-q"
    ).stdout.strip()
    assert "reconstructs" in cli("predict", run, images / "part0", code=2).stderr


def test_table_format_and_unknown_format(cli, run: Path, images: Path) -> None:
    table = cli("predict", run, images / "part0" / "img0000.png", "--format", "table").stdout
    assert "img0000.png" in table and table.count("\n") == 1
    assert "expected one of csv, jsonl, parquet, table" in cli("predict", run, images, "--format", "xml", code=2).stderr
    # `--format json` (eval's and list's --json) was told only the list, not the format it meant.
    meant = cli("predict", run, images, "--format", "json", code=2).stderr
    assert meant == "error: --format 'json': expected one of csv, jsonl, parquet, table; did you mean 'jsonl'?\n"


def test_ctrl_c_while_writing_parquet_leaves_no_file_and_no_traceback(run: Path, images: Path, tmp_path: Path) -> None:
    # pyarrow's writer, collected after the temporary file was discarded, printed
    # "Exception ignored in: ParquetWriter.__del__ ... ValueError: write to closed file".
    output = tmp_path / "rows.parquet"
    process = subprocess.Popen(
        dltool_command("predict", run, "-", "--output", output),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdin.write(f"{images / 'part0' / 'img0000.png'}\n")
    process.stdin.flush()  # then stdin stays open: predict waits for more paths, writing
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".rows.parquet.*.tmp")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    time.sleep(0.5)  # the writer is made as the temporary file opens
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert os.listdir(tmp_path) == []


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads a process's children from /proc")
def test_sigterm_discards_the_output_and_stops_the_decoding_workers(run: Path, images: Path, tmp_path: Path) -> None:
    # SIGTERM (a scheduler's, systemd's) killed predict outright: its temporary output stayed
    # in the user's folder, and its decoding process lived on, an orphan waiting for work.
    output = tmp_path / "rows.csv"
    process = subprocess.Popen(
        dltool_command("predict", run, images, images, "--output", output, "--workers", 1),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (list(tmp_path.glob(".rows.csv.*.tmp")) and _children(process.pid)):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    workers = _children(process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and "Traceback" not in stderr, stderr
    assert os.listdir(tmp_path) == []
    while any(Path(f"/proc/{pid}").exists() for pid in workers):  # a worker goes with its pool
        assert time.monotonic() < deadline, f"decoding workers {workers} outlived predict"
        time.sleep(0.05)


def test_parquet_rows_are_the_csv_rows_in_row_groups(cli, run: Path, images: Path, tmp_path: Path, monkeypatch) -> None:
    import pyarrow.parquet as pq

    import dltool.evaluation.tables as tables

    monkeypatch.setattr(tables, "ROW_GROUP", 100)  # written as they come, 100 rows at a time
    as_csv, as_parquet = tmp_path / "rows.csv", tmp_path / "rows.parquet"
    cli("predict", run, images / "part0", "--output", as_csv)
    cli("predict", run, images / "part0", "--output", as_parquet)  # the format from the suffix
    expected, frame = pd.read_csv(as_csv), pd.read_parquet(as_parquet)
    assert frame.columns.tolist() == expected.columns.tolist() and len(frame) == 334
    assert frame["path"].tolist() == expected["path"].tolist()
    assert frame["label"].tolist() == expected["label"].astype(str).tolist()
    assert np.allclose(frame["score"], expected["score"], atol=1e-6) and frame["score"].dtype == np.float64
    assert pq.ParquetFile(as_parquet).metadata.num_row_groups == 4
    cli("predict", run, images / "part0" / "img0000.png", "--format", "parquet", "--output", as_parquet)
    assert len(pd.read_parquet(as_parquet)) == 1  # its own earlier output: replaced without --force
    as_jsonl = tmp_path / "rows.jsonl"
    cli("predict", run, images / "part0" / "img0000.png", "--output", as_jsonl)
    assert json.loads(as_jsonl.read_text())["top_k"][0]["label"] == frame["label"].iloc[0]


@pytest.mark.parametrize("name", ["rows.csv", "rows.parquet"])
def test_an_output_file_keeps_its_last_rows_when_no_input_could_be_read(
    cli, run: Path, images: Path, tmp_path: Path, name: str
) -> None:
    # A batch re-run whose every file failed replaced yesterday's results with a header alone.
    output, bad = tmp_path / name, tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    cli("predict", run, images / "part0" / "img0000.png", "--output", output)
    before = output.read_bytes()
    error = cli("predict", run, bad, "--output", output, code=1).stderr
    assert f"{output} not written: no input could be read" in error and "Traceback" not in error
    assert output.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", name]


def test_output_into_a_folder_that_does_not_exist_yet(cli, run: Path, images: Path, tmp_path: Path) -> None:
    # It failed after every image was scored, naming its temporary file (".rows.csv.x1y2.tmp").
    for output in (tmp_path / "new" / "rows.csv", tmp_path / "newer" / "deeper" / "rows.parquet"):
        cli("predict", run, images / "part0" / "img0000.png", "--output", output)
        assert output.is_file() and [p.name for p in output.parent.iterdir()] == [output.name]


def test_parquet_needs_an_output_file_and_spares_other_files(cli, run: Path, images: Path, tmp_path: Path) -> None:
    error = cli("predict", run, images, "--format", "parquet", code=2).stderr
    assert "--format parquet writes a file: add --output FILE.parquet" in error
    other = tmp_path / "notes.parquet"
    other.write_text("not dltool's")
    assert "already exists" in cli("predict", run, images, "--output", other, code=2).stderr
    assert other.read_text() == "not dltool's"


class NormalisedInNumpy:
    """A run's model fed as predict fed it before issue 21: normalised in NumPy, float32 in."""

    def __init__(self, trained: Trained):
        self.trained = trained

    def __getattr__(self, name: str):
        return getattr(self.trained, name)

    def forward(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.trained.scorer(torch.from_numpy(normalise(images, self.mean, self.std))).float().numpy()


def test_rows_are_the_same_whether_the_model_or_numpy_normalises(run: Path, images: Path) -> None:
    trained = load_trained(run)
    files = sorted(map(str, images.rglob("img0[0-2]*.png")))
    ours = list(predict(trained, files, top_k=3, batch_size=16, workers=0))
    before = list(predict(NormalisedInNumpy(trained), files, top_k=3, batch_size=16, workers=0))
    assert len(ours) == len(files) == 300 and ours == before


def test_bf16_autocast_changes_the_scores_a_little_and_the_labels_hardly(run: Path, images: Path) -> None:
    """--amp bf16 really runs the model in bf16 (the scores are not float32's) and keeps what
    a float32 run says: the same label for nearly every image, probabilities within 0.05."""
    files = sorted(map(str, images.rglob("img0[0-2]*.png")))
    full = list(predict(load_trained(run), files, top_k=1, workers=0))
    half = list(predict(load_trained(run, amp="bf16"), files, top_k=1, workers=0))
    assert [r.path for r in half] == [r.path for r in full] == files
    assert any(h.score != f.score for h, f in zip(half, full, strict=True))
    same = sum(h.label == f.label for h, f in zip(half, full, strict=True))
    assert same >= 0.97 * len(files), f"{same} of {len(files)} labels agree"
    assert max(abs(h.score - f.score) for h, f in zip(half, full, strict=True) if h.label == f.label) < 0.05


def test_amp_is_named_and_refused_for_exports(cli, run: Path, images: Path, tmp_path: Path) -> None:
    result = cli("predict", str(run), str(images / "part0"), "--amp", "fp8", code=2)
    assert "amp 'fp8': expected off, bf16, fp16" in result.stderr
    export = Path(cli("export", str(run), "--to", "torchscript").stdout.strip())
    result = cli("predict", str(export), str(images / "part0"), "--amp", "bf16", code=2)
    assert "autocasts a run's PyTorch model" in result.stderr


@pytest.mark.parametrize("device", ["gpu", "cuda:x"])
def test_a_device_that_is_no_device_name_is_a_usage_error(cli, run: Path, images: Path, device: str) -> None:
    expected = f"device {device!r}: expected auto, cpu, cuda, cuda:N or mps"
    for command in (["predict", run, images / "part0"], ["eval", run]):
        result = cli(*command, "--device", device, code=2)
        assert expected in result.stderr and "internal error" not in result.stderr


def test_the_terminal_table_keeps_its_columns_with_wide_class_names() -> None:
    # The label was padded by characters, so "猫" or "oiseaux 🐦" (two cells each) pushed the
    # score one column right of every other row's.
    from dltool._text import cells

    rows = [Prediction("a.png", [(label, 0.5)]) for label in ["cat", "猫", "oiseaux 🐦", "日本 猫"]]
    starts = {cells(row.line().split("0.500")[0]) for row in rows}
    assert starts == {14}  # 12 cells of label, a space, the score right-aligned in 6


@pytest.fixture(scope="module")
def accented_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose classes are "chiens é" and "chats", trained on the folder of their photos."""
    photos = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name in ("chiens é", "chats"):
        (photos / name).mkdir()
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(photos / name / f"{i}.png")
    config = load_config("digits-mlp", [f"data.name={photos}", "train.epochs=1"])
    return train(config, create_run_dir(tmp_path_factory.mktemp("r"), "accents")).run_dir


# An ASCII locale without Python's UTF-8 mode, as a batch job's bare environment may give.
ASCII_LOCALE = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""}


@pytest.mark.parametrize("format", ["jsonl", "csv"])
def test_rows_hold_names_in_utf8_whatever_the_locale(accented_run: Path, format: str) -> None:
    # jsonl wrote "chiens \u00e9", which grep 'chiens é' does not find; csv failed (exit 1).
    photo = accented_run / "one.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(photo)
    result = subprocess.run(
        dltool_command("predict", accented_run, photo, "--format", format, "--top-k", "2"),
        capture_output=True,
        env={**os.environ, **ASCII_LOCALE},
    )
    assert result.returncode == 0, result.stderr
    assert "chiens é".encode() in result.stdout and b"\\u00e9" not in result.stdout


def test_a_file_name_that_is_not_utf8_is_written_to_every_output(run: Path, images: Path, tmp_path: Path) -> None:
    # Latin-1 bytes (a Windows zip unpacked on Linux): stdout gave them back, but an --output
    # csv file failed (internal error, UnicodeEncodeError) and so did Parquet.
    photo = tmp_path / os.fsdecode(b"caf\xe9.png")
    shutil.copy(next(images.glob("part0/*.png")), photo)
    rows = {name: tmp_path / f"rows.{name}" for name in ("csv", "jsonl", "parquet")}
    for output in rows.values():
        subprocess.run(dltool_command("predict", run, photo, "--output", output), check=True)
    printed = subprocess.run(dltool_command("predict", run, photo, "--format", "csv"), capture_output=True, check=True)
    assert rows["csv"].read_bytes() == printed.stdout and os.fsencode(photo) in printed.stdout  # the bytes it came as
    assert json.loads(rows["jsonl"].read_text())["path"] == str(photo)  # JSON's escape reads back as the name
    assert pd.read_parquet(rows["parquet"])["path"].tolist() == [str(photo).replace("\udce9", "\\udce9")]


def test_eval_documents_hold_names_in_utf8(accented_run: Path) -> None:
    # Not ASCII_LOCALE: there the folder's names are not decoded as the run recorded them.
    result = subprocess.run(dltool_command("eval", accented_run, "--json"), capture_output=True, env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert '"chiens é"'.encode() in result.stdout
    assert '"chiens é"' in (accented_run / "eval-test.json").read_text(encoding="utf-8")


def test_a_folder_takes_extensions_in_any_case_and_a_glob_as_written(cli, run: Path, tmp_path: Path) -> None:
    # What README's predict inputs say: pass the folder, which finds a camera's IMG_0001.JPG.
    (tmp_path / "sub").mkdir()
    for name in ("sub/IMG_0001.JPG", "a.jpg"):
        Image.new("L", (8, 8)).save(tmp_path / name, format="JPEG")
    walked = [Path(row["path"]).name for row in csv.DictReader(cli("predict", run, tmp_path).stdout.splitlines())]
    globbed = cli("predict", run, f"{tmp_path}/**/*.jpg").stdout.splitlines()[1:]
    assert walked == ["a.jpg", "IMG_0001.JPG"] and [Path(line.split(",")[0]).name for line in globbed] == ["a.jpg"]
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "`'photos/**/*.jpg'` misses a camera's `IMG_0001.JPG`, which a folder's walk takes" in readme
