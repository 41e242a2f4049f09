"""What the server runs requests on: ``runnx.Batcher`` (dynamic batching in C++; models without a
batch dimension run one request at a time on it), or, in a runnx built without the Batcher,
per-request ``InferenceSession.run`` on a small thread pool.

Both present one face: ``await infer(feeds, output_names, priority, timeout_us)`` returning an
object with ``outputs`` (name -> ndarray), ``queue_us``, ``compute_us`` and ``batch_size``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass

import runnx

from .config import ResolvedConfig

# Errors the Batcher raises; looked up by name so this module imports before the Batcher exists.
QueueFull = getattr(runnx, "QueueFull", None)
DeadlineExceeded = getattr(runnx, "DeadlineExceeded", None)
BatcherClosed = getattr(runnx, "BatcherClosed", None)


class Overloaded(runnx.ResourceExhausted if QueueFull is None else QueueFull):
    """The per-request runner's bound on waiting requests is reached (429)."""


class Closed(RuntimeError if BatcherClosed is None else BatcherClosed):
    """The model is being unloaded (503)."""


@dataclass
class RunResult:
    outputs: dict
    queue_us: float
    compute_us: float
    batch_size: int


class BatcherRunner:
    """Requests go through runnx.Batcher, which groups them into batches in C++."""

    def __init__(self, session, cfg: ResolvedConfig):
        self.batcher = runnx.Batcher(
            session, max_batch_size=cfg.max_batch_size, max_queue_delay_us=cfg.max_queue_delay_us,
            preferred_batch_sizes=tuple(cfg.preferred_batch_sizes),
            max_queue_size=cfg.max_queue_size, instance_count=cfg.instance_count,
            max_inline_us=cfg.max_inline_us)
        self.inputs, self.outputs = self.batcher.inputs, self.batcher.outputs
        # ``await runner.infer(feeds, output_names, priority, timeout_us)`` is the Batcher's own
        # (no wrapping coroutine per request).
        self.infer = self.batcher.infer

    def queue_depth(self) -> int:
        return self.batcher.queue_depth()

    def executions(self) -> tuple[int, dict]:
        """Batches run, and how many of each size (rows)."""
        st = self.batcher.stats()
        return int(st.get("batches", 0)), dict(st.get("batch_sizes", {}))

    def close(self, drain: bool = True, timeout_s: float | None = None) -> None:
        self.batcher.close(drain=drain, timeout_s=timeout_s)


class SessionRunner:
    """Each request runs alone on one of ``instance_count`` threads. At most ``max_queue_size``
    requests wait; beyond that a request is refused at once."""

    def __init__(self, session, cfg: ResolvedConfig):
        self.session = session
        self.inputs, self.outputs = self.session.get_inputs(), self.session.get_outputs()
        self._names = [o.name for o in self.outputs]
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, cfg.instance_count), thread_name_prefix="runnx-run")
        self._limit = cfg.instance_count + cfg.max_queue_size
        self._pending = 0
        self._runs = 0
        self._closed = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def _run(self, feeds, output_names, t_submit, deadline):
        t0 = time.perf_counter()
        try:
            if deadline and t0 > deadline:
                raise (DeadlineExceeded or TimeoutError)("the request's timeout expired in the queue")
            names = output_names or self._names
            values = self.session.run(names, feeds)
            t1 = time.perf_counter()
            batch = next(iter(feeds.values())).shape[0] if feeds else 1
            return RunResult(dict(zip(names, values)), (t0 - t_submit) * 1e6, (t1 - t0) * 1e6,
                             int(batch) if batch else 1)
        finally:
            with self._lock:
                self._pending -= 1
                self._runs += 1
                self._idle.notify_all()

    async def infer(self, feeds, output_names=None, priority=0, timeout_us=0):
        with self._lock:
            if self._closed:
                raise Closed("the model is being unloaded")
            if self._pending >= self._limit:
                raise Overloaded(f"{self._pending} requests are already waiting")
            self._pending += 1
        now = time.perf_counter()
        deadline = now + timeout_us / 1e6 if timeout_us else 0
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, feeds, output_names, now, deadline)

    def queue_depth(self) -> int:
        return max(0, self._pending - self._pool._max_workers)

    def executions(self) -> tuple[int, dict]:
        return self._runs, {}

    def close(self, drain: bool = True, timeout_s: float | None = None) -> None:
        with self._lock:
            self._closed = True
            if drain:
                self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)
        self._pool.shutdown(wait=drain, cancel_futures=not drain)


def make_runner(session, cfg: ResolvedConfig):
    """The Batcher when runnx has one; per-request runs otherwise."""
    if hasattr(runnx, "Batcher"):
        return BatcherRunner(session, cfg)
    return SessionRunner(session, cfg)
