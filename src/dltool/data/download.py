"""Downloading a dataset's files: resumable, verified, locked, and never left half-written.

Each file is streamed into ``<name>.part`` in the dataset folder with a per-read timeout.
After an interruption the transfer resumes with an HTTP Range request (a server that ignores
it sends the whole file, which restarts the ``.part`` from zero); transient failures are
retried with jittered exponential backoff, or after the server's ``Retry-After``
(``dltool.data.retry``), a bounded number of times in a row. The finished file is
checked against the publisher's checksum and only then renamed into place: wrong bytes are
deleted and the next mirror is tried. One lock per dataset folder keeps two processes from
fetching the same files at once; the second one waits, then finds them verified.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import importlib
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from dltool._io import fsync_dir, is_disk_full, mount_point, sweep_stale_temporaries
from dltool._version import __version__
from dltool.data.archives import extract_members, extract_trees, gunzip
from dltool.data.retry import BACKOFF_S, MAX_RETRY_AFTER_S, RETRIES, RetryPolicy, retry_after_s
from dltool.data.sources import (
    GENERATED,
    RemoteFile,
    checksum_of,
    dataset_folder,
    download_timeout,
    mirror_urls,
    size_of,
    source_of,
)
from dltool.errors import DatasetError, DiskFullError

CHUNK_BYTES = 1 << 18
# HTTP statuses worth another attempt; any other error status moves on to the next mirror.
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH}
# A file's bytes are capped at its known size (sources.SIZES), else at what the server
# announces plus this margin, else at UNSIZED_CAP_BYTES: a mirror that streams forever
# cannot fill the disk.
SIZE_MARGIN_BYTES = 1 << 20
UNSIZED_CAP_BYTES = 8 << 30


class DownloadObserver:
    """No-op base: override what you want to show. The CLI renders these on stderr."""

    def on_transfer(self, file: str, url: str, done: int, total: int | None) -> None:
        """A transfer starts; ``done`` > 0 when it resumes a partial file."""

    def on_bytes(self, file: str, done: int, total: int | None) -> None:
        """More bytes of ``file`` arrived (``total`` is None when the server does not say)."""

    def on_message(self, text: str) -> None:
        """A line for the user: a skipped file, a retry, a verification."""


class TransferError(Exception):
    """One mirror failed to deliver a file; ``transient`` failures are worth retrying."""

    def __init__(self, reason: str, transient: bool, retry_after_s: float | None = None):
        super().__init__(reason)
        self.transient, self.retry_after_s = transient, retry_after_s


def download_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    force: bool = False,
    timeout: float | None = None,
    retries: int = RETRIES,
    backoff_s: float = BACKOFF_S,
    observer: DownloadObserver | None = None,
) -> Path:
    """Fetch, verify and unpack dataset ``name`` into ``data_root(root)/name``; return that folder.

    ``mirrors`` (default: ``$DLTOOL_MIRROR``, URLs separated by spaces) replace the official
    addresses: each file is then fetched as ``URL/<file name>``, from the first URL that
    delivers it. Files already there and verified are kept unless ``force``. ``timeout``
    (default ``$DLTOOL_DOWNLOAD_TIMEOUT``, else 30 s) bounds every connection attempt and
    every read; see ``RetryPolicy`` for ``retries`` and ``backoff_s``.
    """
    if name in GENERATED:  # made here, no network
        module, _, maker = GENERATED[name].partition(":")
        return Path(getattr(importlib.import_module(module), maker)(root, force))
    source = source_of(name)
    observer = observer or DownloadObserver()
    urls = mirror_urls(mirrors, source.mirrors)
    policy = RetryPolicy(download_timeout(timeout), retries, backoff_s)
    folder = dataset_folder(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder, name, observer):
        if removed := sweep_stale_temporaries(folder):
            observer.on_message(f"{name}: removed {len(removed)} temporary files left by an interrupted run")
        for file in source.files:
            target = folder / file.name
            fetched = _ensure_file(name, file, target, urls, force, policy, observer)
            _unpack(file, target, folder, fetched or force, observer)
    return folder


def fetch(
    url: str, part: Path, policy: RetryPolicy, observer: DownloadObserver | None = None, size: int | None = None
) -> None:
    """Complete ``part`` from ``url``, resuming from its current size; TransferError when the
    mirror fails ``policy.retries + 1`` times in a row without delivering a byte, or sends
    more than ``size`` bytes (when known; see SIZE_MARGIN_BYTES otherwise)."""
    observer = observer or DownloadObserver()
    failures = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            _transfer(url, part, policy.timeout_s, observer, size)
            return
        except TransferError as error:
            if not error.transient:
                raise
            progressed = part.exists() and part.stat().st_size > before
            failures = 0 if progressed else failures + 1
            if failures > policy.retries:
                raise
            wait = policy.wait_s(failures, error.retry_after_s)
            after = f" in {wait:.1f} s" if wait else ""
            after += " (the server's Retry-After)" if error.retry_after_s and wait == error.retry_after_s else ""
            observer.on_message(f"{part.name.removesuffix('.part')}: {error}; retrying{after}")
            time.sleep(wait)


def verified(path: Path, checksum: str) -> bool:
    """Whether the file at ``path`` has ``checksum`` ("md5:<hex>" or "sha256:<hex>")."""
    algorithm, _, expected = checksum.partition(":")
    with open(path, "rb") as file:
        return hashlib.file_digest(file, algorithm).hexdigest() == expected.lower()


def _ensure_file(
    name: str,
    file: RemoteFile,
    target: Path,
    mirrors: list[str],
    force: bool,
    policy: RetryPolicy,
    observer: DownloadObserver,
) -> bool:
    """Make ``target`` a verified copy of ``file``; True when it had to be downloaded."""
    checksum = checksum_of(name, file)
    if target.exists() and not force:
        if verified(target, checksum):
            observer.on_message(f"{name}: {file.name} already present and verified")
            return False
        observer.on_message(f"{name}: {file.name} does not match its checksum; downloading it again")
    part = target.with_name(target.name + ".part")
    if force:
        part.unlink(missing_ok=True)
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + file.name
        try:
            fetch(url, part, policy, observer, size_of(name, file))
        except TransferError as error:
            failures.append(f"{url}: {error}")
            continue
        if not verified(part, checksum):
            part.unlink()
            failures.append(f"{url}: wrong checksum (expected {checksum})")
            observer.on_message(f"{name}: {url} sent a file with the wrong checksum; deleted it")
            continue
        os.replace(part, target)
        fsync_dir(target.parent)
        observer.on_message(f"{name}: {file.name} verified ({checksum.partition(':')[0]})")
        return True
    if part.exists() and not part.stat().st_size:
        part.unlink()  # a non-empty part stays, for the next run to resume
    raise DatasetError(
        f"could not download {name}/{file.name} ({'; '.join(failures)}): fetch it from a mirror "
        f"(`dltool download {name} --root {target.parent.parent} --mirror URL`, or $DLTOOL_MIRROR; "
        f"as URL/{file.name}), or put the file in {target.parent} by hand and run the command again"
    )


def _unpack(file: RemoteFile, target: Path, folder: Path, again: bool, observer: DownloadObserver) -> None:
    if file.kind == "plain":
        return
    if not again and all((folder / output).exists() for output in file.outputs):
        return
    observer.on_message(f"unpacking {file.name}")
    if file.kind == "tar":
        extract_members(target, file.members, folder)
        extract_trees(target, file.trees, folder)
    else:
        gunzip(target, folder / file.outputs[0])


def _transfer(url: str, part: Path, timeout: float, observer: DownloadObserver, size: int | None = None) -> None:
    """One HTTP request: append to ``part`` from its size (or rewrite it when the server sends
    the whole file) until the response ends; TransferError if it ends early or fails."""
    name = part.name.removesuffix(".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"dltool/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    with _open(request, timeout, part) as response:
        start, total = _resume_point(response, offset, part)
        if start != offset:
            observer.on_message(f"{name}: the server sent the whole file; starting again from zero")
        length = response.headers.get("Content-Length")
        expected = start + int(length) if length is not None and length.isdigit() else None
        total = size or total or expected
        observer.on_transfer(name, url, start, total)
        cap = size or (total + SIZE_MARGIN_BYTES if total else UNSIZED_CAP_BYTES)
        done = _copy(response, part, start, name, (total, cap), observer)
    if expected is not None and done < expected:
        raise TransferError(f"connection closed after {done:,} of {expected:,} bytes", True)


def _open(request: urllib.request.Request, timeout: float, part: Path) -> http.client.HTTPResponse:
    try:
        return _opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and request.has_header("Range"):  # the partial file is no prefix of the server's
            part.unlink()
            raise TransferError("the partial file does not fit the server's; starting again", True) from None
        raise _status_error(error) from None
    except urllib.error.URLError as error:
        raise _network_error(error.reason) from None
    except (OSError, http.client.HTTPException) as error:
        raise _network_error(error) from None


def _status_error(error: urllib.error.HTTPError) -> TransferError:
    """A transient status is retried, after the server's ``Retry-After`` if it gives one that
    is not too long (a longer one moves on to the next mirror)."""
    reason = f"HTTP {error.code} {error.reason}"
    wait = retry_after_s(error.headers.get("Retry-After")) if error.headers else None
    if wait is not None and wait > MAX_RETRY_AFTER_S:
        return TransferError(f"{reason}; the server asks to wait {wait:,.0f} s", False)
    return TransferError(reason, error.code in TRANSIENT_STATUS, wait)


def _resume_point(response: http.client.HTTPResponse, offset: int, part: Path) -> tuple[int, int | None]:
    """Where this response's body starts in the file, and the file's size if it says."""
    if response.status != 206:
        return 0, None  # the whole file, whatever was asked
    # "bytes START-END/TOTAL": a body that does not start at our offset cannot extend the part.
    unit, _, spec = (response.headers.get("Content-Range") or "").partition(" ")
    first, _, size = spec.partition("/")
    if unit != "bytes" or first.partition("-")[0] != str(offset):
        part.unlink(missing_ok=True)
        raise TransferError(f"the server sent range {spec or '(none)'} for bytes {offset}-", True)
    return offset, int(size) if size.isdigit() else None


def _copy(
    response: http.client.HTTPResponse,
    part: Path,
    start: int,
    name: str,
    limits: tuple[int | None, int],
    observer: DownloadObserver,
) -> int:
    """Stream the body into ``part`` from byte ``start``, never past ``cap`` bytes; bytes
    received before a network failure stay there for the next attempt to resume from. On
    a full disk, or past the cap, the partial file is deleted. ``limits``: (the size shown,
    the cap)."""
    (total, cap), done = limits, start
    try:
        with open(part, "ab" if start else "wb") as out:
            while (chunk := _read(response)) and done + len(chunk) <= cap:
                out.write(chunk)
                done += len(chunk)
                observer.on_bytes(name, done, total)
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        if not is_disk_full(error):
            raise
        part.unlink(missing_ok=True)  # a partial file on a full disk only keeps it full
        raise DiskFullError(part, mount_point(part)) from error
    if chunk:  # more is coming than the file can hold: a broken or hostile mirror
        part.unlink()
        raise TransferError(f"sent more than the expected {cap:,} bytes; deleted the partial file", False)
    return done


def _read(response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read1(CHUNK_BYTES)
    except (OSError, http.client.HTTPException) as error:
        raise _network_error(error) from None


def _network_error(reason: object) -> TransferError:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return TransferError("timed out waiting for data", True)
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError)) or (
        isinstance(reason, OSError) and reason.errno in UNREACHABLE
    ):
        # Nobody answers at that address: retrying will not change it, the next mirror might.
        return TransferError(f"cannot connect ({_reason(reason)})", False)
    return TransferError(_reason(reason), True)


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follows redirects, except from HTTPS to plain HTTP."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if req.full_url.startswith("https:") and not newurl.startswith("https:"):
            raise TransferError(f"refused a redirect from HTTPS to {newurl}", False)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoDowngrade)


@contextmanager
def _locked(folder: Path, name: str, observer: DownloadObserver) -> Iterator[None]:
    """Hold the dataset folder's lock; say so when another process holds it first."""
    lock = FileLock(folder / ".download.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        observer.on_message(f"{name}: another process is downloading it; waiting")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
