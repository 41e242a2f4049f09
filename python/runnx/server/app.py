"""The KServe v2 HTTP API as a plain ASGI application (no framework): routing, auth, body limits,
error bodies, and the inference path from request bytes to the model's runner and back.

Status codes: 400 bad request, 401 missing/wrong token, 404 unknown route/model/version, 405 wrong
method, 413 body over the limit, 429 queue full (with Retry-After), 503 not ready or unloading
(with Retry-After), 504 deadline passed in the queue, 500 the model failed. Every error has the
body ``{"error": "<message>"}``; health answers carry an empty body (the status is the answer).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import os
import time
import weakref
import zlib

import runnx

from . import logs
from .kserve import (
    DATATYPES,
    ProtocolError,
    binary_inputs,
    decode_infer_request,
    encode_infer_response,
)
from .metrics import BATCH_BUCKETS, LATENCY_BUCKETS_S, merge_prometheus_states, prometheus_text
from .repository import LoadError, NotFound, Repository, ServedModel, Unavailable
from .runner import BatcherClosed, BatcherRunner, Closed, DeadlineExceeded, Overloaded, QueueFull
from .shared_stats import SharedStats, merge_model_stats

EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics",
              "schedule_policy"]
RETRY_AFTER_S = b"1"
_JSON = b"application/json"


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: tuple = (), outcome: str = "failure"):
        super().__init__(message)
        self.status, self.message, self.headers, self.outcome = status, message, headers, outcome


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _Ctx:
    """One HTTP request being answered."""

    __slots__ = ("headers", "model", "receive", "rid", "scope", "send", "status", "t0")

    def __init__(self, scope, receive, send, headers, rid):
        self.scope, self.receive, self.send, self.rid = scope, receive, send, rid
        self.headers = headers  # lower-case name -> value; the first of repeated ones
        self.t0 = time.perf_counter()
        self.status = 0
        self.model = None


class App:
    """``App(repository, auth_token=..., max_body_bytes=...)`` is an ASGI 3 application."""

    def __init__(self, repo: Repository, *, auth_token: str | None = None,
                 max_body_bytes: int = 64 << 20, access_log: bool = False,
                 load_on_startup: bool = True, multi_process: bool = False,
                 fast_path: bool = True, stats_dir: str | None = None):
        self.repo = repo
        self._token = f"Bearer {auth_token}".encode() if auth_token else None
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.load_on_startup = load_on_startup
        # One of several processes on the port (--workers): statistics and models are this
        # process's own, so neither is advertised as the server's, and load/unload is refused.
        self.multi_process = multi_process
        # --workers: the processes' statistics meet in this folder (shared_stats.py), so /stats
        # answers for all of them.
        self.shared = SharedStats(stats_dir) if stats_dir else None
        self._publisher: asyncio.Task | None = None
        self._published = None
        self.extensions = [e for e in EXTENSIONS if not multi_process or e not in (
            ("model_repository",) if self.shared else ("model_repository", "statistics"))]
        self.draining = False                   # set at SIGTERM: ready turns false
        self.http_codes: dict[int, int] = {}
        self._rid_prefix = f"{os.getpid():x}-"
        self._rid_counter = itertools.count(1)
        self._infer_paths: dict[str, tuple[str, str]] = {}  # path -> (model, version)
        # The C++ fast path for repeated binary inference requests (see _learn); the HTTP
        # server hands it whole requests. Off with the access log (it logs every request).
        self.fast = None
        if fast_path and hasattr(runnx._C, "FastInfer") and not access_log:
            self.fast = runnx._C.FastInfer(
                self._token or b"", max_body_bytes, self._rid_prefix,
                list(LATENCY_BUCKETS_S), [float(b) for b in BATCH_BUCKETS])
            self._rid_counter = iter(self.fast.next_rid, None)  # one numbering for both paths
            repo.on_change.append(self.fast.clear)

    # ---- ASGI entry ------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def startup(self) -> None:
        """Loads the repository's models (a model that fails is reported, not fatal)."""
        if self.load_on_startup:
            await self.repo.load_all()
        if self.shared is not None:
            self.shared.publish(self._own_stats())
            self._publisher = asyncio.get_running_loop().create_task(
                self.shared.publish_forever(self._own_stats, self._stats_changed))
        logs.log("info", "server_ready", models=[m["name"] for m in self.repo.index(True)])

    async def shutdown(self) -> None:
        """Closes every model's runner, draining anything still queued. The server calls it
        after the requests in flight were answered."""
        if self._publisher is not None:
            self._publisher.cancel()
            self.shared.publish(self._own_stats())
        await self.repo.close()
        logs.log("info", "server_stopped")

    async def _lifespan(self, receive, send):
        # For other ASGI servers (uvicorn ... --lifespan on); runnx's own calls the methods.
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as e:  # noqa: BLE001  (reported to the server, which exits)
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope, receive, send):
        headers = dict(reversed(scope["headers"]))
        rid_h = headers.get(b"x-request-id")
        rid = rid_h.decode("latin-1")[:128] if rid_h else \
            f"{self._rid_prefix}{next(self._rid_counter):x}"
        ctx = _Ctx(scope, receive, send, headers, rid)
        try:
            await self._route(ctx)
        except HttpError as e:
            if ctx.model is not None:
                ctx.model.metrics.failure(e.outcome, time.perf_counter() - ctx.t0)
            await self._error(ctx, e)
        except Exception as e:  # noqa: BLE001  (a bug must not kill the connection silently)
            logs.log("error", "internal_error", request_id=rid, path=scope["path"],
                     error=f"{type(e).__name__}: {e}")
            await self._error(ctx, HttpError(500, f"internal error: {type(e).__name__}: {e}"))
        if self.access_log:
            logs.log("info", "request", request_id=rid,
                     method=scope["method"], path=scope["path"], status=ctx.status,
                     ms=round((time.perf_counter() - ctx.t0) * 1e3, 3))

    async def _respond(self, ctx: _Ctx, status: int, body: bytes = b"",
                       content_type: bytes | None = _JSON, headers: tuple = ()) -> None:
        h = [(b"content-length", str(len(body)).encode()),
             (b"x-request-id", ctx.rid.encode("latin-1", "replace"))]
        if content_type is not None and body:
            h.append((b"content-type", content_type))
        h.extend(headers)
        ctx.status = status
        self.http_codes[status] = self.http_codes.get(status, 0) + 1
        await ctx.send({"type": "http.response.start", "status": status, "headers": h})
        await ctx.send({"type": "http.response.body", "body": body})

    async def _error(self, ctx: _Ctx, e: HttpError) -> None:
        if ctx.status:
            return  # a response already started; nothing more can be said
        if e.status >= 400 and logs.enabled("info"):
            logs.log("info" if e.status < 500 else "error", "request_error", request_id=ctx.rid,
                     method=ctx.scope["method"], path=ctx.scope["path"], status=e.status,
                     error=e.message)
        await self._respond(ctx, e.status, _json({"error": e.message}), headers=e.headers)

    # ---- routing ---------------------------------------------------------------------------
    async def _route(self, ctx: _Ctx) -> None:
        method = ctx.scope["method"]
        path = ctx.scope["path"]
        infer = self._infer_paths.get(path)
        if infer is not None and method == "POST":  # a path seen before: skip the parsing
            self._auth(ctx)
            return await self._infer(ctx, *infer)
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["v2", "health"] and parts[2] in ("live", "ready"):
            self._method(method, "GET")
            ok = parts[2] == "live" or (not self.draining and self.repo.all_ready())
            return await self._respond(ctx, 200 if ok else 400)
        self._auth(ctx)
        if parts == ["metrics"]:
            self._method(method, "GET")
            states, codes = self._own_metrics(), dict(self._http_codes())
            if self.shared is not None:  # --workers: add up every worker's counters
                others = self.shared.others()
                states = merge_prometheus_states(states + [s for o in others for s in o["metrics"]])
                for o in others:
                    for code, n in o["http_codes"].items():
                        codes[int(code)] = codes.get(int(code), 0) + n
            text = prometheus_text(states, codes)
            return await self._respond(ctx, 200, text.encode(),
                                       b"text/plain; version=0.0.4; charset=utf-8")
        if parts[0] != "v2":
            raise HttpError(404, f"unknown route {ctx.scope['path']}")
        rest = parts[1:]
        if not rest or rest == [""]:
            self._method(method, "GET")
            return await self._respond(ctx, 200, _json(
                {"name": "runnx", "version": runnx.__version__, "extensions": self.extensions}))
        if rest[0] == "models":
            return await self._model_route(ctx, method, rest[1:])
        if rest[0] == "repository":
            return await self._repository_route(ctx, method, rest[1:])
        raise HttpError(404, f"unknown route {ctx.scope['path']}")

    @staticmethod
    def _method(method: str, allowed: str) -> None:
        if method != allowed:
            raise HttpError(405, f"method {method} is not allowed here (use {allowed})",
                            ((b"allow", allowed.encode()),))

    def _auth(self, ctx: _Ctx) -> None:
        if self._token is None:
            return
        got = ctx.headers.get(b"authorization")
        if got is None or not hmac.compare_digest(got, self._token):
            raise HttpError(401, "missing or invalid bearer token" if got is None or
                            not got.startswith(b"Bearer ") else "invalid bearer token",
                            ((b"www-authenticate", b'Bearer realm="runnx"'),))

    async def _model_route(self, ctx: _Ctx, method: str, rest: list[str]) -> None:
        # rest: [m] | [m, action] | [m, "versions", v] | [m, "versions", v, action] | ["stats"]
        if rest == ["stats"]:
            self._method(method, "GET")
            return await self._stats(ctx, None, "")
        if not rest or not rest[0]:
            raise HttpError(404, f"unknown route {ctx.scope['path']}")
        name, version, action = rest[0], "", ""
        tail = rest[1:]
        if tail[:1] == ["versions"]:
            if len(tail) < 2 or not tail[1]:
                raise HttpError(404, f"unknown route {ctx.scope['path']}")
            version, tail = tail[1], tail[2:]
        if len(tail) > 1:
            raise HttpError(404, f"unknown route {ctx.scope['path']}")
        action = tail[0] if tail else ""
        if action == "infer":
            self._method(method, "POST")
            if len(self._infer_paths) >= 1024:
                self._infer_paths.clear()
            self._infer_paths[ctx.scope["path"]] = (name, version)
            return await self._infer(ctx, name, version)
        if action not in ("", "ready", "config", "stats"):
            raise HttpError(404, f"unknown route {ctx.scope['path']}")
        self._method(method, "GET")
        if action == "stats":
            return await self._stats(ctx, name, version)
        if action == "ready":
            try:
                self._model(name, version)
                ok = True
            except HttpError:
                ok = False
            return await self._respond(ctx, 200 if ok else 400)
        m = self._model(name, version)
        if action == "config":
            return await self._respond(ctx, 200, _json(m.config.triton_json()))
        return await self._respond(ctx, 200, _json(m.metadata(self.repo.versions(name))))

    def _model(self, name: str, version: str) -> ServedModel:
        try:
            return self.repo.get(name, version)
        except NotFound as e:
            raise HttpError(404, str(e)) from None
        except Unavailable as e:
            raise HttpError(503, str(e), ((b"retry-after", RETRY_AFTER_S),)) from None

    async def _stats(self, ctx: _Ctx, name: str | None, version: str) -> None:
        if name is None:
            models = self.repo.served()
        elif version:
            models = [self._model(name, version)]
        else:
            self._model(name, "")
            models = [m for m in self.repo.served() if m.name == name]
        stats = [m.metrics.triton_stats(*m.runner.executions()) for m in models]
        if self.shared is not None:
            others = [s for o in self.shared.others() for s in o["stats"]]
            stats = [merge_model_stats([s, *(o for o in others if o["name"] == s["name"]
                                            and o["version"] == s["version"])]) for s in stats]
        await self._respond(ctx, 200, _json({"model_stats": stats}))

    def _http_codes(self) -> dict[int, int]:
        if self.fast is not None:  # the fast path counts its own 200s
            self.http_codes[200] = self.http_codes.get(200, 0) + self.fast.take_responses_ok()
        return self.http_codes

    def _own_metrics(self) -> list[dict]:
        return [m.metrics.prometheus_state(m.runner.queue_depth()) for m in self.repo.served()]

    def _own_stats(self) -> dict:
        """What this worker publishes for the others: Triton statistics and /metrics counters."""
        return {"stats": [m.metrics.triton_stats(*m.runner.executions())
                          for m in self.repo.served()],
                "metrics": self._own_metrics(), "http_codes": self._http_codes()}

    def _stats_changed(self) -> bool:
        seen = [sum(self._http_codes().values())]
        for m in self.repo.served():
            m.metrics.sync()
            seen.append((id(m), sum(m.metrics.outcomes.values()), m.runner.queue_depth()))
        if seen == self._published:
            return False
        self._published = seen
        return True

    async def _repository_route(self, ctx: _Ctx, method: str, rest: list[str]) -> None:
        self._method(method, "POST")
        if rest == ["index"]:
            body = await self._json_body(ctx)
            ready = bool(body.get("ready", False))
            return await self._respond(ctx, 200, _json(self.repo.index(ready)))
        if len(rest) == 3 and rest[0] == "models" and rest[2] in ("load", "unload"):
            if self.multi_process:
                raise HttpError(400, f"model {rest[2]} is not available when several server "
                                     f"processes share the port (--workers): each has its own "
                                     f"models")
            name = rest[1]
            body = await self._json_body(ctx)
            params = body.get("parameters") or {}
            if not isinstance(params, dict):
                raise HttpError(400, "'parameters' must be a JSON object")
            try:
                if rest[2] == "load":
                    files = {k: v for k, v in params.items() if k.startswith("file:")}
                    config = params.get("config")
                    if config is not None and not isinstance(config, str):
                        config = json.dumps(config)
                    await self.repo.load(name, config, files or None)
                else:
                    await self.repo.unload(name)
            except NotFound as e:
                raise HttpError(404, str(e)) from None
            except LoadError as e:
                raise HttpError(400, str(e)) from None
            return await self._respond(ctx, 200)
        raise HttpError(404, f"unknown route {ctx.scope['path']}")

    # ---- bodies ----------------------------------------------------------------------------
    async def _body(self, ctx: _Ctx) -> bytes:
        limit = self.max_body_bytes
        cl = ctx.headers.get(b"content-length")
        if cl is not None and int(cl) > limit:
            raise self._too_big()  # before reading: with Expect: 100-continue the client sends nothing
        chunks, total = [], 0
        while True:
            msg = await ctx.receive()
            if msg["type"] == "http.disconnect":
                raise HttpError(400, "the client disconnected")
            chunk = msg.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise self._too_big()
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        enc = ctx.headers.get(b"content-encoding")
        if enc and enc.lower() not in (b"identity",):
            body = self._decompress(body, enc.lower(), limit)
        return body

    def _too_big(self) -> HttpError:
        return HttpError(413, f"request body exceeds the limit of {self.max_body_bytes} bytes",
                         ((b"connection", b"close"),))

    def _decompress(self, body: bytes, enc: bytes, limit: int) -> bytes:
        wbits = {b"gzip": 31, b"deflate": 15}.get(enc)
        if wbits is None:
            raise HttpError(400, f"unsupported Content-Encoding {enc.decode('latin-1')!r}")
        try:
            d = zlib.decompressobj(wbits)
            out = d.decompress(body, limit + 1)
        except zlib.error as e:
            raise HttpError(400, f"cannot decompress the body: {e}") from None
        if len(out) > limit or d.unconsumed_tail:
            raise self._too_big()
        return out

    async def _json_body(self, ctx: _Ctx) -> dict:
        body = await self._body(ctx)
        if not body.strip():
            return {}
        try:
            obj = json.loads(body)
        except ValueError as e:
            raise HttpError(400, f"malformed JSON in the request: {e}") from None
        if not isinstance(obj, dict):
            raise HttpError(400, "the request body must be a JSON object")
        return obj

    # ---- inference -------------------------------------------------------------------------
    async def _infer(self, ctx: _Ctx, name: str, version: str) -> None:
        model = self._model(name, version)
        ctx.model = model
        body = await self._body(ctx)
        hl = ctx.headers.get(b"inference-header-content-length")
        try:
            header_len = None if hl is None else int(hl)
        except ValueError:
            raise HttpError(400, "Inference-Header-Content-Length must be an integer") from None
        try:
            req = decode_infer_request(body, header_len)
        except ProtocolError as e:
            raise HttpError(400, str(e)) from None
        # What the checks derive from the header (shapes, datatypes, outputs, parameters) is kept
        # with the codec's cached header, per model: a repeated header is checked once.
        memo = req.memo
        derived = memo.get(id(model)) if memo is not None else None
        if derived is None or derived[0]() is not model:
            derived = (weakref.ref(model), *self._derive(model, req))
            if memo is not None:
                memo[id(model)] = derived
        _, rows, names, binary, priority, timeout_us = derived
        try:
            res = await model.runner.infer(req.inputs, names, priority, timeout_us)
        except HttpError:
            raise
        except Exception as e:  # noqa: BLE001  (mapped to a status below)
            raise self._run_error(model, e) from None
        outs = res.outputs
        if self.fast is not None and memo is not None:
            self._learn(ctx, model, req, body[:header_len], names or model.output_names, binary,
                        outs, priority, timeout_us, rows)
        try:
            body, header_len = encode_infer_response(
                model.name, model.version, req.id,
                [(n, outs[n], b) for n, b in zip(names or model.output_names, binary)])
        except ProtocolError as e:
            raise HttpError(400, str(e)) from None
        headers = ()
        ctype = _JSON
        if header_len is not None:
            headers = ((b"inference-header-content-length", str(header_len).encode()),)
            ctype = b"application/octet-stream"
        model.metrics.success(rows, res.queue_us, res.compute_us, res.batch_size,
                              time.perf_counter() - ctx.t0)
        await self._respond(ctx, 200, body, ctype, headers)

    def _learn(self, ctx: _Ctx, model: ServedModel, req, header: bytes, names: list[str],
               binary: list[bool], outs: dict, priority: int, timeout_us: int,
               rows: int) -> None:
        """Teaches the fast path a request just answered: its route and JSON header, with what
        was derived from them. A later request with the same route and header bytes then runs
        in C++ from bytes to bytes (same checks, same response)."""
        path = ctx.scope.get("raw_path")
        if not path or ctx.scope.get("query_string") or \
                not isinstance(model.runner, BatcherRunner) or self.fast.knows(path, header):
            return
        inputs = binary_inputs(header)
        if inputs is None or any(DATATYPES[dt][0] is None or dt == "BYTES" for _, dt, _, _ in inputs):
            return
        if any(outs[n].dtype.kind not in "biuf" for n in names):
            return
        prefix = (f'{{"model_name":{json.dumps(model.name)},"model_version":'
                  f'{json.dumps(model.version)}'
                  + ("" if req.id is None else f',"id":{json.dumps(req.id)}') + ',"outputs":[')
        stats = self.fast.learn(
            path, model, model.runner.batcher._delivery.core, header,
            [(n, DATATYPES[dt][0], shape, size) for n, dt, shape, size in inputs],
            [(n, f'{{"name":{json.dumps(n)},"datatype":"', b) for n, b in zip(names, binary)],
            prefix,
            priority, timeout_us, rows)
        model.metrics.attach(stats)

    async def fast_failed(self, send, model: ServedModel, exc: Exception, e2e_s: float,
                          rid: str, path: str) -> None:
        """Answers a request of the fast path that failed in the batcher, as _infer would."""
        ctx = _Ctx({"method": "POST", "path": path}, None, send, {}, rid)
        ctx.model = model
        e = self._run_error(model, exc)
        model.metrics.failure(e.outcome, e2e_s)
        await self._error(ctx, e)

    def _derive(self, model: ServedModel, req) -> tuple:
        """(rows, output names or None, binary flags, batcher priority, timeout_us); raises
        HttpError 400."""
        rows = self._check_inputs(model, req)
        names, binary = self._requested_outputs(model, req)
        try:
            return rows, names, binary, model.config.batcher_priority(req.priority), req.timeout_us
        except ValueError as e:  # ProtocolError included
            raise HttpError(400, str(e)) from None

    @staticmethod
    def _run_error(model: ServedModel, e: Exception) -> HttpError:
        retry = ((b"retry-after", RETRY_AFTER_S),)
        if isinstance(e, Overloaded) or (QueueFull is not None and isinstance(e, QueueFull)):
            return HttpError(429, f"model '{model.name}' is overloaded: {e}", retry, "rejected")
        if isinstance(e, runnx.ResourceExhausted):
            return HttpError(503, f"model '{model.name}': {e}", retry, "rejected")
        if (DeadlineExceeded is not None and isinstance(e, DeadlineExceeded)) or \
                isinstance(e, TimeoutError):
            return HttpError(504, f"model '{model.name}': {e}", (), "expired")
        if isinstance(e, Closed) or (BatcherClosed is not None and isinstance(e, BatcherClosed)):
            return HttpError(503, f"model '{model.name}' is being unloaded", retry, "rejected")
        if isinstance(e, runnx.InvalidArgument):
            return HttpError(400, str(e))
        logs.log("error", "inference_failed", model=model.name, version=model.version,
                 error=f"{type(e).__name__}: {e}")
        return HttpError(500, f"model '{model.name}' failed: {e}")

    @staticmethod
    def _check_inputs(model: ServedModel, req) -> int:
        """Names, datatypes and shapes against the model; returns the batch size (rows)."""
        specs = model.input_specs
        mbs = model.config.max_batch_size
        rows = None
        for name, a in req.inputs.items():
            spec = specs.get(name)
            if spec is None:
                raise HttpError(400, f"unknown input '{name}' for model '{model.name}' "
                                     f"(inputs: {sorted(specs)})")
            dt = req.datatypes[name]
            if dt != spec.datatype:
                raise HttpError(400, f"input '{name}': datatype {dt} does not match the model's "
                                     f"{spec.datatype}")
            shape = a.shape
            dims = shape[1:] if mbs > 0 else shape
            want = ([-1] if mbs > 0 else []) + list(spec.dims)
            if len(shape) != len(want) or any(s != -1 and d != s for d, s in zip(dims, spec.dims)):
                raise HttpError(400, f"input '{name}': shape {list(shape)} does not match the "
                                     f"model's {want}")
            if mbs > 0:
                b = shape[0]
                if b < 1 or b > mbs:
                    raise HttpError(400, f"input '{name}': batch size {b} must be between 1 and "
                                         f"max_batch_size {mbs}")
                if rows is not None and b != rows:
                    raise HttpError(400, f"input '{name}': batch size {b} differs from the other "
                                         f"inputs' {rows}")
                rows = b
        missing = [n for n in specs if n not in req.inputs]
        if missing:
            raise HttpError(400, f"missing input(s) {missing} for model '{model.name}'")
        return rows or 1

    @staticmethod
    def _requested_outputs(model: ServedModel, req) -> tuple[list[str] | None, list[bool]]:
        if req.outputs is None:
            return None, [req.binary_output] * len(model.output_names)
        names, binary = [], []
        known = set(model.output_names)
        for o in req.outputs:
            if o.name not in known:
                raise HttpError(400, f"unknown output '{o.name}' for model '{model.name}' "
                                     f"(outputs: {model.output_names})")
            names.append(o.name)
            binary.append(req.binary_output if o.binary is None else o.binary)
        return names, binary
