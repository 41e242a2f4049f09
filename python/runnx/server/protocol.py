"""A small HTTP/1.1 server for ASGI apps, on asyncio and the httptools parser.

Why not uvicorn: on the inference path its per-request cost (two socket writes per response,
middleware, generic ASGI plumbing) was larger than runnx's own work. This one handles what the
KServe clients use and nothing more: keep-alive, Content-Length and chunked request bodies,
``Expect: 100-continue`` (sent when the app first reads the body, so a 401/404/413 goes out before
the client uploads), pipelined requests answered in order, idle timeouts, and a graceful close.
Each response is one ``transport.write`` (status line, headers and body together); the app must
give ``content-length``.

When the app has a fast path (``app.fast``, runnx._C.FastInfer), a segment that holds exactly one
whole inference request it learned is handed to it before the parser sees anything: C++ checks
and batches it, and later gives back the complete response bytes (or, for a failure, the error
for the app to word). Everything else goes through httptools and the ASGI app as before.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import time
import types
import urllib.parse

import httptools

from . import logs

_STATUS = {
    100: b"Continue", 200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found",
    405: b"Method Not Allowed", 413: b"Payload Too Large", 429: b"Too Many Requests",
    500: b"Internal Server Error", 501: b"Not Implemented", 503: b"Service Unavailable",
    504: b"Gateway Timeout",
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_ASGI = {"version": "3.0", "spec_version": "2.3"}
MAX_PIPELINE = 32           # parsed requests waiting per connection before reading pauses
MAX_HEADER_BYTES = 64 << 10
MAX_BUFFERED = 4 << 20      # body bytes held for a request before reading pauses


class ServerState:
    """What the listener and every connection share."""

    def __init__(self, app, idle_timeout_s: float):
        self.app = app
        self.idle_timeout_s = idle_timeout_s
        self.connections: set[HttpProtocol] = set()
        self.closing = False
        self.date = b""
        # The app's C++ fast path (runnx._C.FastInfer) or None: takes whole learned inference
        # requests from data_received and gives back finished HTTP responses.
        self.fast = getattr(app, "fast", None)
        self.tick()

    def tick(self) -> None:
        self.date = b"date: " + email.utils.formatdate(usegmt=True).encode() + b"\r\n"
        if self.fast is not None:
            self.fast.set_date(self.date)

    def fast_dispatch(self) -> None:
        """Hands the requests the fast path took this loop pass to the batchers at once."""
        self.fast_answer(self.fast.dispatch())

    def fast_drain(self) -> None:
        """The fast path's eventfd is readable: answer every request finished meanwhile."""
        self.fast_answer(self.fast.drain())

    @staticmethod
    def fast_answer(items) -> None:
        for proto, answer in items:
            if type(answer) is bytes:
                proto.fast_reply(answer)
            else:
                proto.fast_failed(*answer)


class _FastCycle:
    """A request the fast path took: the connection's current request until answered."""

    __slots__ = ("disconnected", "done")
    keep_alive = True
    complete = True

    def __init__(self):
        self.disconnected = False
        self.done = False

    def wake(self) -> None:
        pass


class _Cycle:
    """One request: its scope, the body as it arrives, and the response."""

    __slots__ = (
        "buffered",
        "chunks",
        "complete",
        "disconnected",
        "done",
        "expect_continue",
        "headers",
        "keep_alive",
        "proto",
        "scope",
        "started",
        "status",
        "waiter",
    )

    def __init__(self, proto, scope, keep_alive, expect_continue):
        self.proto = proto
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.waiter: asyncio.Future | None = None
        self.started = False
        self.done = False
        self.status = 0
        self.headers: list = []
        self.disconnected = False

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def receive(self) -> dict:
        if self.disconnected:
            return {"type": "http.disconnect"}
        if not self.chunks and not self.complete:
            if self.expect_continue:
                self.expect_continue = False
                self.proto.transport.write(_CONTINUE)
            self.proto.resume()
            self.waiter = self.proto.loop.create_future()
            await self.waiter
            self.waiter = None
            if self.disconnected:
                return {"type": "http.disconnect"}
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks = []
        self.buffered = 0
        self.proto.resume()
        return {"type": "http.request", "body": body, "more_body": not self.complete}

    async def send(self, msg: dict) -> None:
        if self.disconnected or self.done:
            return
        if msg["type"] == "http.response.start":
            self.status = msg["status"]
            self.headers = msg.get("headers", [])
            self.started = True
            return
        body = msg.get("body", b"")
        if msg.get("more_body", False):
            raise RuntimeError("this server needs the whole body in one message")
        if self.expect_continue:
            self.keep_alive = False     # the client may or may not send the body it announced
        head = [b"HTTP/1.1 %d %s\r\n" % (self.status, _STATUS.get(self.status, b"Status")),
                self.proto.state.date]
        for k, v in self.headers:
            if k == b"connection" and v.lower() == b"close":
                self.keep_alive = False
                continue
            head.append(k + b": " + v + b"\r\n")
        # A body not read to its end is parsed and dropped (on_body), then the next request.
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        head.append(body)
        self.proto.transport.write(b"".join(head))
        self.done = True
        self.proto.cycle_done(self)


class HttpProtocol(asyncio.Protocol):
    """One connection. Requests are parsed as they arrive and answered one at a time, in order."""

    def __init__(self, state: ServerState):
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: _Cycle | None = None        # being answered
        self.parsing: _Cycle | None = None        # receiving its body
        self.pipeline: collections.deque = collections.deque()
        self.url = b""
        self.headers: list = []
        self.header_bytes = 0
        self.paused = False
        self.last_active = time.monotonic()
        self.client = None
        self.starting: _Cycle | None = None       # parsed this segment, not started yet
        self.in_message = False                   # the parser is inside a request

    # ---- asyncio callbacks -----------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.client = transport.get_extra_info("peername")
        self.state.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.state.connections.discard(self)
        for c in (self.current, self.parsing, *self.pipeline):
            if c is not None:
                c.disconnected = True
                c.wake()
        self.pipeline.clear()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        fast = self.state.fast
        if fast is not None and self.current is None and not self.in_message:
            # A whole inference request like one answered before: C++ takes it from here.
            taken = fast.take(data, self)
            if taken:
                self.current = _FastCycle()
                # The pass's last callback hands the pass's requests over (as Batcher.infer).
                if not getattr(self.loop, "_ready", True):
                    self.state.fast_dispatch()
                elif taken == 1:
                    self.loop.call_soon(self.state.fast_dispatch)
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, b"protocol upgrades are not supported")
        except httptools.HttpParserError as e:
            self._reject(400, f"malformed HTTP request: {e}".encode())
        cycle = self.starting
        if cycle is not None:
            # Started only now that this segment is parsed: a request that came whole (body
            # included) usually runs to its answer right here, without a task or a loop pass.
            self.starting = None
            if not self.transport.is_closing():
                self._run_eagerly(cycle)

    def _reject(self, status: int, message: bytes) -> None:
        if self.transport.is_closing():
            return
        body = b'{"error":"' + message.replace(b'"', b"'") + b'"}'
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, _STATUS[status], len(body), body))
        self.transport.close()

    # ---- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.in_message = True
        self.url = b""
        self.headers = []
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("request headers are too large")
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        raw_path = self.url
        query = b""
        if raw_path[:1] != b"/" or b"?" in raw_path or b"#" in raw_path:
            url = httptools.parse_url(raw_path)
            raw_path, query = url.path, url.query or b""
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = urllib.parse.unquote(path)
        expect = False
        for k, v in self.headers:
            if k == b"expect" and v.lower() == b"100-continue":
                expect = True
        scope = {
            "type": "http", "asgi": _ASGI, "http_version": self.parser.get_http_version(),
            "method": self.parser.get_method().decode(), "scheme": "http", "path": path,
            "raw_path": raw_path, "query_string": query, "root_path": "",
            "headers": self.headers, "client": self.client, "server": None,
        }
        keep_alive = self.parser.should_keep_alive()
        cycle = _Cycle(self, scope, keep_alive, expect)
        self.parsing = cycle
        if self.current is None:
            self.current = cycle
            self.starting = cycle  # by data_received, once the segment is parsed
        else:
            self.pipeline.append(cycle)
            if len(self.pipeline) >= MAX_PIPELINE:
                self.pause()

    def on_body(self, body: bytes) -> None:
        c = self.parsing
        if c is None or c.done:
            return  # the answer went out already: drop the rest
        c.chunks.append(body)
        c.buffered += len(body)
        if c.buffered > MAX_BUFFERED:
            self.pause()  # until the app reads it (receive) or its turn comes (_start)
        c.wake()

    def on_message_complete(self) -> None:
        self.in_message = False
        c = self.parsing
        if c is not None:
            c.complete = True
            c.wake()
        self.parsing = None
        if self.state.closing and self.idle():
            self.transport.close()

    # ---- running requests ------------------------------------------------------------------
    def _start(self, cycle: _Cycle) -> None:
        self.current = cycle
        self.resume()
        self.loop.create_task(self._run(cycle))

    def _run_eagerly(self, cycle: _Cycle) -> None:
        """Runs the request's coroutine now up to its first real wait; a task carries it on
        from there (asyncio of Python 3.11 has no eager tasks)."""
        self.resume()
        coro = self._run(cycle)
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        self.loop.create_task(_carry_on(coro, waiting_on))

    async def _run(self, cycle: _Cycle) -> None:
        try:
            await self.state.app(cycle.scope, cycle.receive, cycle.send)
        except Exception as e:  # noqa: BLE001  (the app failed: answer 500 if nothing went out)
            logs.log("error", "app_error", error=f"{type(e).__name__}: {e}")
            if not cycle.started and not cycle.done:
                await cycle.send({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", b"26")]})
                await cycle.send({"type": "http.response.body",
                                  "body": b'{"error":"internal error"}'})
        if not cycle.done and not cycle.disconnected:  # the app sent nothing
            self.transport.close()

    def fast_reply(self, response: bytes) -> None:
        cycle = self.current
        if type(cycle) is not _FastCycle or cycle.disconnected:
            return  # the connection is gone
        self.transport.write(response)
        cycle.done = True
        self.cycle_done(cycle)

    def fast_failed(self, model, exc, e2e_s, rid, path) -> None:
        """A fast-path request failed in the batcher: the app words the answer."""
        fc = self.current
        cycle = _Cycle(self, {"method": "POST", "path": path}, True, False)
        cycle.complete = True
        cycle.disconnected = fc is None or fc.disconnected
        self.current = cycle
        coro = self.state.app.fast_failed(cycle.send, model, exc, e2e_s, rid, path)
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        self.loop.create_task(_carry_on(coro, waiting_on))

    def cycle_done(self, cycle: _Cycle) -> None:
        self.last_active = time.monotonic()
        self.current = None
        if not cycle.keep_alive:
            self.transport.close()
            return
        if self.pipeline:
            self._start(self.pipeline.popleft())
        elif self.state.closing and self.parsing is None:
            self.transport.close()

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.transport.resume_reading()

    def idle(self) -> bool:
        return self.current is None and self.parsing is None and not self.pipeline

    def close_if_idle(self) -> None:
        if self.idle():
            self.transport.close()


@types.coroutine
def _carry_on(coro, waiting_on):
    """Continues a coroutine that was started by hand and yielded ``waiting_on`` (the future its
    await is blocked on): the task running this waits on it, then every send or throw (a
    cancellation) goes through to ``coro``."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as e:  # noqa: BLE001  (forwarded, cancellation included)
            try:
                waiting_on = coro.throw(e)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(value)
            except StopIteration as stop:
                return stop.value


class HttpServer:
    """Serves ``app`` on an already bound socket until ``shutdown()``."""

    def __init__(self, app, idle_timeout_s: float = 30.0):
        self.state = ServerState(app, idle_timeout_s)
        self._server: asyncio.base_events.Server | None = None
        self._ticker: asyncio.Task | None = None

    async def start(self, sock) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpProtocol(self.state), sock=sock,
                                                backlog=2048)
        if self.state.fast is not None:
            loop.add_reader(self.state.fast.fd(), self.state.fast_drain)
        self._ticker = loop.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.state.tick()
            now = time.monotonic()
            for c in list(self.state.connections):
                # Waiting on the client (no request, or a body that does not come): close it.
                waiting = c.current is None or not c.current.complete
                if waiting and now - c.last_active > self.state.idle_timeout_s:
                    c.transport.close()

    async def shutdown(self, timeout_s: float) -> bool:
        """Stops accepting, closes idle connections, waits (at most ``timeout_s``) for requests
        in flight to be answered, then closes the rest. True when nothing was cut short."""
        self.state.closing = True
        if self._server is not None:
            self._server.close()
        for c in list(self.state.connections):
            c.close_if_idle()  # the busy ones close after answering what they received
        deadline = time.monotonic() + timeout_s
        while self.state.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        clean = not self.state.connections
        for c in list(self.state.connections):
            c.transport.abort()
        if self._ticker is not None:
            self._ticker.cancel()
        return clean
