"""A worker process of ``dltool tune --workers K``: ``python -m dltool.commands._tune_worker INDEX``.

Reads its ``TuneSettings`` as JSON on stdin (a database password never touches the disk),
runs trials until the study has its trials, and exits like ``tune`` does: 0, 1 on an error
(one line on stderr, which the supervisor keeps in ``workers/worker-INDEX.log``), 130/143
when stopped. It also stops, after marking its trial failed, when its supervisor is gone.
"""

from __future__ import annotations

import os
import sys
import threading


def main() -> None:
    from dltool.commands._signals import stop_on_signals
    from dltool.errors import DltoolError
    from dltool.tuning.tuner import TuneSettings, quiet_optuna, run_worker

    index = int(sys.argv[1])
    settings = TuneSettings.from_json(sys.stdin.read())
    quiet_optuna()
    stop = threading.Event()
    _stop_when_orphaned(stop)
    try:
        with stop_on_signals(stop) as received:
            run_worker(settings, index=index, parallel=True, stop=stop, write=False)
    except (DltoolError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", 1))
    except KeyboardInterrupt:
        sys.exit(130)
    if received:
        sys.exit(128 + received[0])


def _stop_when_orphaned(stop: threading.Event) -> None:
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


if __name__ == "__main__":
    main()
