"""The ASGI app called directly with scripted receive/send (no sockets): routing, auth, body
framing in several messages, limits, and the draining flag."""

import asyncio
import json

import numpy as np
from runnx.server import App, Repository, ServeDefaults
from runnx.server.kserve import decode_infer_response, encode_infer_request
from server_helpers import DEMO, _save, fixed_model, scale_model


def call(app, method, path, chunks=(b"",), headers=()):
    """Runs one request; returns (status, headers dict, body)."""
    msgs = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return msgs.pop(0) if msgs else {"type": "http.disconnect"}

    async def send(m):
        sent.append(m)

    scope = {"type": "http", "method": method, "path": path,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}
    asyncio.get_event_loop().run_until_complete(app(scope, receive, send))
    start, body = sent
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    h = dict(start["headers"])
    assert int(h[b"content-length"]) == len(body["body"])
    return start["status"], h, body["body"]


def with_app(fn, repo=DEMO, **kw):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        app = App(Repository(repo, ServeDefaults(intra_op_threads=1)), **kw)
        loop.run_until_complete(app.startup())
        try:
            fn(app)
        finally:
            loop.run_until_complete(app.shutdown())
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_routes_and_methods():
    def check(app):
        assert call(app, "GET", "/v2/health/live")[0] == 200
        assert call(app, "GET", "/v2/")[0] == 200           # trailing slash
        status, h, body = call(app, "PUT", "/v2/models/mlp")
        assert status == 405 and h[b"allow"] == b"GET"
        assert json.loads(body)["error"].startswith("method PUT")
        for path in ("/", "/v1/models/mlp", "/v2/models", "/v2/models/mlp/versions",
                     "/v2/models/mlp/versions/1/ready/x", "/v2/repository/models/mlp/destroy"):
            method = "POST" if "repository" in path else "GET"
            status, _, body = call(app, method, path)
            assert status == 404 and "error" in json.loads(body), path
    with_app(check)


def test_body_in_many_messages_and_limit():
    x = np.arange(64, dtype=np.float32).reshape(1, 64)
    body, hl = encode_infer_request({"input": x}, binary=True, binary_output=True)
    pieces = [body[i:i + 7] for i in range(0, len(body), 7)]

    def check(app):
        status, h, data = call(app, "POST", "/v2/models/mlp/infer", pieces,
                               [("Inference-Header-Content-Length", str(hl))])
        assert status == 200
        out = decode_infer_response(data, int(h[b"inference-header-content-length"]))
        assert out["outputs"]["output"].shape == (1, 1)
        # no Content-Length: the limit is enforced while reading
        status, h, data = call(app, "POST", "/v2/models/mlp/infer",
                               [b"x" * 100] * (len(body) // 100 + 2))
        assert status == 413 and h[b"connection"] == b"close"
        status, _, data = call(app, "POST", "/v2/models/mlp/infer", [b"{}"],
                               [("Content-Length", str(len(body) + 11))])
        assert status == 413
    with_app(check, max_body_bytes=len(body) + 10)


def test_auth_and_draining():
    def check(app):
        assert call(app, "GET", "/v2")[0] == 401
        assert call(app, "GET", "/v2", headers=[("Authorization", "Bearer t0k")])[0] == 200
        assert call(app, "GET", "/v2", headers=[("Authorization", "bearer t0k")])[0] == 401
        assert call(app, "GET", "/v2/health/ready")[0] == 200
        app.draining = True
        assert call(app, "GET", "/v2/health/ready")[0] == 400
        assert call(app, "GET", "/v2/health/live")[0] == 200
    with_app(check, auth_token="t0k")


def test_one_header_checked_against_each_model(tmp_path):
    """A repeated request header is checked once per model version: what one accepts, another
    with other input shapes still refuses, and each version answers with its own weights."""
    for v in (1, 2):
        _save(scale_model(float(v)), str(tmp_path / "scale" / str(v) / "model.onnx"))
    (tmp_path / "scale" / "config.json").write_text(
        json.dumps({"version_policy": {"all": {}}, "max_batch_size": 8}))
    _save(fixed_model(), str(tmp_path / "fixed" / "1" / "model.onnx"))
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    body, hl = encode_infer_request({"x": x}, binary_output=True)
    headers = [("Inference-Header-Content-Length", str(hl))]

    def check(app):
        for _ in range(2):
            for v in (1, 2):
                status, h, data = call(app, "POST", f"/v2/models/scale/versions/{v}/infer",
                                       (body,), headers)
                assert status == 200
                out = decode_infer_response(data, int(h[b"inference-header-content-length"]))
                np.testing.assert_allclose(out["outputs"]["y"], x * v, rtol=1e-6)
            status, _, data = call(app, "POST", "/v2/models/fixed/infer", (body,), headers)
            assert status == 400 and "shape [2, 4]" in json.loads(data)["error"]
    with_app(check, repo=str(tmp_path))
