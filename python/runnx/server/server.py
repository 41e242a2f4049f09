"""Runs the ASGI app on runnx's HTTP/1.1 server (``protocol.py``): startup, serving, and a
graceful shutdown on SIGTERM/SIGINT.

Shutdown, step by step (bounded by ``shutdown_timeout_s``):
1. the signal marks the app draining (``/v2/health/ready`` turns 400);
2. the listening socket closes (no new connections) and idle keep-alive connections close;
3. requests already received, queued in a Batcher included, are answered, then their
   connections close;
4. every model's Batcher is closed (draining what is left), and ``run()`` returns 0.
A second SIGINT/SIGTERM exits at once.

>>> srv = Server("models/", port=8000)   # doctest: +SKIP
>>> srv.run()                              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading

from . import logs
from .app import App
from .config import ServeDefaults
from .protocol import HttpServer
from .repository import Repository
from .workers import supervise, watch_parent


class Server:
    """A KServe v2 server over a model repository folder or a single ``.onnx`` file."""

    def __init__(self, path: str, *, host: str = "127.0.0.1", port: int = 8000,
                 defaults: ServeDefaults | None = None, auth_token: str | None = None,
                 max_body_bytes: int = 64 << 20, shutdown_timeout_s: float = 30.0,
                 access_log: bool = False, idle_timeout_s: float = 30.0, workers: int = 1,
                 reuse_port: bool = False, fast_path: bool = True, stats_dir: str | None = None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        # What each worker process rebuilds its Server from (``workers`` > 1; see workers.py).
        self._worker_kwargs = {
            "path": path, "host": host, "defaults": defaults, "auth_token": auth_token,
            "max_body_bytes": max_body_bytes, "shutdown_timeout_s": shutdown_timeout_s,
            "access_log": access_log, "idle_timeout_s": idle_timeout_s, "fast_path": fast_path}
        self.workers = workers
        self.reuse_port = reuse_port or workers > 1  # one of several processes on the port
        self.parent_pid: int | None = None  # a worker's supervisor
        self.repo = Repository(path, defaults)
        self.app = App(self.repo, auth_token=auth_token, max_body_bytes=max_body_bytes,
                       access_log=access_log, multi_process=self.reuse_port,
                       fast_path=fast_path, stats_dir=stats_dir)
        self.host, self.port = host, port
        self.shutdown_timeout_s = shutdown_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failed: BaseException | None = None

    def bind(self) -> socket.socket:
        """Binds the listening socket now (port 0 picks a free port; see ``self.port``). With
        ``workers`` > 1 it only holds the port: each worker listens on a socket of its own."""
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            # proto IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the
            # listener says TCP; without it a response could wait 40 ms for a delayed ACK.
            s = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((self.host, self.port))
            if self.workers == 1:
                s.listen(2048)
            self.port = s.getsockname()[1]
            self._sock = s
        return self._sock

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def serve(self) -> int:
        """Loads the models, serves until stopped, shuts down gracefully; returns 0."""
        sock = self.bind()
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.app.startup()
        if self.parent_pid is not None:
            self._loop.create_task(watch_parent(self, self.parent_pid))
        http = HttpServer(self.app, self.idle_timeout_s)
        await http.start(sock)
        self._started.set()
        await self._stop.wait()
        self.app.draining = True                                        # step 1
        clean = await http.shutdown(self.shutdown_timeout_s)            # steps 2 and 3
        if not clean:
            logs.log("error", "shutdown_timeout", timeout_s=self.shutdown_timeout_s)
        await self.app.shutdown()                                       # step 4
        self._sock = None
        return 0

    def request_stop(self) -> None:
        """Starts the graceful shutdown (safe from any thread and from signal handlers)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    def run(self) -> int:
        """Serves in this (main) thread until SIGTERM/SIGINT; returns the exit status."""
        self.bind()
        logs.log("info", "server_starting", url=self.url, repository=self.repo.path)
        if self.workers > 1:
            return supervise(self._worker_kwargs, self.port, self.workers)

        async def main():
            loop = asyncio.get_running_loop()
            signals = (signal.SIGTERM, signal.SIGINT)

            def on_signal(sig):
                if self._stop is not None and self._stop.is_set():
                    logs.log("warning", "forced_exit", signal=sig.name)
                    os._exit(1)
                logs.log("info", "shutdown_requested", signal=sig.name)
                self.app.draining = True
                self.request_stop()

            for sig in signals:
                loop.add_signal_handler(sig, on_signal, sig)
            try:
                return await self.serve()
            finally:
                for sig in signals:
                    loop.remove_signal_handler(sig)

        return asyncio.run(main())

    # ---- in a thread (tests, notebooks) ----------------------------------------------------
    def start(self, timeout_s: float = 120.0) -> Server:
        """Starts serving on a background thread; returns once requests are accepted."""
        if self.workers > 1:
            raise ValueError("start() serves in this process: use run() for several workers")
        self.bind()

        def target():
            try:
                asyncio.run(self.serve())
            except BaseException as e:  # noqa: BLE001  (reported by start())
                self._failed = e
                self._started.set()

        self._thread = threading.Thread(target=target, name="runnx-server", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise TimeoutError("the server did not start in time")
        if self._failed is not None:
            raise RuntimeError(f"the server failed to start: {self._failed}") from self._failed
        return self

    def stop(self, timeout_s: float = 120.0) -> None:
        """Graceful stop, as on SIGTERM: answers what is in flight, then returns."""
        self.app.draining = True
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> Server:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
