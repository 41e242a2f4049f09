"""Structured logs: one JSON object per line on the ``runnx.server`` logger.

>>> import logging; logging.basicConfig(level=logging.INFO)  # doctest: +SKIP
>>> log("info", "model_loaded", model="mlp", version="1")     # doctest: +SKIP
{"ts": "2026-01-01T00:00:00.000Z", "level": "info", "event": "model_loaded", "model": "mlp", ...}
"""

from __future__ import annotations

import datetime
import json
import logging
import sys

logger = logging.getLogger("runnx.server")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def log(level: str, event: str, **fields) -> None:
    lv = _LEVELS[level]
    if not logger.isEnabledFor(lv):
        return
    ts = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    rec = {"ts": ts.replace("+00:00", "Z"), "level": level, "event": event}
    rec.update(fields)
    logger.log(lv, json.dumps(rec, default=str))


def enabled(level: str) -> bool:
    return logger.isEnabledFor(_LEVELS[level])


def setup(level: str = "info") -> None:
    """Sends the server's JSON lines to stderr (what ``runnx serve`` does)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(_LEVELS[level])
    logger.propagate = False
