"""Where the downloadable datasets come from, and where their files lie once downloaded.

Torch- and NumPy-free: ``dltool download`` and the loaders both read it. Each dataset's
``Source`` lists its mirrors (working HTTPS ones first, then the publisher's own address) and
its files; ``CHECKSUMS`` holds the publisher's checksum of every file. A file is fetched as
``mirror + file name`` and checked against ``CHECKSUMS`` before anything reads it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dltool.data.roots import data_root
from dltool.errors import DatasetError, UsageError

TIMEOUT_S = 30.0  # per connection attempt and per read; $DLTOOL_DOWNLOAD_TIMEOUT overrides
MAX_TIMEOUT_S = 86400.0  # a day: longer is never meant, and inf would overflow the socket's timer


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name on the server (and in the dataset folder).

    ``members`` are the members of a tar archive the loaders need, each saved in the dataset
    folder under its base name; ``trees`` are folders of the archive whose files are all
    needed, each saved as a folder of that base name (sub-paths kept); a ``.gz`` file is
    decompressed beside itself; any other file is read as it is.
    """

    name: str
    members: tuple[str, ...] = ()
    trees: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if self.members or self.trees:
            return "tar"
        return "gzip" if self.name.endswith(".gz") else "plain"

    @property
    def outputs(self) -> tuple[str, ...]:
        """The files (and folders) the loaders read, made from this one."""
        if self.kind == "tar":
            return tuple(PurePosixPath(member).name for member in (*self.members, *self.trees))
        if self.kind == "gzip":
            return (self.name.removesuffix(".gz"),)
        return (self.name,)


@dataclass(frozen=True)
class Source:
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(output for file in self.files for output in file.outputs)


def _idx_files() -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(f"{split}-{kind}-idx{dims}-ubyte.gz")
        for split in ("train", "t10k")
        for kind, dims in (("images", 3), ("labels", 1))
    )


CIFAR10_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]

SOURCES: dict[str, Source] = {
    "mnist": Source(
        # The publisher's own host answers 403 to scripts; PyTorch's S3 copy serves the same bytes.
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        _idx_files(),
    ),
    "fashion-mnist": Source(
        (
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        _idx_files(),
    ),
    "kmnist": Source(
        ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
        _idx_files(),
    ),
    "cifar10": Source(
        ("https://www.cs.toronto.edu/~kriz/",),
        (
            RemoteFile(
                "cifar-10-binary.tar.gz",
                tuple(f"cifar-10-batches-bin/{batch}.bin" for batch in [*CIFAR10_TRAIN_BATCHES, "test_batch"]),
            ),
        ),
    ),
    "cifar100": Source(
        ("https://www.cs.toronto.edu/~kriz/",),
        (RemoteFile("cifar-100-binary.tar.gz", ("cifar-100-binary/train.bin", "cifar-100-binary/test.bin")),),
    ),
    "svhn": Source(
        ("http://ufldl.stanford.edu/housenumbers/",),
        (RemoteFile("train_32x32.mat"), RemoteFile("test_32x32.mat")),
    ),
    "oxford-pets": Source(
        ("https://thor.robots.ox.ac.uk/datasets/pets/", "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"),
        (
            RemoteFile("images.tar.gz", trees=("images",)),
            RemoteFile(
                "annotations.tar.gz",
                ("annotations/trainval.txt", "annotations/test.txt"),
                trees=("annotations/trimaps",),
            ),
        ),
    ),
}

# The publishers' checksums, "md5:<hex>" or "sha256:<hex>", by dataset and file name. None of
# these publishers gives SHA-256, so these are MD5s: CIFAR's from its web page, Fashion-MNIST's
# from its README, MNIST's, KMNIST's, SVHN's and Oxford-IIIT Pet's as torchvision checks them.
# This table is the only place checksums come from (tests point an entry at their fake files).
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
    },
    "kmnist": {
        "train-images-idx3-ubyte.gz": "md5:bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte.gz": "md5:e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte.gz": "md5:5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte.gz": "md5:7320c461ea6c1c855c0b718fb2a4b134",
    },
    "cifar10": {"cifar-10-binary.tar.gz": "md5:c32a1d4ab5d03f1284b67883e8d87530"},
    "cifar100": {"cifar-100-binary.tar.gz": "md5:03b5dce01913d631647c71ecec9e9cb8"},
    "svhn": {
        "train_32x32.mat": "md5:e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "md5:eb5a983be6a315427106f1b164d9cef3",
    },
    "oxford-pets": {
        "images.tar.gz": "md5:5c4f3ee8e5d25df40f4fd59a7f44e54c",
        "annotations.tar.gz": "md5:95a8c909bbe2e81eed6a22bccdf3f68f",
    },
}


# Each file's size in bytes, where it could be confirmed (an absent entry is allowed): no
# download of that file may grow past it, whatever the server streams.
SIZES: dict[str, dict[str, int]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": 9_912_422,
        "train-labels-idx1-ubyte.gz": 28_881,
        "t10k-images-idx3-ubyte.gz": 1_648_877,
        "t10k-labels-idx1-ubyte.gz": 4_542,
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": 26_421_880,
        "train-labels-idx1-ubyte.gz": 29_515,
        "t10k-images-idx3-ubyte.gz": 4_422_102,
        "t10k-labels-idx1-ubyte.gz": 5_148,
    },
    "kmnist": {"train-images-idx3-ubyte.gz": 18_165_135},
    "cifar10": {"cifar-10-binary.tar.gz": 170_052_171},
    "cifar100": {"cifar-100-binary.tar.gz": 168_513_733},
    "svhn": {"train_32x32.mat": 182_040_794, "test_32x32.mat": 64_275_384},
}


# Datasets made here, without the network, by `dltool download NAME`: the maker, called with
# (root, force), returns the dataset's folder.
GENERATED: dict[str, str] = {
    "shapes-seg": "dltool.data.shapes:write_shapes_seg",
    "shapes-keypoints": "dltool.data.shape_points:write_shapes_keypoints",
}


def source_of(name: str) -> Source:
    """The source of dataset ``name``; a usage error for a dataset that is not downloaded."""
    try:
        return SOURCES[name]
    except KeyError:
        raise UsageError(f"{name} is not a downloadable dataset (see: dltool list datasets)") from None


def checksum_of(name: str, file: RemoteFile) -> str:
    return CHECKSUMS[name][file.name]


def size_of(name: str, file: RemoteFile) -> int | None:
    return SIZES.get(name, {}).get(file.name)


@dataclass(frozen=True)
class LocalFiles:
    """A downloaded dataset's folder and the files its loader reads, by name."""

    folder: Path
    paths: dict[str, Path]

    def fingerprint(self, reader: str) -> str:
        """Identifies these exact files as ``reader`` decodes them: a change rebuilds the cache."""
        stats = (path.stat() for path in self.paths.values())
        return reader + "; " + "; ".join(f"{name} {s.st_size} {s.st_mtime_ns}" for name, s in zip(self.paths, stats))

    def __getitem__(self, output: str) -> Path:
        return self.paths[output]


def dataset_folder(name: str, root: str | Path | None = None) -> Path:
    return data_root(root) / name


def downloaded_files(name: str, root: str | Path | None = None) -> LocalFiles:
    """The files of dataset ``name`` under the data root, or a DatasetError naming the command
    that downloads them."""
    folder = dataset_folder(name, root)
    paths = {output: folder / output for output in source_of(name).outputs}
    missing = [output for output, path in paths.items() if not path.exists()]
    if missing:
        raise DatasetError(
            f"{name} is not downloaded in {folder} (no {missing[0]}): run "
            f"`dltool download {name} --root {data_root(root)}` (add --mirror URL or set "
            f"$DLTOOL_MIRROR to fetch from a mirror)"
        )
    return LocalFiles(folder, paths)


def require_downloaded(name: str, root: str | Path | None = None) -> None:
    """A DatasetError naming the download command when ``name`` is a downloadable dataset whose
    files are missing; nothing for any other name (embedded datasets, folders)."""
    if name in SOURCES:
        downloaded_files(name, root)
    if name in GENERATED and not dataset_folder(name, root).is_dir():
        raise DatasetError(
            f"{name} is not made in {data_root(root)}: run `dltool download {name} --root {data_root(root)}`"
        )


def mirror_urls(mirrors: Sequence[str] | None, official: tuple[str, ...]) -> list[str]:
    """The URLs to fetch from: ``mirrors``, else $DLTOOL_MIRROR, else the ``official`` ones."""
    if mirrors is None:
        mirrors = os.environ.get("DLTOOL_MIRROR", "").split()
    if not mirrors:
        return list(official)
    for url in mirrors:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--mirror / $DLTOOL_MIRROR: {url!r} is not an http:// or https:// URL")
    return list(mirrors)


def download_timeout(timeout: float | None) -> float:
    """``timeout``, else $DLTOOL_DOWNLOAD_TIMEOUT, else 30 s."""
    if timeout is not None:
        return _seconds("timeout", timeout)
    text = os.environ.get("DLTOOL_DOWNLOAD_TIMEOUT")
    return _seconds("$DLTOOL_DOWNLOAD_TIMEOUT", text) if text else TIMEOUT_S


def _seconds(name: str, given: object) -> float:
    """A finite number of seconds in (0, MAX_TIMEOUT_S]: an infinite or huge one would
    overflow the socket's timer, nan would never compare."""
    try:
        value = float(given)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT_S:  # False for nan too
        raise UsageError(f"{name}: {given!r} is not a number of seconds in (0, {MAX_TIMEOUT_S:g}]")
    return value
