"""The model repository: which models exist, which versions are served, load and unload.

Layout (Triton's)::

    models/<name>/config.json            optional, see config.py
    models/<name>/<version>/model.onnx   version folders are positive integers
    models/<name>.onnx                   shorthand: version 1, default config

or a single ``model.onnx`` path. Loads run on a worker thread, so the event loop keeps serving
every other model; a reload swaps in the new versions only once they all loaded, then drains the
old ones. A model that fails to load is marked UNAVAILABLE with the reason; the server stays up.
"""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass, field

import runnx

from . import logs
from .config import (
    ConfigError,
    ModelConfig,
    ResolvedConfig,
    ServeDefaults,
    load_config_file,
    parse_config,
    resolve,
    select_versions,
)
from .metrics import ModelMetrics
from .runner import make_runner


class NotFound(LookupError):
    """Unknown model or version (404)."""


class Unavailable(RuntimeError):
    """Known but not ready (503)."""


class LoadError(RuntimeError):
    """A model failed to load (400 on the load API; the message says why)."""


@dataclass
class ServedModel:
    """One loaded version of a model."""

    name: str
    version: str
    config: ResolvedConfig
    runner: object
    metrics: ModelMetrics
    input_specs: dict = field(default_factory=dict)    # name -> TensorSpec
    output_names: list = field(default_factory=list)

    def metadata(self, versions: list[str]) -> dict:
        batch = [-1] if self.config.max_batch_size > 0 else []
        def tensors(specs):
            return [{"name": t.name, "datatype": t.datatype, "shape": batch + list(t.dims)}
                    for t in specs]
        return {"name": self.name, "versions": versions, "platform": "onnxruntime_onnx",
                "inputs": tensors(self.config.inputs), "outputs": tensors(self.config.outputs)}


@dataclass
class _Entry:
    versions: dict = field(default_factory=dict)     # version str -> ServedModel
    reason: str = ""                                 # why the last load failed
    state: str = "UNAVAILABLE"                       # READY | LOADING | UNLOADING | UNAVAILABLE
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _is_version(name: str) -> bool:
    return name.isdigit() and int(name) > 0


class Repository:
    def __init__(self, path: str, defaults: ServeDefaults | None = None):
        self.path = os.path.abspath(path)
        self.defaults = defaults or ServeDefaults()
        self.single_file = os.path.isfile(self.path)
        if not self.single_file and not os.path.isdir(self.path):
            raise FileNotFoundError(f"model repository {path!r} is neither a folder nor a file")
        self._entries: dict[str, _Entry] = {}
        # Called (on the event loop) whenever the versions served change: caches of routes and
        # models (the server's fast path) must forget them.
        self.on_change: list = []

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    # ---- what is on disk -------------------------------------------------------------------
    def scan(self) -> dict[str, str]:
        """Model name -> folder (or .onnx file) for every model the repository holds."""
        if self.single_file:
            return {os.path.splitext(os.path.basename(self.path))[0]: self.path}
        found = {}
        for entry in sorted(os.listdir(self.path)):
            full = os.path.join(self.path, entry)
            if entry.startswith("."):
                continue
            if os.path.isdir(full):
                found[entry] = full
            elif entry.endswith(".onnx") and os.path.isfile(full):
                found.setdefault(entry[:-5], full)
        return found

    # ---- load / unload ---------------------------------------------------------------------
    def _entry(self, name: str) -> _Entry:
        e = self._entries.get(name)
        if e is None:
            e = self._entries[name] = _Entry()
        return e

    def _build(self, name: str, config_json: str | None, files: dict | None) -> dict:
        """Loads every version the policy selects (on a worker thread). Raises LoadError."""
        try:
            if config_json is not None:
                try:
                    import json
                    cfg = parse_config(json.loads(config_json))
                except ValueError as e:
                    raise ConfigError(f"the 'config' parameter: {e}") from None
            sources = {}
            if files:
                for key, b64 in files.items():
                    ver, _, fname = key[len("file:"):].partition("/")
                    if not _is_version(ver) or not fname.endswith(".onnx"):
                        raise ConfigError(f"parameter {key!r}: expected file:<version>/<name>.onnx")
                    try:
                        sources[int(ver)] = base64.b64decode(b64, validate=True)
                    except (ValueError, TypeError):
                        raise ConfigError(f"parameter {key!r}: not valid base64") from None
                if config_json is None:
                    cfg = ModelConfig()
            else:
                where = self.scan().get(name)
                if where is None:
                    raise NotFound(f"model '{name}' is not in the repository {self.path}")
                if os.path.isfile(where):
                    sources = {1: where}
                    if config_json is None:
                        cfg = ModelConfig()
                else:
                    if config_json is None:
                        cfg = load_config_file(where)
                    for v in os.listdir(where):
                        f = os.path.join(where, v, cfg.default_model_filename)
                        if _is_version(v) and os.path.isfile(f):
                            sources[int(v)] = f
                    if not sources:
                        raise ConfigError(f"{where} has no <version>/{cfg.default_model_filename}")
            chosen = select_versions(cfg.version_policy, list(sources))
            built = {}
            try:
                for v in chosen:
                    built[str(v)] = self._load_version(name, str(v), sources[v], cfg)
            except BaseException:
                for m in built.values():
                    m.runner.close(drain=False)
                raise
            return built
        except NotFound:
            raise
        except (ConfigError, runnx.RunnxError, OSError, ValueError) as e:
            raise LoadError(f"failed to load model '{name}': {e}") from None

    def _load_version(self, name, version, source, cfg: ModelConfig) -> ServedModel:
        so = runnx.SessionOptions()
        so.intra_op_num_threads = self.defaults.intra_op_threads
        sess = runnx.InferenceSession(source, so)
        rc = resolve(name, cfg, sess.get_inputs(), sess.get_outputs(), self.defaults)
        runner = make_runner(sess, rc)
        return ServedModel(name, version, rc, runner, ModelMetrics(name, version),
                           {t.name: t for t in rc.inputs}, [t.name for t in rc.outputs])

    async def load(self, name: str, config_json: str | None = None,
                   files: dict | None = None) -> None:
        """(Re)loads a model. Old versions keep serving until the new ones are ready."""
        e = self._entry(name)
        async with e.lock:
            e.state = "LOADING"
            try:
                built = await asyncio.to_thread(self._build, name, config_json, files)
            except NotFound:
                if not e.versions:
                    del self._entries[name]
                else:
                    e.state = "READY"
                raise
            except LoadError as err:
                e.reason = str(err)
                e.state = "READY" if e.versions else "UNAVAILABLE"
                logs.log("error", "model_load_failed", model=name, reason=e.reason)
                raise
            old, e.versions = e.versions, built
            e.state, e.reason = "READY", ""
            self._changed()
            logs.log("info", "model_loaded", model=name, versions=sorted(built),
                     max_batch_size=next(iter(built.values())).config.max_batch_size)
        await self._retire(list(old.values()))

    async def unload(self, name: str) -> None:
        e = self._entries.get(name)
        if e is None:
            if name not in self.scan():
                raise NotFound(f"unknown model '{name}'")
            return
        async with e.lock:
            old, e.versions = e.versions, {}
            e.state, e.reason = "UNAVAILABLE", "unloaded"
            self._changed()
        await self._retire(list(old.values()))
        logs.log("info", "model_unloaded", model=name)

    async def _retire(self, models: list[ServedModel]) -> None:
        # New requests no longer find these; the ones already queued are answered first.
        for m in models:
            await asyncio.to_thread(m.runner.close, True, 60.0)

    async def load_all(self) -> None:
        for name in self.scan():
            try:
                await self.load(name)
            except (LoadError, NotFound):
                pass  # logged; the model stays UNAVAILABLE with its reason

    async def close(self) -> None:
        for name in list(self._entries):
            await self.unload(name)

    # ---- lookups ---------------------------------------------------------------------------
    def get(self, name: str, version: str = "") -> ServedModel:
        e = self._entries.get(name)
        if e is None:
            raise NotFound(f"unknown model '{name}'")
        if not e.versions:
            if e.reason == "unloaded":
                raise NotFound(f"model '{name}' is not loaded")
            raise Unavailable(f"model '{name}' is not ready"
                              + (f": {e.reason}" if e.reason else f" ({e.state.lower()})"))
        if not version:
            return e.versions[max(e.versions, key=int)]
        m = e.versions.get(version)
        if m is None:
            raise NotFound(f"model '{name}' has no version '{version}' loaded "
                           f"(loaded: {sorted(e.versions, key=int)})")
        return m

    def versions(self, name: str) -> list[str]:
        e = self._entries.get(name)
        return sorted(e.versions, key=int) if e else []

    def served(self) -> list[ServedModel]:
        return [m for e in list(self._entries.values()) for m in list(e.versions.values())]

    def all_ready(self) -> bool:
        return all(e.versions for e in self._entries.values() if e.reason != "unloaded")

    def index(self, ready_only: bool = False) -> list[dict]:
        out = []
        names = set(self.scan()) | set(self._entries)
        for name in sorted(names):
            e = self._entries.get(name)
            if e and e.versions:
                for v in sorted(e.versions, key=int):
                    out.append({"name": name, "version": v, "state": e.state, "reason": ""})
            elif not ready_only:
                out.append({"name": name, "version": "", "state": e.state if e else "UNAVAILABLE",
                            "reason": e.reason if e else "not loaded"})
        return out
