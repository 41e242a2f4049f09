"""The server over real loopback sockets with raw HTTP: routes, inference in JSON and binary, and
every error path with its status code and message."""

import gzip
import json
import socket

import numpy as np
import pytest
import runnx
from runnx.server.kserve import encode_infer_request
from server_helpers import DEMO, Http

RNG = np.random.default_rng(3)


def test_health_and_server_metadata(http):
    status, headers, body = http.request("GET", "/v2/health/live")
    assert (status, body) == (200, b"") and headers["content-length"] == "0"
    # Not ready: every model must be, and 'broken' failed to load (test_repository unloads it).
    status, headers, body = http.request("GET", "/v2/health/ready")
    assert (status, body) == (400, b"")
    status, meta = http.get_json("/v2")
    assert status == 200 and meta["name"] == "runnx" and meta["version"] == runnx.__version__
    for ext in ("binary_tensor_data", "statistics", "model_repository", "model_configuration"):
        assert ext in meta["extensions"]
    status, _, body = http.request("POST", "/v2/health/live")
    assert status == 405 and "GET" in json.loads(body)["error"]


def test_model_metadata_config_ready(http):
    status, meta = http.get_json("/v2/models/mlp")
    assert status == 200
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 1]}]
    assert meta["versions"] == ["1"] and meta["platform"]
    status, cfg = http.get_json("/v2/models/mlp/config")
    assert status == 200 and cfg["max_batch_size"] == 16
    assert cfg["input"] == [{"name": "input", "data_type": "TYPE_FP32", "format": "FORMAT_NONE",
                             "dims": [64], "is_shape_tensor": False, "allow_ragged_batch": False,
                             "optional": False}]
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert http.request("GET", "/v2/models/mlp/ready")[0] == 200
    assert http.request("GET", "/v2/models/mlp/versions/1/ready")[0] == 200
    assert http.request("GET", "/v2/models/mlp/versions/7/ready")[0] == 400
    status, cfg = http.get_json("/v2/models/fixed/config")
    assert cfg["max_batch_size"] == 0 and cfg["input"][0]["dims"] == [2, 3]
    status, meta = http.get_json("/v2/models/types")
    assert {t["name"]: t["datatype"] for t in meta["inputs"]} == {
        "f16": "FP16", "i64": "INT64", "b": "BOOL", "u8": "UINT8"}


@pytest.mark.parametrize("binary", [True, False])
def test_infer_matches_session(http, binary):
    sess = runnx.InferenceSession(DEMO)
    for batch in (1, 5, 16):
        x = RNG.standard_normal((batch, 64)).astype(np.float32)
        status, resp = http.infer("mlp", {"input": x}, binary=binary, binary_output=binary)
        assert status == 200, resp
        assert resp["model_name"] == "mlp" and resp["model_version"] == "1"
        y = resp["outputs"]["output"]
        assert y.shape == (batch, 1) and y.dtype == np.float32
        np.testing.assert_allclose(y, sess.run(None, {"input": x})[0], rtol=1e-5, atol=1e-6)


def test_infer_every_datatype_roundtrips(http):
    feeds = {"f16": RNG.standard_normal((4, 3)).astype(np.float16),
             "i64": RNG.integers(-2**50, 2**50, (4, 3)),
             "b": RNG.random((4, 3)) < 0.5,
             "u8": RNG.integers(0, 256, (4, 3)).astype(np.uint8)}
    for binary in (True, False):
        status, resp = http.infer("types", feeds, binary=binary, binary_output=binary)
        assert status == 200, resp
        for k, v in feeds.items():
            got = resp["outputs"][f"{k}_out"]
            assert got.dtype == v.dtype
            np.testing.assert_array_equal(got, v)


def test_requested_outputs_mixed_binary_and_id_echo(http):
    feeds = {"f16": np.ones((1, 3), np.float16), "i64": np.arange(3).reshape(1, 3),
             "b": np.zeros((1, 3), bool), "u8": np.zeros((1, 3), np.uint8)}
    body, hl = encode_infer_request(feeds, binary=True)
    req_json = json.loads(body[:hl])
    req_json["id"] = "abc"
    req_json["outputs"] = [{"name": "i64_out"}, {"name": "f16_out",
                                                 "parameters": {"binary_data": True}}]
    header = json.dumps(req_json).encode()
    status, h, data = http.request("POST", "/v2/models/types/infer", header + body[hl:],
                                   {"Inference-Header-Content-Length": str(len(header))})
    assert status == 200
    n = int(h["inference-header-content-length"])
    resp = json.loads(data[:n])
    assert resp["id"] == "abc" and [o["name"] for o in resp["outputs"]] == ["i64_out", "f16_out"]
    assert resp["outputs"][0]["data"] == [0, 1, 2] and "parameters" not in resp["outputs"][0]
    assert resp["outputs"][1]["parameters"] == {"binary_data_size": 6}
    assert np.frombuffer(data[n:], np.float16).tolist() == [1.0, 1.0, 1.0]


def test_unbatched_model(http):
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    status, resp = http.infer("fixed", {"x": x})
    assert status == 200
    np.testing.assert_allclose(resp["outputs"]["y"], 2 * x)
    status, resp = http.infer("fixed", {"x": np.zeros((1, 2, 3), np.float32)})
    assert status == 400 and "does not match the model's [2, 3]" in resp["error"]


def _err(http, method, path, body=None, headers=None):
    status, h, data = http.request(method, path, body, headers)
    assert h["content-type"] == "application/json"
    return status, json.loads(data)["error"]


def test_error_unknown_model_version_route(http):
    x = {"input": np.zeros((1, 64), np.float32)}
    status, resp = http.infer("nope", x)
    assert status == 404 and resp["error"] == "unknown model 'nope'"
    status, resp = http.infer("mlp", x, version="9")
    assert status == 404 and "no version '9'" in resp["error"]
    assert _err(http, "GET", "/v2/models/nope") == (404, "unknown model 'nope'")
    assert _err(http, "GET", "/v2/models/nope/config")[0] == 404
    assert _err(http, "GET", "/v3/x")[0] == 404
    assert _err(http, "GET", "/v2/models/mlp/explode")[0] == 404
    status, msg = _err(http, "GET", "/v2/models/mlp/infer")
    assert status == 405 and "POST" in msg


def test_error_wrong_dtype_shape_names(http):
    status, resp = http.infer("mlp", {"input": np.zeros((1, 64), np.float64)})
    assert status == 400 and resp["error"] == \
        "input 'input': datatype FP64 does not match the model's FP32"
    status, resp = http.infer("mlp", {"input": np.zeros((1, 63), np.float32)})
    assert status == 400 and resp["error"] == \
        "input 'input': shape [1, 63] does not match the model's [-1, 64]"
    status, resp = http.infer("mlp", {"input": np.zeros((64,), np.float32)})
    assert status == 400 and "shape [64]" in resp["error"]
    status, resp = http.infer("mlp", {"input": np.zeros((17, 64), np.float32)})
    assert status == 400 and "max_batch_size 16" in resp["error"]
    status, resp = http.infer("mlp", {"x": np.zeros((1, 64), np.float32)})
    assert status == 400 and "unknown input 'x'" in resp["error"]
    status, resp = http.infer("types", {"u8": np.zeros((1, 3), np.uint8)})
    assert status == 400 and "missing input(s)" in resp["error"] and "'f16'" in resp["error"]
    status, resp = http.infer("mlp", {"input": np.zeros((1, 64), np.float32)}, outputs=["zz"])
    assert status == 400 and "unknown output 'zz'" in resp["error"]


def test_error_malformed_bodies(http):
    path = "/v2/models/mlp/infer"
    status, msg = _err(http, "POST", path, b'{"inputs": [')
    assert status == 400 and msg.startswith("malformed JSON in the request")
    status, msg = _err(http, "POST", path, b'{"inputs": [{"name": "input", "shape": [1, 64], '
                       b'"datatype": "FP32", "data": [1, 2]}]}')
    assert status == 400 and msg == "input 'input': shape [1, 64] needs 64 elements, data has 2"
    status, msg = _err(http, "POST", path, b"{}", {"Inference-Header-Content-Length": "x"})
    assert status == 400 and "Inference-Header-Content-Length" in msg
    status, msg = _err(http, "POST", path, b'{"inputs":[]}',
                       {"Inference-Header-Content-Length": "99"})
    assert status == 400 and "outside the body" in msg
    status, msg = _err(http, "POST", path, b"x", {"Content-Encoding": "br"})
    assert status == 400 and "Content-Encoding" in msg


def test_gzip_body_and_no_content_type(http):
    x = RNG.standard_normal((2, 64)).astype(np.float32)
    body, _ = encode_infer_request({"input": x}, binary=False)
    status, _, data = http.request("POST", "/v2/models/mlp/infer", gzip.compress(body),
                                   {"Content-Encoding": "gzip",
                                    "Content-Type": "application/octet-stream"})
    assert status == 200 and np.array(json.loads(data)["outputs"][0]["data"]).shape == (2,)


def test_body_over_limit():
    from runnx.server import Server
    with Server(DEMO, port=0, max_body_bytes=1000) as srv:  # a single .onnx file: model "mlp"
        for framing in (b"Content-Length: 2000\r\n", b"Transfer-Encoding: chunked\r\n"):
            body = b"{" + b" " * 1998 + b"}"
            if b"chunked" in framing:
                body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 500]), body[i:i + 500])
                                for i in range(0, len(body), 500)) + b"0\r\n\r\n"
            (status, headers, data), = _raw(srv.port, b"POST /v2/models/mlp/infer HTTP/1.1\r\n"
                                            b"Host: x\r\n" + framing + b"\r\n" + body)
            assert status == 413 and json.loads(data)["error"] == \
                "request body exceeds the limit of 1000 bytes"
            assert headers["connection"] == "close"
        # Expect: 100-continue: refused before the client sends the body.
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 99999999\r\nExpect: 100-continue\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 413")


def _raw(port: int, data: bytes, responses: int = 1) -> list:
    """Sends bytes as they are; returns [(status, headers, body)] for `responses` replies
    (interim 100 Continue replies are skipped)."""
    out = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)
        s.settimeout(30)
        buf = b""
        while len(out) < responses:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                assert chunk, f"connection closed after {len(out)} responses"
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
            if status == 100:
                continue
            n = int(headers.get("content-length", 0))
            while len(buf) < n:
                chunk = s.recv(65536)
                assert chunk
                buf += chunk
            out.append((status, headers, buf[:n]))
            buf = buf[n:]
    return out


def test_chunked_body_expect_continue_and_pipelining(server):
    x = np.arange(64, dtype=np.float32).reshape(1, 64) / 64
    body, _ = encode_infer_request({"input": x}, binary=False)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100])
                      for i in range(0, len(body), 100)) + b"0\r\n\r\n"
    (status, _, data), = _raw(server.port, b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert status == 200 and json.loads(data)["outputs"][0]["shape"] == [1, 1]
    expected = json.loads(data)
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Expect: 100-continue\r\n\r\n" % len(body))
        assert s.recv(4096).startswith(b"HTTP/1.1 100")
        s.sendall(body)
        reply = b""
        while not reply.endswith(b"]}]}"):
            reply += s.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200")
    # Three requests in one write: all answered, in order.
    one = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)
    replies = _raw(server.port, one + b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n" + one, 3)
    assert [r[0] for r in replies] == [200, 200, 200]
    assert json.loads(replies[0][2]) == expected == json.loads(replies[2][2])
    assert replies[1][2] == b""


def test_broken_model_fails_alone(http):
    status, msg = _err(http, "GET", "/v2/models/broken")
    assert status == 503 and "failed to load model 'broken'" in msg
    assert http.request("GET", "/v2/models/broken/ready")[0] == 400
    # the others keep serving
    assert http.infer("mlp", {"input": np.zeros((1, 64), np.float32)})[0] == 200


def test_request_id_header(http):
    _, h, _ = http.request("GET", "/v2", headers={"X-Request-ID": "trace-1"})
    assert h["x-request-id"] == "trace-1"
    a = http.request("GET", "/v2")[1]["x-request-id"]
    b = http.request("GET", "/v2")[1]["x-request-id"]
    assert a and b and a != b


def test_stats_and_metrics(http):
    x = {"input": np.zeros((3, 64), np.float32)}
    status, before = http.get_json("/v2/models/mlp/stats")
    assert status == 200
    assert http.infer("mlp", x)[0] == 200
    status, after = http.get_json("/v2/models/mlp/stats")
    s0, s1 = before["model_stats"][0], after["model_stats"][0]
    assert s1["name"] == "mlp" and s1["version"] == "1"
    assert s1["inference_count"] - s0["inference_count"] == 3
    for key in ("success", "queue", "compute_infer"):
        assert s1["inference_stats"][key]["count"] == s0["inference_stats"][key]["count"] + 1
        # A lone request may run at once on the loop's thread: its queue time can round to 0 us.
        grew = s1["inference_stats"][key]["ns"] - s0["inference_stats"][key]["ns"]
        assert grew >= 0 if key == "queue" else grew > 0
    assert s1["execution_count"] >= 1 and s1["batch_stats"]
    assert sum(b["compute_infer"]["count"] for b in s1["batch_stats"]) == s1["execution_count"]
    assert all(b["batch_size"] >= 1 and b["compute_infer"]["ns"] > 0 for b in s1["batch_stats"])
    status, all_stats = http.get_json("/v2/models/stats")
    assert {m["name"] for m in all_stats["model_stats"]} >= {"mlp", "types", "fixed", "scale"}
    status, h, text = http.request("GET", "/metrics")
    assert status == 200 and h["content-type"].startswith("text/plain")
    text = text.decode()
    assert 'runnx_inference_requests_total{model="mlp",version="1",outcome="success"}' in text
    assert 'runnx_batch_size_bucket{model="mlp",version="1",le="+Inf"}' in text
    assert 'runnx_queue_depth{model="mlp",version="1"} 0' in text
    for name in ("runnx_queue_duration_seconds", "runnx_compute_duration_seconds",
                 "runnx_request_duration_seconds"):
        assert f"# TYPE {name} histogram" in text
    # failures are counted by outcome
    assert 'outcome="failure"} 0' not in _metric_line(text, "mlp", "failure")


def _metric_line(text, model, outcome):
    key = f'runnx_inference_requests_total{{model="{model}",version="1",outcome="{outcome}"}}'
    return next(line for line in text.splitlines() if line.startswith(key))


def test_malformed_http_and_abrupt_clients(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GARBAGE\x00 / HTTP/9\r\n\r\n")
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 400") and b"malformed HTTP request" in reply
        assert s.recv(4096) == b""  # and the connection is closed
    # A client that leaves halfway through a body does not disturb the others.
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                  b"\r\n{\"inputs\"")
    x = np.ones((1, 64), np.float32)
    assert Http(server.port).infer("mlp", {"input": x})[0] == 200


def test_idle_and_stalled_connections_are_closed():
    from runnx.server import Server
    with Server(DEMO, port=0, idle_timeout_s=0.5) as srv:
        conns = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
        conns[1].sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\n")           # headers never end
        conns[2].sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 100\r\n\r\n{")              # body never ends
        for s in conns:
            s.settimeout(10)
            data = b""
            while True:  # the stalled POST may get an answer first (the app gives up reading)
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
        assert Http(srv.port).request("GET", "/v2/health/live")[0] == 200
