"""A tune worker process: ``python -m dltool.tuning.worker_process INDEX``, started by
``tuning.pool`` (``--workers K``) to run ``tuning.worker.run_worker``.

It reads its ``TuneSettings`` as JSON on stdin (a database password never touches the disk),
and exits like ``tune`` does: 0, 1 on an error (one line on stderr, which the supervisor keeps
in ``workers/worker-INDEX.log``), 130/143 when stopped. It also stops, after marking its trial
failed, when its supervisor is gone. A module of its own, which the package never imports:
run with ``-m``, a module the package had already imported (``tuning.worker``) would be
executed a second time, and runpy's RuntimeWarning about it opened every worker's log.
"""

from __future__ import annotations

import os
import sys
import threading

from dltool.tuning.settings import TuneSettings
from dltool.tuning.worker import run_worker


def main() -> None:
    """Run worker ``INDEX`` (argv[1]) of the study that stdin's settings describe."""
    from dltool._signals import Stop, stop_on_signals
    from dltool.errors import DltoolError

    index = int(sys.argv[1])
    settings = TuneSettings.from_json(sys.stdin.read())
    stop = Stop()
    _stop_when_orphaned(stop)
    try:
        with stop_on_signals(stop) as received:
            run_worker(settings, index=index, parallel=True, stop=stop, write=False)
    except (DltoolError, OSError) as error:
        # This process's stderr is its log file, which the supervisor quotes the last line of.
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
