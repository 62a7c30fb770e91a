"""Local worker processes (``--workers K``): start K workers on the study's storage, show
their trials, write the study dir's files, forward a stop, and report a worker's error exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dltool.tuning.progress import TuneObserver
from dltool.tuning.settings import TuneSettings
from dltool.tuning.study import trial_rows, write_outputs
from dltool.tuning.worker import POLL_S, load_study, sweep_lost_trials

WORKER_MODULE = "dltool.tuning.worker_process"
STOPPED_CODES = (0, 128 + signal.SIGINT, 128 + signal.SIGTERM)


def supervise(settings: TuneSettings, workers: int, observer: TuneObserver, stop: threading.Event) -> None:
    """Start ``workers`` processes on the storage, show their trials, forward a stop."""
    logs = settings.study_dir / "workers"
    logs.mkdir(exist_ok=True)
    processes = [_start_worker(settings, index, workers, logs) for index in range(workers)]
    try:
        _watch(settings, processes, observer, stop)
    except BaseException:  # a second Ctrl-C: the workers stop at once too
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            process.wait(timeout=60)
        raise
    for index, process in enumerate(processes):
        code = process.returncode
        if code < 0:
            observer.on_message(f"worker {index} was killed by signal {-code}")
        elif code not in STOPPED_CODES:
            observer.on_message(f"worker {index} exited with code {code}: {_last_line(logs / f'worker-{index}.log')}")


def _watch(
    settings: TuneSettings, processes: list[subprocess.Popen], observer: TuneObserver, stop: threading.Event
) -> None:
    """Until every worker has exited: fail the trials of workers that died (the others would
    only at their next claim, and none may come), show the trials, rewrite the files when a
    state changes."""
    study = load_study(settings)
    written: Any = None
    signalled = False
    while True:
        alive = [p for p in processes if p.poll() is None]
        if stop.is_set() and not signalled:
            for process in alive:
                process.send_signal(signal.SIGINT)
            signalled = True
        sweep_lost_trials(study, settings, observer)
        rows = trial_rows(study, settings.study_dir)
        observer.on_trials(rows)
        if (states := [(r.number, r.state) for r in rows]) != written:
            write_outputs(study, settings)
            written = states
        if not alive:
            return
        time.sleep(POLL_S)


def _start_worker(settings: TuneSettings, index: int, workers: int, logs: Path) -> subprocess.Popen:
    # The settings travel on stdin, so a database password is never written to disk. Each
    # worker has its own session: a Ctrl-C reaches this process, which forwards it once.
    with open(logs / f"worker-{index}.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(index)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            env=_worker_env(workers),
        )
    assert process.stdin is not None
    process.stdin.write(settings.to_json().encode())
    process.stdin.close()
    return process


def _worker_env(workers: int) -> dict[str, str]:
    """Each worker's share of the cores as ``OMP_NUM_THREADS`` (which ``threads: auto`` then
    follows), as torchrun does: K processes each on every core would contend for them."""
    from dltool.engine.threads import usable_cores

    return {"OMP_NUM_THREADS": str(max(1, usable_cores() // workers)), **os.environ}


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"
