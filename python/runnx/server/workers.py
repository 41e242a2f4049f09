"""``runnx serve --workers N``: N server processes on one port, for hosts where one process's
event loop (one core of Python per request) is the limit.

The supervisor binds the port without listening (it only holds the port) and starts N fresh
interpreters (multiprocessing "spawn": no state forked from a process with threads). Each binds
its own listening socket with SO_REUSEPORT, so the kernel spreads connections over them, and
loads its own copy of every model. SIGTERM/SIGINT to the supervisor reach each worker once as
SIGTERM (the workers sit in their own process group, so a terminal's Ctrl-C does not hit them
twice); a second signal is forwarded again and forces them out. A worker that exits with an error
stops the others. A worker whose supervisor disappeared shuts itself down.

``/stats`` and ``/metrics`` add up every worker's figures (``shared_stats.py``: they meet in a
folder the supervisor makes; the others' part lags by at most 25 ms), so the statistics extension
is advertised. The repository load/unload API is refused (a load would
reach one worker only).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile

from . import logs


def _worker_main(kwargs: dict, port: int, log_level: str | None, parent_pid: int) -> None:
    from .server import Server

    os.setpgrp()
    if log_level:
        logs.setup(log_level)
    srv = Server(port=port, reuse_port=True, **kwargs)
    srv.parent_pid = parent_pid
    sys.exit(srv.run())


async def watch_parent(server, parent_pid: int) -> None:
    """Stops ``server`` once the supervisor that started it is gone."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    logs.log("warning", "supervisor_gone", parent_pid=parent_pid)
    server.request_stop()


def supervise(kwargs: dict, port: int, workers: int) -> int:
    """Runs ``workers`` server processes on ``port`` until they exit; returns 0 when all
    exited cleanly."""
    level = logs.logger.level
    level_name = logging.getLevelName(level).lower() if level else None
    ctx = multiprocessing.get_context("spawn")
    stats_dir = tempfile.mkdtemp(prefix="runnx-serve-stats-")
    kwargs = dict(kwargs, stats_dir=stats_dir)
    procs = [ctx.Process(target=_worker_main, args=(kwargs, port, level_name, os.getpid()),
                         name=f"runnx-serve-{i}") for i in range(workers)]

    def stop_all(*_):
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    old = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for p in procs:
            p.start()
        logs.log("info", "workers_started", workers=workers, pids=[p.pid for p in procs])
        failed = False
        while any(p.exitcode is None for p in procs):
            multiprocessing.connection.wait([p.sentinel for p in procs if p.exitcode is None], 1.0)
            if not failed and any(p.exitcode not in (None, 0) for p in procs):
                failed = True  # one worker failed: stop the rest rather than serve partly
                logs.log("error", "worker_failed",
                         exit_codes=[p.exitcode for p in procs if p.exitcode is not None])
                stop_all()
        for p in procs:
            p.join()
        return 0 if all(p.exitcode == 0 for p in procs) else 1
    finally:
        stop_all()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        shutil.rmtree(stats_dir, ignore_errors=True)
