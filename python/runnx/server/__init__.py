"""runnx's KServe v2 (Open Inference Protocol) HTTP server.

>>> from runnx.server import Server
>>> with Server("models/", port=0) as srv:        # doctest: +SKIP
...     print(srv.url)                            # requests go to srv.url + "/v2/..."

``runnx serve PATH`` runs the same from the command line. The parts: ``kserve`` (the protocol
codec), ``config`` (config.json), ``repository`` (models on disk, load/unload), ``runner``
(Batcher or per-request runs), ``metrics``, ``app`` (the ASGI app), ``protocol`` (HTTP/1.1 on asyncio
and httptools), ``server`` (startup and graceful shutdown).
"""

from .app import App
from .config import ServeDefaults
from .repository import Repository
from .server import Server

__all__ = ["App", "Repository", "ServeDefaults", "Server"]
