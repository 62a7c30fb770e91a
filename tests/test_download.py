"""Downloading and reading the named datasets, against a real HTTP server on 127.0.0.1.

The fake files (tests/fakedata.py) are in the publishers' formats; their checksums go into
``dltool.data.sources.CHECKSUMS``, the one table the real checksums come from.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from dltool.data import datasets
from dltool.data.archives import extract_members
from dltool.data.cifar import CIFAR100_CLASSES
from dltool.data.download import DownloadObserver, download_dataset
from dltool.data.retry import RetryPolicy, retry_after_s
from dltool.data.sources import CHECKSUMS, SOURCES
from dltool.errors import DatasetError
from fakedata import FakeDataset, FileServer, cifar_records, fake, fake_idx, idx, svhn_mat, tar_gz

NAMES = list(SOURCES)


class Messages(DownloadObserver):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_message(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def server():
    with FileServer() as running:
        yield running


def serve(server: FileServer, dataset: FakeDataset, monkeypatch: pytest.MonkeyPatch, **faults: str) -> None:
    """Publish ``dataset`` on ``server`` with the checksums the downloader will check."""
    server.files.update(dataset.published)
    server.faults.update(faults)
    monkeypatch.setitem(CHECKSUMS, dataset.name, dataset.checksums())


def load(name: str, root: Path):
    return datasets.get(name).load()(root=root)


def assert_same(arrays, dataset: FakeDataset) -> None:
    assert set(arrays.splits) == {"train", "test"}
    for split, (images, labels) in dataset.splits.items():
        np.testing.assert_array_equal(arrays.splits[split].images, images)
        np.testing.assert_array_equal(arrays.splits[split].labels, labels)
        assert arrays.splits[split].labels.dtype == labels.dtype  # int64 labels; uint8 masks


# --- the definitions -------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_source_has_checksums_classes_and_an_https_mirror_first(name: str) -> None:
    source = SOURCES[name]
    assert name in datasets and datasets.get(name).params.info
    assert {file.name for file in source.files} == set(CHECKSUMS[name])
    for checksum in CHECKSUMS[name].values():
        assert re.fullmatch(r"md5:[0-9a-f]{32}|sha256:[0-9a-f]{64}", checksum)
    assert source.mirrors[0].startswith("https://") or name == "svhn"  # SVHN's only host has no HTTPS
    assert not any(file.name.endswith((".pkl", ".pickle")) or "python" in file.name for file in source.files)


def test_cifar100_has_its_hundred_fine_classes() -> None:
    assert len(CIFAR100_CLASSES) == len(set(CIFAR100_CLASSES)) == 100


# --- downloading -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_download_unpacks_and_the_loader_reads_the_same_arrays(name: str, server, monkeypatch, tmp_path) -> None:
    dataset = fake(name)
    serve(server, dataset, monkeypatch)
    folder = download_dataset(name, tmp_path, mirrors=[server.url])
    assert folder == tmp_path / name
    assert not list(folder.glob("*.part"))
    assert_same(load(name, tmp_path), dataset)
    assert list(folder.glob(f"{name}*.safetensors"))  # decoded once, cached
    assert_same(load(name, tmp_path), dataset)


def test_cli_download_then_train_on_the_downloaded_files(cli, server, monkeypatch, tmp_path: Path) -> None:
    dataset = fake_idx("mnist")
    serve(server, dataset, monkeypatch)
    root = tmp_path / "data"
    result = cli("download", "mnist", "--mirror", server.url, "--root", root)
    assert result.stdout == f"{root / 'mnist'}\n"
    assert "verified" in result.stderr
    assert sorted(p.name for p in (root / "mnist").iterdir() if not p.name.startswith(".")) == sorted(
        [*dataset.published, *dataset.outputs]
    )

    requests = len(server.requests)
    again = cli("download", "mnist", "--mirror", server.url, "--root", root)
    assert again.stdout == result.stdout and "already present and verified" in again.stderr
    assert len(server.requests) == requests  # nothing fetched again
    cli("download", "mnist", "--mirror", server.url, "--root", root, "--force")
    assert len(server.requests) == requests + 4

    run = cli("train", "mnist-lenet", "--root", root, "--epochs", 1, "--runs-dir", tmp_path / "runs").stdout.strip()
    summary = json.loads((Path(run) / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test"]["n"] == 10


def test_an_interrupted_transfer_resumes_with_a_range_request(server, monkeypatch, tmp_path: Path) -> None:
    dataset = fake_idx("mnist")
    serve(server, dataset, monkeypatch, **{"train-images-idx3-ubyte.gz": "drop"})
    download_dataset("mnist", tmp_path, mirrors=[server.url], backoff_s=0)
    half = len(dataset.published["train-images-idx3-ubyte.gz"]) // 2
    assert server.gets("train-images-idx3-ubyte.gz") == [None, f"bytes={half}-"]
    assert_same(load("mnist", tmp_path), dataset)


def test_a_server_that_ignores_range_restarts_from_zero(server, monkeypatch, tmp_path: Path) -> None:
    dataset = fake_idx("mnist")
    serve(server, dataset, monkeypatch, **{"train-images-idx3-ubyte.gz": "drop-then-ignore-range"})
    messages = Messages()
    download_dataset("mnist", tmp_path, mirrors=[server.url], backoff_s=0, observer=messages)
    assert server.gets("train-images-idx3-ubyte.gz")[1] is not None  # asked for a range, got everything
    assert any("starting again from zero" in line for line in messages.lines)
    assert_same(load("mnist", tmp_path), dataset)


def test_a_stalled_server_times_out_with_a_clear_error(server, monkeypatch, tmp_path: Path) -> None:
    serve(server, fake_idx("mnist"), monkeypatch, **{"train-images-idx3-ubyte.gz": "stall"})
    monkeypatch.setenv("DLTOOL_DOWNLOAD_TIMEOUT", "0.3")
    start = time.monotonic()
    with pytest.raises(DatasetError, match="timed out") as error:
        download_dataset("mnist", tmp_path, mirrors=[server.url], retries=1, backoff_s=0.05)
    assert time.monotonic() - start < 5
    assert "--mirror" in str(error.value) and "\n" not in str(error.value)
    assert len(server.gets("train-images-idx3-ubyte.gz")) == 2  # the first try and one retry
    assert not [p for p in (tmp_path / "mnist").iterdir() if p.name.startswith("train-images")]


def test_wrong_bytes_are_refused_then_the_next_mirror_is_tried(monkeypatch, tmp_path: Path) -> None:
    dataset = fake_idx("mnist")
    with FileServer() as bad, FileServer() as good:
        serve(bad, dataset, monkeypatch, **{"train-labels-idx1-ubyte.gz": "corrupt"})
        serve(good, dataset, monkeypatch)
        messages = Messages()
        download_dataset("mnist", tmp_path, mirrors=[bad.url, good.url], observer=messages)
    assert any("wrong checksum" in line for line in messages.lines)
    assert good.gets("train-labels-idx1-ubyte.gz") == [None]
    assert_same(load("mnist", tmp_path), dataset)


def test_wrong_bytes_everywhere_leave_nothing_behind(cli, server, monkeypatch, tmp_path: Path) -> None:
    serve(server, fake_idx("mnist"), monkeypatch, **{"train-images-idx3-ubyte.gz": "corrupt"})
    result = cli("download", "mnist", "--mirror", server.url, "--root", tmp_path, "--quiet", code=1)
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: could not download mnist/train-images-idx3-ubyte.gz")
    assert "wrong checksum" in result.stderr
    folder = tmp_path / "mnist"
    assert not [p for p in folder.iterdir() if p.name.startswith("train-images")]


def test_no_network_is_one_line_saying_what_to_do(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DLTOOL_MIRROR", "http://127.0.0.1:9/")  # the discard port: nobody listens
    result = cli("download", "cifar10", "--root", tmp_path, "-q", code=1)
    line = result.stderr.strip()
    assert "\n" not in line and "cannot connect" in line
    assert "--mirror URL" in line and "$DLTOOL_MIRROR" in line and str(tmp_path / "cifar10") in line


def test_two_processes_download_the_same_files_once(server, monkeypatch, tmp_path: Path) -> None:
    dataset = fake_idx("mnist")
    serve(server, dataset, monkeypatch, **{"train-images-idx3-ubyte.gz": "slow"})  # the lock is held 1.5 s
    script = (
        "import json, sys\n"
        "from dltool.data.sources import CHECKSUMS\n"
        "from dltool.data.download import DownloadObserver, download_dataset\n"
        "class Say(DownloadObserver):\n"
        "    def on_message(self, text): print(text, file=sys.stderr)\n"
        "CHECKSUMS['mnist'] = json.loads(sys.argv[1])\n"
        "print(download_dataset('mnist', sys.argv[2], mirrors=[sys.argv[3]], observer=Say()))\n"
    )
    args = [sys.executable, "-c", script, json.dumps(dataset.checksums()), str(tmp_path), server.url]
    processes = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert all(out.strip() == str(tmp_path / "mnist") for out, _ in outputs)
    assert any("another process is downloading it" in err for _, err in outputs)
    assert all(len(server.gets(name)) == 1 for name in dataset.published)
    assert_same(load("mnist", tmp_path), dataset)


def test_unknown_and_embedded_names(cli, tmp_path: Path) -> None:
    assert "did you mean 'mnist'" in cli("download", "mnsit", code=2).stderr
    result = cli("download", "digits", "--root", tmp_path)
    assert result.stdout == "" and "embedded" in result.stderr
    assert "not an http" in cli("download", "mnist", "--mirror", "ftp://example.org/", code=2).stderr


# --- archives --------------------------------------------------------------------------------


def _link(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


UNSAFE = {
    "parent": ({"cifar-10-batches-bin/../../escaped.bin": b"x"}, []),
    "absolute": ({"/tmp/dltool-escaped.bin": b"x"}, []),
    "symlink": ({}, [_link("cifar-10-batches-bin/test_batch.bin", tarfile.SYMTYPE, "/etc/passwd")]),
    "hardlink": ({}, [_link("cifar-10-batches-bin/test_batch.bin", tarfile.LNKTYPE, "/etc/passwd")]),
    "device": ({}, [_link("cifar-10-batches-bin/test_batch.bin", tarfile.CHRTYPE)]),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_unsafe_tar_members_are_refused_and_nothing_is_written(case: str, tmp_path: Path) -> None:
    members, extra = UNSAFE[case]
    good = {f"cifar-10-batches-bin/data_batch_{i}.bin": b"\0" * 3073 for i in range(1, 6)}
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(tar_gz({**good, **members}, extra))
    target = tmp_path / "target"
    target.mkdir()
    wanted = [*good, "cifar-10-batches-bin/test_batch.bin"]
    with pytest.raises(DatasetError, match=r"refused") as error:
        extract_members(archive, wanted, target)
    assert str(archive) in str(error.value)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "escaped.bin").exists() and not Path("/tmp/dltool-escaped.bin").exists()


def test_a_downloaded_archive_with_a_symlink_member_is_refused(server, monkeypatch, tmp_path: Path) -> None:
    dataset = fake("cifar10")
    with tarfile.open(fileobj=io.BytesIO(dataset.published["cifar-10-binary.tar.gz"])) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}
    members.pop("cifar-10-batches-bin/test_batch.bin")
    evil = _link("cifar-10-batches-bin/test_batch.bin", tarfile.SYMTYPE, "../../secret")
    dataset.published["cifar-10-binary.tar.gz"] = tar_gz(members, [evil])
    serve(server, dataset, monkeypatch)
    with pytest.raises(DatasetError, match="symbolic link; refused"):
        download_dataset("cifar10", tmp_path, mirrors=[server.url])
    assert not [p for p in (tmp_path / "cifar10").iterdir() if p.suffix == ".bin"]


# --- strict readers --------------------------------------------------------------------------


def _cifar(*labels: int) -> bytes:
    return cifar_records(np.zeros((1, 3, 32, 32), np.uint8), *(np.array([label]) for label in labels))


def _svhn(count: int, labels: list[int], size: int = 32) -> bytes:
    return svhn_mat(np.zeros((count, 3, size, size), np.uint8), np.array(labels))


# case: (dataset, file, new contents or a function of the old ones, what the error says)
BROKEN = {
    "idx still gzipped": ("mnist", "train-images-idx3-ubyte", gzip.compress, "not an IDX file"),
    "idx short payload": ("mnist", "t10k-images-idx3-ubyte", lambda d: d[:-1], "bytes of data"),
    "idx long payload": ("mnist", "t10k-labels-idx1-ubyte", lambda d: d + b"\0", "bytes of data"),
    "idx cut header": ("mnist", "t10k-labels-idx1-ubyte", b"\0\0\x08\x01\0", "header is cut short"),
    "idx label range": ("mnist", "t10k-labels-idx1-ubyte", idx(np.arange(10) + 1), "label 10 is outside"),
    "idx count mismatch": ("mnist", "t10k-labels-idx1-ubyte", idx(np.arange(9)), "9 labels for the 10"),
    "idx image size": ("kmnist", "t10k-images-idx3-ubyte", idx(np.zeros((10, 27, 28))), "28×28"),
    "cifar10 ragged": ("cifar10", "data_batch_3.bin", lambda d: d[:-1], "whole number"),
    "cifar10 empty": ("cifar10", "test_batch.bin", b"", "whole number"),
    "cifar10 label": ("cifar10", "test_batch.bin", _cifar(10), "label 10"),
    "cifar100 coarse": ("cifar100", "test.bin", _cifar(20, 0), "outside the 20"),
    "cifar100 fine": ("cifar100", "train.bin", _cifar(0, 100), "outside the 100"),
    "svhn not mat": ("svhn", "test_32x32.mat", b"PK\x03\x04 not matlab" * 20, "not a readable MATLAB"),
    "svhn cut short": ("svhn", "train_32x32.mat", lambda d: d[: len(d) // 2], "MATLAB"),
    "svhn label": ("svhn", "test_32x32.mat", _svhn(2, [1, 11]), "label 11"),
    "svhn count": ("svhn", "test_32x32.mat", _svhn(2, [1]), "for 2 images"),
    "svhn shape": ("svhn", "test_32x32.mat", _svhn(2, [1, 2], size=28), "(32, 32, 3, N)"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_files_are_dataset_errors_naming_the_file(case: str, tmp_path: Path) -> None:
    name, bad, change, expected = BROKEN[case]
    dataset = fake(name)
    dataset.outputs[bad] = change(dataset.outputs[bad]) if callable(change) else change
    dataset.write_outputs(tmp_path / name)
    with pytest.raises(DatasetError) as error:
        load(name, tmp_path)
    assert str(tmp_path / name / bad) in str(error.value) and expected in str(error.value)


def test_svhn_without_y_is_named(tmp_path: Path) -> None:
    from scipy.io import savemat

    savemat(tmp_path / "only-x.mat", {"X": np.zeros((32, 32, 3, 1), np.uint8)})
    from dltool.data.svhn import read_mat

    with pytest.raises(DatasetError, match=r"only-x.mat: has no y variable"):
        read_mat(tmp_path / "only-x.mat")


def test_a_missing_dataset_names_the_download_command(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as error:
        load("cifar100", tmp_path)
    assert f"dltool download cifar100 --root {tmp_path}" in str(error.value) and "--mirror" in str(error.value)


def test_train_downloads_a_missing_dataset_first(cli, server, monkeypatch, tmp_path: Path) -> None:
    dataset = fake_idx("mnist")
    serve(server, dataset, monkeypatch)
    monkeypatch.setenv("DLTOOL_OFFLINE", "0")
    monkeypatch.setenv("DLTOOL_MIRROR", server.url)
    root = tmp_path / "data"
    result = cli("train", "mnist-lenet", "--root", root, "--epochs", 1, "--runs-dir", tmp_path / "runs")
    assert f"mnist is not in {root} yet: downloading it (12 MB)" in result.stderr and "verified" in result.stderr
    run = Path(result.stdout.strip())  # stdout: the run dir alone
    assert run.parent == tmp_path / "runs" and json.loads((run / "summary.json").read_text())["test"]["n"] == 10
    requests = len(server.requests)
    cli("train", "mnist-lenet", "--root", root, "--epochs", 1, "--runs-dir", tmp_path / "runs", "--dry-run")
    assert len(server.requests) == requests  # there now: nothing fetched again


def test_tune_downloads_a_missing_dataset_before_its_trials(cli, server, monkeypatch, tmp_path: Path) -> None:
    serve(server, fake_idx("mnist"), monkeypatch)
    monkeypatch.setenv("DLTOOL_OFFLINE", "0")
    monkeypatch.setenv("DLTOOL_MIRROR", server.url)
    space = tmp_path / "space.yaml"
    space.write_text("optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    root = tmp_path / "data"
    result = cli("tune", "mnist-lenet", "--space", space, "--trials", 1, "--root", root, "--dry-run")
    assert f"mnist is not in {root} yet: downloading it" in result.stderr and "a sample trial" in result.stderr


def test_stats_and_visualize_of_a_missing_dataset_download_it_first(cli, server, monkeypatch, tmp_path: Path) -> None:
    serve(server, fake_idx("mnist"), monkeypatch)
    monkeypatch.setenv("DLTOOL_OFFLINE", "0")
    monkeypatch.setenv("DLTOOL_MIRROR", server.url)
    monkeypatch.setenv("DLTOOL_DATA", str(tmp_path / "data"))
    report = cli("stats", "mnist", "--json")
    assert "mnist is not in" in report.stderr and json.loads(report.stdout)["splits"]["test"]["n"] == 10
    requests = len(server.requests)
    root = tmp_path / "other"
    drawn = cli("visualize", "mnist", "--root", root, "--out", tmp_path / "plots")
    assert f"mnist is not in {root} yet: downloading it" in drawn.stderr and len(server.requests) > requests
    assert Path(drawn.stdout.splitlines()[0]).is_file()


def test_the_python_api_downloads_a_missing_dataset_too(server, monkeypatch, tmp_path: Path) -> None:
    import dltool

    serve(server, fake_idx("mnist"), monkeypatch)
    monkeypatch.setenv("DLTOOL_OFFLINE", "0")
    monkeypatch.setenv("DLTOOL_MIRROR", server.url)
    overrides = {"data.root": str(tmp_path / "data"), "train.epochs": 1}
    result = dltool.train("mnist-lenet", overrides=overrides, runs_dir=tmp_path / "runs")
    assert result.status == "completed" and (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte").is_file()
    assert dltool.stats_of("mnist", root=tmp_path / "other")["splits"]["test"]["n"] == 10  # stats too


def test_train_that_cannot_download_says_how_and_makes_no_run_dir(cli, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DLTOOL_OFFLINE", "0")
    monkeypatch.setenv("DLTOOL_MIRROR", "http://127.0.0.1:9/")  # the discard port: nobody listens
    root = tmp_path / "data"
    result = cli("train", "digits-mlp", "--dataset", "kmnist", "--root", root, "--runs-dir", tmp_path / "runs", code=1)
    assert "cannot connect" in result.stderr and f"dltool download kmnist --root {root} --mirror URL" in result.stderr
    assert not (tmp_path / "runs").exists() and not result.stdout


def test_training_on_a_dataset_not_downloaded_says_how_and_makes_no_run_dir(cli, tmp_path: Path) -> None:
    result = cli(
        "train",
        "digits-mlp",
        "--dataset",
        "kmnist",
        "--root",
        tmp_path / "data",
        "--runs-dir",
        tmp_path / "runs",
        code=1,
    )
    assert f"dltool download kmnist --root {tmp_path / 'data'}" in result.stderr
    assert "$DLTOOL_OFFLINE is set" in result.stderr  # the tests' setting: why it was not fetched
    assert not (tmp_path / "runs").exists()


def test_a_changed_source_file_rebuilds_the_cache(tmp_path: Path) -> None:
    dataset = fake("cifar10")
    dataset.write_outputs(tmp_path / "cifar10")
    assert_same(load("cifar10", tmp_path), dataset)
    (tmp_path / "cifar10" / "test_batch.bin").write_bytes(b"\1" * 10)
    with pytest.raises(DatasetError, match="whole number"):
        load("cifar10", tmp_path)


def test_a_part_file_left_by_an_earlier_run_is_resumed(server, monkeypatch, tmp_path: Path) -> None:
    dataset = fake("svhn")
    serve(server, dataset, monkeypatch)
    data = dataset.published["test_32x32.mat"]
    (tmp_path / "svhn").mkdir()
    (tmp_path / "svhn" / "test_32x32.mat.part").write_bytes(data[:1000])
    download_dataset("svhn", tmp_path, mirrors=[server.url])
    assert server.gets("test_32x32.mat") == ["bytes=1000-"]
    assert_same(load("svhn", tmp_path), dataset)


def test_files_put_in_place_by_hand_are_verified_and_unpacked_offline(cli, monkeypatch, tmp_path: Path) -> None:
    dataset = fake("cifar100")
    monkeypatch.setitem(CHECKSUMS, "cifar100", dataset.checksums())
    (tmp_path / "cifar100").mkdir()
    for name, data in dataset.published.items():
        (tmp_path / "cifar100" / name).write_bytes(data)
    result = cli("download", "cifar100", "--root", tmp_path, "--mirror", "http://127.0.0.1:9/")
    assert result.stdout == f"{tmp_path / 'cifar100'}\n" and "already present and verified" in result.stderr
    assert_same(load("cifar100", tmp_path), dataset)


@pytest.mark.parametrize(("fault", "status"), [("busy", "HTTP 503"), ("throttled", "HTTP 429")])
def test_a_busy_server_is_retried_after_its_retry_after(server, monkeypatch, tmp_path: Path, fault, status) -> None:
    dataset = fake_idx("mnist")
    serve(server, dataset, monkeypatch, **{"train-images-idx3-ubyte.gz": fault})
    messages = Messages()
    download_dataset("mnist", tmp_path, mirrors=[server.url], backoff_s=0, observer=messages)
    retry = next(line for line in messages.lines if "retrying" in line)
    assert retry.startswith(f"train-images-idx3-ubyte.gz: {status}")
    assert retry.endswith("(the server's Retry-After)")  # without it, backoff_s=0 would not wait
    assert 0.5 <= float(retry.split("retrying in ")[1].split(" s")[0]) <= 2.0
    assert len(server.gets("train-images-idx3-ubyte.gz")) == 2
    assert_same(load("mnist", tmp_path), dataset)


def test_a_retry_after_too_long_moves_on_to_the_next_mirror(server, monkeypatch, tmp_path: Path) -> None:
    serve(server, fake_idx("mnist"), monkeypatch, **{"train-images-idx3-ubyte.gz": "closed"})
    with pytest.raises(DatasetError, match="asks to wait 3,600 s"):
        download_dataset("mnist", tmp_path, mirrors=[server.url], backoff_s=0)
    assert len(server.gets("train-images-idx3-ubyte.gz")) == 1  # not retried: an hour is no transient wait


def test_backoff_doubles_with_jitter_and_never_undercuts_retry_after() -> None:
    policy = RetryPolicy(backoff_s=1.0, rng=random.Random(0))
    waits = [[policy.wait_s(failures) for _ in range(200)] for failures in (1, 2, 3)]
    for failures, drawn in enumerate(waits, start=1):
        base = 2 ** (failures - 1)
        assert 0.5 * base <= min(drawn) and max(drawn) <= 1.5 * base and len(set(drawn)) > 100
    assert policy.wait_s(0) == 0.0 and policy.wait_s(1, 30.0) == 30.0
    assert retry_after_s("120") == 120.0 and retry_after_s("soon") is None and retry_after_s(None) is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


@pytest.mark.parametrize("name", ["mnist", "shapes-seg"])  # fetched, and generated here
def test_a_read_only_root_is_named_with_what_to_do(cli, read_only_fs: Path, name: str) -> None:
    """It showed the raw "[Errno 30] Read-only file system: '.../shapes-seg.making'"."""
    result = cli("download", name, "--root", read_only_fs, code=1)
    assert result.stderr == (
        f"error: {read_only_fs}: cannot write there (read-only file system); "
        "choose a data root you can write with --root DIR (or $DLTOOL_DATA)\n"
    )
    assert result.stdout == "" and list(read_only_fs.iterdir()) == []


def test_a_generated_dataset_that_fills_the_disk_leaves_nothing_half_made(cli, small_fs: Path) -> None:
    """shapes-seg (9 MB) on a 4 MiB filesystem: its half-made folder stayed, taking the space."""
    line = cli("download", "shapes-seg", "--root", small_fs, code=1).stderr
    assert line.startswith("error: no space left on") and line.count("\n") == 1
    assert list(small_fs.iterdir()) == []
