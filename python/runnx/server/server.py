"""Runs the ASGI app on uvicorn (httptools parser when installed): startup, serving, and a
graceful shutdown on SIGTERM/SIGINT.

Shutdown, step by step (bounded by ``shutdown_timeout_s``):
1. the signal marks the app draining (``/v2/health/ready`` turns 400) and asks uvicorn to exit;
2. uvicorn closes the listening socket (no new connections) and closes idle keep-alive ones;
3. requests in flight, queued in a Batcher included, are answered; their connections then close;
4. the lifespan shutdown closes every model's runner (drain first), and ``serve()`` returns 0.
A second SIGINT forces an immediate exit.

>>> srv = Server("models/", port=8000)   # doctest: +SKIP
>>> srv.run()                              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading

import uvicorn

from . import logs
from .app import App
from .config import ServeDefaults
from .repository import Repository


class _Uvicorn(uvicorn.Server):
    """uvicorn.Server that marks the app draining on a signal and does not re-raise the signal
    after shutting down (so the process exits 0)."""

    def __init__(self, config: uvicorn.Config, app: App):
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig, frame) -> None:
        self._app.draining = True
        logs.log("info", "shutdown_requested", signal=signal.Signals(sig).name)
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


class Server:
    """A KServe v2 server over a model repository folder or a single ``.onnx`` file."""

    def __init__(self, path: str, *, host: str = "127.0.0.1", port: int = 8000,
                 defaults: ServeDefaults | None = None, auth_token: str | None = None,
                 max_body_bytes: int = 64 << 20, shutdown_timeout_s: float = 30.0,
                 access_log: bool = False, log_level: str = "info"):
        self.repo = Repository(path, defaults)
        self.app = App(self.repo, auth_token=auth_token, max_body_bytes=max_body_bytes,
                       access_log=access_log)
        self.host, self.port = host, port
        config = uvicorn.Config(
            self.app, host=host, port=port, lifespan="on", access_log=False, log_config=None,
            log_level="warning", timeout_graceful_shutdown=shutdown_timeout_s,
            timeout_keep_alive=30, server_header=False, http="auto", loop="auto")
        self._uv = _Uvicorn(config, self.app)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.log_level = log_level

    def bind(self) -> socket.socket:
        """Binds the listening socket now (port 0 picks a free port; see ``self.port``)."""
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            # proto IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the
            # listener says TCP; without it a response's header and body writes meet Nagle's
            # algorithm and the client's delayed ACK (40 ms per request).
            s = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port))
            s.listen(2048)
            s.set_inheritable(True)
            self.port = s.getsockname()[1]
            self._sock = s
        return self._sock

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def serve(self) -> int:
        sock = self.bind()
        await self._uv.serve(sockets=[sock])
        return 0 if self._uv.started or self._uv.should_exit else 1

    def run(self) -> int:
        """Serves until SIGTERM/SIGINT; returns the exit status."""
        sock = self.bind()
        logs.log("info", "server_starting", url=self.url, repository=self.repo.path)
        self._uv.run(sockets=[sock])
        return 0 if self._uv.started else 1

    # ---- in a thread (tests, notebooks) ----------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> Server:
        """Starts serving on a background thread; returns once the port accepts requests."""
        self.bind()
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve()),
                                        name="runnx-server", daemon=True)
        self._thread.start()
        deadline = timeout_s
        while not self._uv.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server failed to start (see the log)")
            deadline -= 0.01
            if deadline < 0:
                raise TimeoutError("the server did not start in time")
            threading.Event().wait(0.01)
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """Graceful stop, as on SIGTERM: answers what is in flight, then returns."""
        self.app.draining = True
        self._uv.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
