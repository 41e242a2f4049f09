"""Dynamic batching: many concurrent requests, one model, batches formed in C++.

>>> import numpy as np, runnx
>>> with runnx.Batcher("model.onnx", max_batch_size=8, max_queue_delay_us=500) as b:  # doctest: +SKIP
...     fut = b.submit({"x": np.ones((1, 4), np.float32)})     # concurrent.futures.Future
...     res = fut.result()
...     res.outputs["y"], res.batch_size, res.queue_us, res.compute_us
>>> res = await b.infer({"x": x})  # doctest: +SKIP   (inside a coroutine: an asyncio future)

Requests enter a bounded lock-free queue; worker threads (``instance_count``) group compatible
requests (same input names, dtypes, non-batch dims and requested outputs) along dim 0 up to
``max_batch_size``, run the batch with the GIL released and split the outputs back (zero-copy
views). Finished requests are signalled through an eventfd: ``infer`` has the event loop watch
it (``loop.add_reader``) and resolves every finished future in one callback; ``submit`` has one
daemon thread block on it with the GIL released. No thread takes the GIL per request while
running, and the event loop never blocks on a queued request.

``infer`` hands over the requests of one event-loop pass together, with one wake-up of the
workers. A request that is alone in its pass, finding the batcher idle (nothing queued, a worker
free) while batches take at most ``max_inline_us``, runs at once on the loop's thread with the GIL
released: for a small model the two thread hand-offs cost more than the compute.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import _C
from .errors import BatcherClosed, InvalidArgument
from .session import InferenceSession, NodeArg, SessionOptions


class InferResult:
    """One request's answer: ``outputs`` (dict name -> numpy array, in the order asked),
    ``queue_us`` (time queued), ``compute_us`` (time of the batch it ran in, concatenation and
    split included) and ``batch_size`` (rows of that batch; 1 when the model takes no batches).
    """

    __slots__ = ("batch_size", "compute_us", "outputs", "queue_us")

    def __init__(self, outputs: dict, queue_us: int, compute_us: int, batch_size: int) -> None:
        self.outputs = outputs
        self.queue_us = queue_us
        self.compute_us = compute_us
        self.batch_size = batch_size

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.outputs.items()}
        return (
            f"InferResult(outputs={shapes}, queue_us={self.queue_us}, "
            f"compute_us={self.compute_us}, batch_size={self.batch_size})"
        )


def _deliver_concurrent(items) -> None:
    for fut, ok, payload, queue_us, compute_us, batch_size in items:
        try:
            if ok:
                fut.set_result(InferResult(payload, queue_us, compute_us, batch_size))
            else:
                fut.set_exception(payload)
        except Exception:  # noqa: BLE001, S110  one bad future must not stop the resolver thread
            pass


def _deliver_async(items) -> None:
    for fut, ok, payload, queue_us, compute_us, batch_size in items:
        if fut.done():  # its awaiter was cancelled
            continue
        try:
            if ok:
                fut.set_result(InferResult(payload, queue_us, compute_us, batch_size))
            else:
                fut.set_exception(payload)
        except RuntimeError:  # the future's loop is closed: nobody is waiting any more
            pass


class _LoopState:
    """One event loop's completion channel and the requests its current pass prepared."""

    __slots__ = ("channel", "prepared")

    def __init__(self, channel: int) -> None:
        self.channel = channel
        self.prepared: list = []


class _Delivery:
    """What the resolver thread, the loops' readers and the finalizer share: the native
    batcher and its completion channels. Holds no reference to the Batcher, so dropping the
    Batcher closes it."""

    def __init__(self, core) -> None:
        self.core = core
        self.lock = threading.Lock()
        self.thread_channel: int | None = None
        self.thread: threading.Thread | None = None
        self.stopping = False
        self.loops: dict[Any, _LoopState] = {}

    # --- submit(): one daemon thread resolves concurrent futures -------------------------------
    def thread_channel_id(self) -> int:
        ch = self.thread_channel
        if ch is not None:
            return ch
        with self.lock:
            if self.stopping:  # closed: no resolver thread to start (close would not stop it)
                raise BatcherClosed("the batcher is closed")
            if self.thread_channel is None:
                ch = self.core.open_channel(False)
                t = threading.Thread(
                    target=self._resolve_forever,
                    args=(ch, self.core.channel_fd(ch)),
                    name="runnx-batcher-resolver",
                    daemon=True,
                )
                t.start()
                self.thread = t
                self.thread_channel = ch
            return self.thread_channel

    def _resolve_forever(self, ch: int, fd: int) -> None:
        while True:
            try:
                os.read(fd, 8)  # blocks with the GIL released
            except InterruptedError:
                continue
            _deliver_concurrent(self.core.drain(ch))
            if self.stopping:  # set after the batcher answered everything
                _deliver_concurrent(self.core.drain(ch))
                return

    # --- infer(): each event loop watches its own channel's eventfd ------------------------
    def loop_state(self, loop) -> _LoopState:
        st = self.loops.get(loop)
        if st is not None:
            return st
        with self.lock:
            if self.stopping:
                raise BatcherClosed("the batcher is closed")
            ch = None
            for old_loop, old in list(self.loops.items()):
                if old_loop.is_closed():  # reuse a dead loop's channel (and its fd)
                    del self.loops[old_loop]
                    _deliver_async(self.core.drain(old.channel))
                    ch = old.channel
                    break
            if ch is None:
                ch = self.core.open_channel(True)
            loop.add_reader(self.core.channel_fd(ch), self._on_readable, ch)
            st = self.loops[loop] = _LoopState(ch)
            return st

    def dispatch(self, st: _LoopState) -> None:
        """Hands the pass's prepared requests to the batcher; resolves those answered at once
        (an inline run, a refusal)."""
        prepared = st.prepared
        if prepared:
            st.prepared = []
            _deliver_async(self.core.dispatch(prepared))

    def _on_readable(self, ch: int) -> None:
        _deliver_async(self.core.drain(ch))

    def _final_drain(self, loop, ch: int) -> None:
        loop.remove_reader(self.core.channel_fd(ch))
        _deliver_async(self.core.drain(ch))

    def _final_dispatch(self, loop, st: _LoopState) -> None:
        self.dispatch(st)  # the batcher is closed: these are refused
        self._final_drain(loop, st.channel)

    # --- shutdown ----------------------------------------------------------------------------
    def close(self, drain: bool, timeout_s: float | None) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        st = self.loops.get(running) if running is not None else None
        if st is not None:  # this pass's requests were accepted: they are queued, not refused
            self.dispatch(st)
        self.core.close(bool(drain), -1.0 if timeout_s is None else float(timeout_s))
        # Every request is answered now; hand the last ones over and stop watching.
        with self.lock:
            self.stopping = True
            thread, ch = self.thread, self.thread_channel
            loops = list(self.loops.items())
            self.loops.clear()
        if thread is not None:
            self.core.poke(ch)
            if thread is not threading.current_thread():
                thread.join()
        for loop, lst in loops:
            if loop is running:
                self._final_drain(loop, lst.channel)
            elif not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._final_dispatch, loop, lst)
                except RuntimeError:  # closed meanwhile
                    pass


def _as_feeds(feeds) -> Mapping[str, Any]:
    if not isinstance(feeds, Mapping):
        raise InvalidArgument("feeds must be a dict of input name -> array")
    return feeds if isinstance(feeds, dict) else dict(feeds)


def _as_output_names(output_names) -> list[str] | None:
    if output_names is None:
        return None
    if isinstance(output_names, str):
        return [output_names]
    return [str(n) for n in output_names]


class Batcher:
    """Batches concurrent requests to one model.

    ``model`` is a :class:`runnx.InferenceSession` (shared, its run is thread safe) or a path /
    bytes (a session is created with ``sess_options``). ``max_batch_size`` 0 means the model has
    no batch dim and every request runs alone; otherwise dim 0 of every input is the batch dim
    and a request may itself carry several rows. A batch waits at most ``max_queue_delay_us`` for
    more requests (counted from when a free worker first saw its oldest) and goes at once when it
    fills ``max_batch_size`` or one of ``preferred_batch_sizes``, or when as many rows are in
    flight as were at the busiest moment between the last two batch completions (closed-loop
    clients answered by the last batch are all back). At most ``max_queue_size`` requests wait; beyond that ``submit``
    raises :class:`runnx.QueueFull` at once. ``instance_count`` worker threads run batches.
    ``max_inline_us``: :meth:`infer` may run a lone request on the event loop's own thread while
    the batcher is idle and batches take at most this long (0: always through the workers).

    >>> b = runnx.Batcher(sess, max_batch_size=8, preferred_batch_sizes=(4, 8))  # doctest: +SKIP
    >>> b.submit({"x": x}).result().outputs["y"]  # doctest: +SKIP
    >>> b.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        model,
        max_batch_size: int = 8,
        max_queue_delay_us: int = 500,
        preferred_batch_sizes: Iterable[int] = (),
        max_queue_size: int = 1024,
        instance_count: int = 1,
        sess_options: SessionOptions | None = None,
        max_inline_us: int = 1000,
    ) -> None:
        if isinstance(model, InferenceSession):
            session = model
        else:
            session = InferenceSession(model, sess_options=sess_options)
        self.session = session
        self.max_batch_size = int(max_batch_size)
        self.max_queue_delay_us = int(max_queue_delay_us)
        self.preferred_batch_sizes = tuple(int(p) for p in preferred_batch_sizes)
        self.max_queue_size = int(max_queue_size)
        self.instance_count = int(instance_count)
        self.max_inline_us = int(max_inline_us)
        self.inputs: list[NodeArg] = session.get_inputs()
        self.outputs: list[NodeArg] = session.get_outputs()
        core = _C.Batcher(
            session._sess,
            self.max_batch_size,
            self.max_queue_delay_us,
            list(self.preferred_batch_sizes),
            self.max_queue_size,
            self.instance_count,
            self.max_inline_us,
        )
        self._delivery = _Delivery(core)
        # Dropping the Batcher without close() still answers everything it holds.
        self._finalizer = weakref.finalize(self, self._delivery.close, True, None)

    def submit(
        self,
        feeds: Mapping[str, Any],
        output_names: Sequence[str] | None = None,
        priority: int = 0,
        timeout_us: int = 0,
    ) -> concurrent.futures.Future:
        """Queues one request; returns a ``concurrent.futures.Future`` of an :class:`InferResult`.

        Lower ``priority`` is served first (equal priority: first come, first served).
        ``timeout_us`` > 0: if the request is still queued that long after submit, its future
        fails with :class:`runnx.DeadlineExceeded` (it is never run). Raises
        :class:`runnx.InvalidArgument` for feeds the model cannot take, :class:`runnx.QueueFull`
        when the queue is full and :class:`runnx.BatcherClosed` after :meth:`close`.

        >>> res = b.submit({"x": x}, output_names=["y"]).result()  # doctest: +SKIP
        """
        d = self._delivery
        fut: concurrent.futures.Future = concurrent.futures.Future()
        fut.set_running_or_notify_cancel()  # a queued request cannot be withdrawn
        d.core.submit(
            _as_feeds(feeds),
            _as_output_names(output_names),
            int(priority),
            int(timeout_us),
            d.thread_channel_id(),
            fut,
        )
        return fut

    async def infer(
        self,
        feeds: Mapping[str, Any],
        output_names: Sequence[str] | None = None,
        priority: int = 0,
        timeout_us: int = 0,
    ) -> InferResult:
        """The asyncio form of :meth:`submit`: awaits and returns the :class:`InferResult`
        (or raises the request's error). The running loop watches the batcher's eventfd, so
        awaiting never blocks the loop.

        >>> res = await b.infer({"x": x})  # doctest: +SKIP
        """
        d = self._delivery
        loop = asyncio.get_running_loop()
        st = d.loops.get(loop) or d.loop_state(loop)
        fut = loop.create_future()
        prepared = st.prepared
        prepared.append(d.core.prepare(
            feeds if type(feeds) is dict else _as_feeds(feeds),
            _as_output_names(output_names), int(priority), int(timeout_us), st.channel, fut))
        # The pass's last request hands them all over. asyncio's loop keeps the callbacks still
        # to run in this pass in `_ready`; on loops without it, a callback does at the pass's end.
        if not getattr(loop, "_ready", True):
            d.dispatch(st)
        elif len(prepared) == 1:
            loop.call_soon(d.dispatch, st)
        return await fut

    def queue_depth(self) -> int:
        """Requests waiting now (queued, not yet running)."""
        return self._delivery.core.queue_depth()

    def stats(self) -> dict:
        """Counters since creation: requests_ok, requests_failed, requests_rejected (queue
        full), requests_expired (deadline), batches, inline_runs (requests :meth:`infer` ran on
        the loop's thread), queue_us and compute_us (summed over answered requests),
        batch_sizes (dict rows -> batches run) and queue_depth."""
        s = self._delivery.core.stats()
        s["queue_depth"] = self._delivery.core.queue_depth()
        return s

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has begun."""
        return self._delivery.core.closed()

    def close(self, drain: bool = True, timeout_s: float | None = None) -> None:
        """Stops accepting requests (submit then raises :class:`runnx.BatcherClosed`).
        ``drain``: run everything queued first (no more waiting for fuller batches); otherwise
        queued requests fail with BatcherClosed. ``timeout_s`` bounds the drain; requests still
        queued then fail with BatcherClosed (a batch already running always finishes). Returns
        once every request is answered (futures of other event loops resolve when those loops
        run). Idempotent.
        """
        self._delivery.close(drain, timeout_s)

    async def aclose(self, drain: bool = True, timeout_s: float | None = None) -> None:
        """:meth:`close` for a coroutine: the wait runs on a thread, so the event loop keeps
        serving meanwhile (its own requests included). Returns once every request is answered
        and this loop's futures are resolved.

        >>> await b.aclose()  # doctest: +SKIP
        """
        loop = asyncio.get_running_loop()
        d = self._delivery
        st = d.loops.get(loop)
        if st is not None:  # this pass's requests were accepted: queue them before closing
            d.dispatch(st)
        await loop.run_in_executor(None, d.close, drain, timeout_s)
        # close() handed this loop's last answers over with call_soon_threadsafe, ahead of the
        # executor's own wake-up: they are delivered by now.

    def __enter__(self) -> Batcher:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Batcher(max_batch_size={self.max_batch_size}, "
            f"max_queue_delay_us={self.max_queue_delay_us}, "
            f"instance_count={self.instance_count}, queue_depth={self.queue_depth()})"
        )


__all__ = ["Batcher", "InferResult"]
