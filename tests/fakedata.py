"""Tiny datasets in the publishers' own formats, and a real HTTP server on 127.0.0.1 to serve them.

Every fake has 20 train and 10 test images (2 and 1 per class), made at test time with NumPy:
gzipped IDX files (the MNIST family), CIFAR's binary tar.gz archives, SVHN's MATLAB v5 files.
``FakeDataset.checksums()`` gives the table a test puts in ``dltool.data.sources.CHECKSUMS``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import struct
import tarfile
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

TRAIN, TEST = 20, 10


@dataclass
class FakeDataset:
    """``published``: file name -> bytes as served; ``outputs``: file name -> bytes the loader
    reads (what download unpacks); ``splits``: split -> (images N,C,H,W uint8, labels int64)."""

    name: str
    published: dict[str, bytes]
    outputs: dict[str, bytes]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]

    def checksums(self) -> dict[str, str]:
        return {name: "md5:" + hashlib.md5(data).hexdigest() for name, data in self.published.items()}

    def write_outputs(self, folder: Path) -> None:
        """Put the unpacked files where the loader looks, as if downloaded."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.outputs.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)


def images_and_labels(count: int, shape: tuple[int, ...], classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images and labels that cycle through the classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    return rng.integers(0, 256, (count, *shape), dtype=np.uint8), labels.astype(np.int64)


def idx(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: zero, zero, type 0x08, the dimensions, then the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_idx(name: str = "mnist") -> FakeDataset:
    published, outputs, splits = {}, {}, {}
    for split, prefix, count in (("train", "train", TRAIN), ("test", "t10k", TEST)):
        images, labels = images_and_labels(count, (1, 28, 28), 10, seed=count)
        splits[split] = (images, labels)
        for kind, array in (("images-idx3", images[:, 0]), ("labels-idx1", labels)):
            outputs[f"{prefix}-{kind}-ubyte"] = idx(array)
            published[f"{prefix}-{kind}-ubyte.gz"] = gzip.compress(idx(array), mtime=0)
    return FakeDataset(name, published, outputs, splits)


def cifar_records(images: np.ndarray, *label_columns: np.ndarray) -> bytes:
    labels = np.stack(label_columns, axis=1).astype(np.uint8)
    return np.concatenate([labels, images.reshape(len(images), -1)], axis=1).tobytes()


def fake_cifar10() -> FakeDataset:
    train, test = (images_and_labels(n, (3, 32, 32), 10, seed=n) for n in (TRAIN, TEST))
    outputs = {f"data_batch_{i + 1}.bin": cifar_records(train[0][i::5], train[1][i::5]) for i in range(5)}
    outputs["test_batch.bin"] = cifar_records(*test)
    order = np.concatenate([np.arange(i, TRAIN, 5) for i in range(5)])  # batch 1, then 2, ...
    members = {f"cifar-10-batches-bin/{n}": d for n, d in outputs.items()}
    members["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\n"
    archive = tar_gz(members)
    splits = {"train": (train[0][order], train[1][order]), "test": test}
    return FakeDataset("cifar10", {"cifar-10-binary.tar.gz": archive}, outputs, splits)


def fake_cifar100() -> FakeDataset:
    splits, outputs = {}, {}
    for split, count in (("train", TRAIN), ("test", TEST)):
        images, fine = images_and_labels(count, (3, 32, 32), 100, seed=count)
        fine = (fine * 7) % 100  # spread over the 100 classes
        splits[split] = (images, fine)
        outputs[f"{split}.bin"] = cifar_records(images, fine // 5, fine)
    archive = tar_gz({f"cifar-100-binary/{n}": d for n, d in outputs.items()})
    return FakeDataset("cifar100", {"cifar-100-binary.tar.gz": archive}, outputs, splits)


def svhn_mat(images: np.ndarray, labels: np.ndarray, **extra: np.ndarray) -> bytes:
    """A MATLAB v5 file as SVHN publishes it: X (32, 32, 3, N) uint8, y (N, 1) with 10 for 0."""
    from scipy.io import savemat

    buffer = io.BytesIO()
    y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
    savemat(buffer, {"X": images.transpose(2, 3, 1, 0), "y": y, **extra})
    return buffer.getvalue()


def fake_svhn() -> FakeDataset:
    splits, outputs = {}, {}
    for split, count in (("train", TRAIN), ("test", TEST)):
        splits[split] = images_and_labels(count, (3, 32, 32), 10, seed=count)
        outputs[f"{split}_32x32.mat"] = svhn_mat(*splits[split])
    return FakeDataset("svhn", dict(outputs), outputs, splits)


def fake_pets() -> FakeDataset:
    """Oxford-IIIT Pet's two archives in the official layout: JPEG photos, trimaps of 1 pet /
    2 background / 3 border, the split lists, and files the loader does not read (the breed
    list, XML boxes, a stray .mat among the photos)."""
    from PIL import Image

    rng = np.random.default_rng(5)
    photos: dict[str, bytes] = {"images/Abyssinian_100.mat": b"MATLAB 5.0"}
    notes: dict[str, bytes] = {
        "annotations/list.txt": b"#Image CLASS-ID SPECIES BREED ID\n",
        "annotations/xmls/a.xml": b"<a/>",
    }
    splits: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for split, count in (("train", 6), ("test", 3)):
        lines = []
        for k in range(count):
            name = f"{'Bengal' if k % 2 else 'boxer'}_{split}{k}"
            height, width = 20, 24
            trimap = rng.integers(1, 4, (height, width), dtype=np.uint8)
            jpeg, png = io.BytesIO(), io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(jpeg, "JPEG")
            Image.fromarray(trimap).save(png, "PNG")
            photos[f"images/{name}.jpg"] = jpeg.getvalue()
            notes[f"annotations/trimaps/{name}.png"] = png.getvalue()
            lines.append(f"{name} {k + 1} {1 + k % 2} {k + 1}")
            decoded = np.asarray(Image.open(io.BytesIO(jpeg.getvalue())))
            splits[split][0].append(decoded.transpose(2, 0, 1))
            splits[split][1].append(np.array([0, 1, 0, 2], np.uint8)[trimap])
        notes[f"annotations/{'trainval' if split == 'train' else 'test'}.txt"] = ("\n".join(lines) + "\n").encode()
    published = {"images.tar.gz": tar_gz(photos), "annotations.tar.gz": tar_gz(notes)}
    arrays = {split: (np.stack(images), np.stack(masks)) for split, (images, masks) in splits.items()}
    unpacked = {name.removeprefix("annotations/"): data for name, data in {**photos, **notes}.items()}
    return FakeDataset("oxford-pets", published, unpacked, arrays)


def fake(name: str) -> FakeDataset:
    makers = {"cifar10": fake_cifar10, "cifar100": fake_cifar100, "svhn": fake_svhn, "oxford-pets": fake_pets}
    return makers[name]() if name in makers else fake_idx(name)


def tar_gz(members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    """A gzipped tar of regular files, plus any ``extra`` headers (links, devices) as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folders = sorted({name.rsplit("/", 1)[0] for name in members if "/" in name})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buffer.getvalue()


@dataclass
class FileServer:
    """Serves ``files`` at ``/<name>`` over HTTP/1.0 with Range support, in a thread.

    ``faults[name]`` misbehaves on purpose: "drop" (the first response stops halfway),
    "drop-then-ignore-range" (that, then whole files whatever Range asks), "stall" (headers,
    then silence), "corrupt" (one byte changed), "slow" (the body in 10 pieces over 1.5 s),
    "endless" (no Content-Length, and bytes for as long as the client reads), "busy" (the first
    request gets 503 with ``Retry-After: 1``), "throttled" (the first gets 429 with a Retry-After
    date 2 s ahead), "closed" (every request gets 503 with ``Retry-After: 3600``).
    ``requests`` records (name, Range header or None) in arrival order.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.owner = self  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def gets(self, name: str) -> list[str | None]:
        """The Range headers of every request for ``name``."""
        return [header for requested, header in self.requests if requested == name]

    def __enter__(self) -> FileServer:
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: FileServer = self.server.owner  # type: ignore[attr-defined]
        name = self.path.lstrip("/")
        range_header = self.headers.get("Range")
        server.requests.append((name, range_header))
        if name not in server.files:
            self.send_error(404)
            return
        data, fault = server.files[name], server.faults.get(name, "")
        first = len(server.gets(name)) == 1
        if self._refused(fault, first):
            return
        if fault == "endless":
            self._endless(server)
            return
        if fault == "corrupt":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not (fault == "drop-then-ignore-range" and not first):
            start = int(match[1])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if fault == "stall":
            server.stop.wait(30)
        elif fault.startswith("drop") and first:
            self.wfile.write(body[: len(body) // 2])  # then the connection closes
        elif fault == "slow":
            for piece in np.array_split(np.frombuffer(body, np.uint8), 10):
                self.wfile.write(piece.tobytes())
                self.wfile.flush()
                time.sleep(0.15)
        else:
            self.wfile.write(body)

    def _refused(self, fault: str, first: bool) -> bool:
        """Answer a busy server's refusal for the faults that have one; whether it did."""
        retry_after = {"busy": "1", "throttled": formatdate(time.time() + 2, usegmt=True), "closed": "3600"}
        if fault not in retry_after or (fault != "closed" and not first):
            return False
        self.send_response(429 if fault == "throttled" else 503)
        self.send_header("Retry-After", retry_after[fault])
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def _endless(self, server: FileServer) -> None:
        """200 with no Content-Length, then bytes until the client hangs up (or the test ends)."""
        self.send_response(200)
        self.end_headers()
        chunk = bytes(1 << 16)
        try:
            while not server.stop.is_set():
                self.wfile.write(chunk)
        except OSError:
            pass  # the client closed the connection: what a capped download does

    def log_message(self, *args: object) -> None:
        pass  # keep test output clean


def split_photos(root: Path, train: int = 4, val: int = 2, test: int = 200) -> Path:
    """Two classes of random 32×32 photos, this many of each per split (by default a few to
    train and validate on, 400 to test: seconds for a ResNet-56 on a CPU)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val), ("test", test)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    return root
