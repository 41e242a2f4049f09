"""The server's C++ fast path (runnx._C.FastInfer): a binary inference request like one answered
before goes from bytes to bytes in C++. Every response is compared byte for byte (date and
request id aside) with the same request on a server without the fast path, successes and errors
alike, and results with single-session runs."""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import socket
import threading
import time

import numpy as np
import pytest
import runnx
from runnx.server import ServeDefaults, Server
from runnx.server.kserve import decode_infer_response, encode_infer_request
from server_helpers import DEMO, _save, slow_model

pytestmark = pytest.mark.skipif(not hasattr(runnx._C, "FastInfer"), reason="no fast path built")

LIMIT = 1 << 20


# ---- raw HTTP ----------------------------------------------------------------------------------
def infer_bytes(path: str, body: bytes, hl: int | None, extra: str = "") -> bytes:
    h = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
    if hl is not None:
        h += f"Inference-Header-Content-Length: {hl}\r\n"
    return (h + extra + "\r\n").encode() + body


def read_response(sock: socket.socket, buf: bytearray) -> bytes:
    """One whole response (status line to the end of its body) from the socket."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {bytes(buf)!r}")
        buf += chunk
    head_end = buf.index(b"\r\n\r\n") + 4
    m = re.search(rb"\r\ncontent-length: (\d+)", bytes(buf[:head_end]), re.IGNORECASE)
    total = head_end + (int(m.group(1)) if m else 0)
    while len(buf) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buf += chunk
    out = bytes(buf[:total])
    del buf[:total]
    return out


class Conn:
    """One keep-alive connection that sends exact bytes (each request in one send)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes:
        return read_response(self.sock, self.buf)

    def roundtrip(self, data: bytes) -> bytes:
        self.send(data)
        return self.recv()

    def close(self) -> None:
        self.sock.close()


def in_threads(fn, n: int) -> None:
    """Runs fn(0) .. fn(n - 1) on n threads at once and waits for them."""
    threads = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def normal(resp: bytes) -> bytes:
    """The response with its date and request id blanked (they differ between servers)."""
    resp = re.sub(rb"\r\ndate: [^\r]*", b"\r\ndate: -", resp)
    return re.sub(rb"\r\nx-request-id: [^\r]*", b"\r\nx-request-id: -", resp)


def status(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1])


def decode(resp: bytes) -> dict:
    head, body = resp.split(b"\r\n\r\n", 1)
    m = re.search(rb"inference-header-content-length: (\d+)", head)
    return decode_infer_response(body, int(m.group(1)) if m else None)


# ---- servers -----------------------------------------------------------------------------------
def _bool_model():
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("Not", ["b"], ["nb"]), helper.make_node("Identity", ["h"], ["h_out"])],
        "boolish",
        [helper.make_tensor_value_info("b", TensorProto.BOOL, ["batch", 5]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT16, ["batch", 2])],
        [helper.make_tensor_value_info("nb", TensorProto.BOOL, ["batch", 5]),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT16, ["batch", 2])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _echo_model():
    """FP32, FP64 and INT64 in, the same out (Identity): every value's JSON rendering shows."""
    from onnx import TensorProto, helper
    types = {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "i64": TensorProto.INT64}
    g = helper.make_graph(
        [helper.make_node("Identity", [k], [f"{k}_out"]) for k in types], "echo",
        [helper.make_tensor_value_info(k, t, ["batch", "n"]) for k, t in types.items()],
        [helper.make_tensor_value_info(f"{k}_out", t, ["batch", "n"]) for k, t in types.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from server_helpers import scale_model
    root = tmp_path_factory.mktemp("fastrepo")
    os.makedirs(root / "mlp" / "1")
    shutil.copy(DEMO, root / "mlp" / "1" / "model.onnx")
    (root / "mlp" / "config.json").write_text(json.dumps({"max_batch_size": 16}))
    _save(_bool_model(), str(root / "boolish" / "1" / "model.onnx"))
    _save(_echo_model(), str(root / "echo" / "1" / "model.onnx"))
    for v in (1, 2):
        _save(scale_model(float(v)), str(root / "scale" / str(v) / "model.onnx"))
    (root / "scale" / "config.json").write_text(json.dumps(
        {"version_policy": {"all": {}}, "max_batch_size": 8}))
    return str(root)


def _server(repo, fast, **kw):
    return Server(repo, port=0, defaults=ServeDefaults(intra_op_threads=1),
                  max_body_bytes=LIMIT, fast_path=fast, **kw).start()


@pytest.fixture(scope="module")
def servers(repo):
    fast, plain = _server(repo, True), _server(repo, False)
    assert fast.app.fast is not None and plain.app.fast is None
    yield fast, plain
    fast.stop()
    plain.stop()


def both(servers, *requests: bytes) -> list[tuple[bytes, bytes]]:
    """Sends the requests in order on one connection to each server: (fast, plain) responses."""
    out = []
    conns = [Conn(s.port) for s in servers]
    for r in requests:
        out.append(tuple(c.roundtrip(r) for c in conns))
    for c in conns:
        c.close()
    return out


def mlp_request(x, **kw):
    body, hl = encode_infer_request({"input": x}, binary=True, binary_output=True, **kw)
    return body, hl


# ---- successes ---------------------------------------------------------------------------------
CASES = {  # path, feeds, encode_infer_request options
    "mlp": ("/v2/models/mlp/infer", lambda rng: {
        "input": rng.standard_normal((3, 64)).astype(np.float32)}, {"binary_output": True}),
    "mlp_id_outputs": ("/v2/models/mlp/infer", lambda rng: {
        "input": rng.standard_normal((1, 64)).astype(np.float32)},
        {"outputs": ["output"], "binary_output": True, "request_id": 'r"\u00e9'}),
    "bool_f16": ("/v2/models/boolish/infer", lambda rng: {
        "b": rng.integers(0, 2, (2, 5)).astype(bool),
        "h": rng.standard_normal((2, 2)).astype(np.float16)}, {"binary_output": True}),
    "versioned": ("/v2/models/scale/versions/1/infer", lambda rng: {
        "x": rng.standard_normal((4, 4)).astype(np.float32)}, {"binary_output": True}),
    "mlp_json_out": ("/v2/models/mlp/infer", lambda rng: {
        "input": rng.standard_normal((2, 64)).astype(np.float32)}, {}),
    "bool_f16_json_out": ("/v2/models/boolish/infer", lambda rng: {
        "b": rng.integers(0, 2, (3, 5)).astype(bool),
        "h": (rng.standard_normal((3, 2)) * 1000).astype(np.float16)}, {"request_id": "j"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_repeated_requests_take_the_fast_path_with_identical_answers(servers, case):
    fast_srv, _ = servers
    path, make, opts = CASES[case]
    rng = np.random.default_rng(len(case))
    feeds = [make(rng) for _ in range(4)]
    taken = fast_srv.app.fast.taken()
    pairs = both(servers, *(infer_bytes(path, *encode_infer_request(f, **opts)) for f in feeds))
    for got, want in pairs:
        assert status(got) == 200, got[:300]
        assert normal(got) == normal(want)
    assert fast_srv.app.fast.taken() - taken >= 3  # the first may teach it
    # and the answers are the model's
    parts = path.split("/")
    model_file = os.path.join(fast_srv.repo.path, parts[3], parts[5] if "versions" in parts else "1",
                              "model.onnx")
    sess = runnx.InferenceSession(model_file)
    names = [o.name for o in sess.get_outputs()]
    for (got, _), f in zip(pairs, feeds):
        want = dict(zip(names, sess.run(None, f)))
        res = decode(got)["outputs"]
        assert set(res) == set(opts.get("outputs") or names)
        for k, v in res.items():
            assert v.dtype == want[k].dtype and v.shape == want[k].shape
            np.testing.assert_allclose(v.astype(np.float32), want[k].astype(np.float32),
                                       rtol=1e-5, atol=1e-6)


SPECIAL = [0.0, -0.0, 1.0, -2.5, 0.1, 1e-4, 1e-5, 1.5e-5, 123456789.0, 1e15, 1e16, 1.25e16,
           -1e22, 3.4e38, 1e-300, 5e-324, 2.2250738585072014e-308, float("nan"), float("inf"),
           -float("inf"), 7.0, 100.0, 0.3333333333333333, 2 ** 53, 2 ** 60 + 7, 1e100]


@pytest.mark.parametrize("binary_out", [False, True])
def test_json_outputs_render_every_value_as_python(servers, binary_out):
    """Floats as Python's repr (shortest round trip, its switch to exponents, NaN/Infinity),
    float32 widened as tolist() does, int64 extremes: the same bytes as the Python path."""
    fast_srv, _ = servers
    rng = np.random.default_rng(4)
    f64 = np.array(SPECIAL + list(rng.standard_normal(6) * 10.0 ** rng.integers(-30, 30, 6)))
    n = len(f64)
    with np.errstate(over="ignore"):  # what float32 cannot hold becomes infinite
        f32 = f64.astype(np.float32)
    feeds = {"f32": f32.reshape(1, n), "f64": f64.reshape(1, n),
             "i64": np.array([0, -1, 1, 2 ** 63 - 1, -2 ** 63] + list(range(n - 5)),
                             np.int64).reshape(1, n)}
    body, hl = encode_infer_request(feeds, binary_output=binary_out)
    if not binary_out:  # mixed: f64 binary, the others JSON
        h = json.loads(body[:hl])
        h["outputs"] = [{"name": "f32_out"}, {"name": "f64_out", "parameters": {"binary_data": True}},
                        {"name": "i64_out", "parameters": {"binary_data": False}}]
        hb = json.dumps(h).encode()
        body, hl = hb + body[hl:], len(hb)
    taken = fast_srv.app.fast.taken()
    pairs = both(servers, *[infer_bytes("/v2/models/echo/infer", body, hl)] * 3)
    assert fast_srv.app.fast.taken() - taken == 2
    for got, want in pairs:
        assert status(got) == 200, got[:300]
        assert normal(got) == normal(want)
    out = decode(pairs[1][0])["outputs"]
    np.testing.assert_array_equal(out["f64_out"], feeds["f64"])
    np.testing.assert_array_equal(out["f32_out"].astype(np.float32), feeds["f32"])
    np.testing.assert_array_equal(out["i64_out"], feeds["i64"])


def test_bool_input_bytes_other_than_0_and_1_read_as_true(servers):
    fast_srv, _ = servers
    h = np.zeros((1, 2), np.float16)
    b = np.array([[True, False, True, False, True]])
    body, hl = encode_infer_request({"b": b, "h": h}, binary_output=True)
    raw = bytearray(body)
    off = hl  # b's 5 bytes come first
    raw[off:off + 5] = bytes([7, 0, 255, 0, 1])
    taken = fast_srv.app.fast.taken()
    pairs = both(servers, *[infer_bytes("/v2/models/boolish/infer", bytes(raw), hl)] * 3)
    for got, want in pairs:
        assert normal(got) == normal(want)
        assert decode(got)["outputs"]["nb"].tolist() == [[False, True, False, True, False]]
    assert fast_srv.app.fast.taken() > taken


# ---- errors and unusual requests: the Python path answers, exactly as before -------------------
def _variants(body: bytes, hl: int) -> dict[str, bytes]:
    header = json.loads(body[:hl])
    p = "/v2/models/mlp/infer"

    def with_header(h):
        hb = json.dumps(h).encode()
        return infer_bytes(p, hb + body[hl:], len(hb))

    wrong_dtype = json.loads(body[:hl])
    wrong_dtype["inputs"][0]["datatype"] = "FP64"
    wrong_dtype["inputs"][0]["parameters"]["binary_data_size"] = 512
    wrong_shape = json.loads(body[:hl])
    wrong_shape["inputs"][0]["shape"] = [1, 32]
    gz = gzip.compress(body)
    return {
        "unknown_model": infer_bytes("/v2/models/nope/infer", body, hl),
        "unknown_version": infer_bytes("/v2/models/mlp/versions/9/infer", body, hl),
        "short_binary": infer_bytes(p, body[:-4], hl),
        "extra_binary": infer_bytes(p, body + b"\0\0\0\0", hl),
        "header_length_past_body": infer_bytes(p, body, len(body) + 5),
        "header_length_not_a_number": infer_bytes(p, body, None, "Inference-Header-Content-Length: x\r\n"),
        "no_header_length": infer_bytes(p, body, None),
        "malformed_json": infer_bytes(p, b"{" + body[1:hl - 1] + b"!" + body[hl:], hl),
        "wrong_dtype": with_header(wrong_dtype),
        "wrong_shape": with_header(wrong_shape),
        "json_data": infer_bytes(p, json.dumps({"inputs": [dict(
            header["inputs"][0], data=[0.5] * 64, parameters={})]}).encode(), None),
        "get": f"GET {p} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
        "query": infer_bytes(p + "?x=1", body, hl),
        "escaped_path": infer_bytes("/v2/models/ml%70/infer", body, hl),
        "gzip": infer_bytes(p, gz, hl, "Content-Encoding: gzip\r\n"),
        "upper_case_headers": infer_bytes(p, body, None).replace(
            b"Content-Length", b"CONTENT-LENGTH").replace(
            b"\r\n\r\n", f"\r\nINFERENCE-HEADER-CONTENT-LENGTH: {hl}\r\n\r\n".encode(), 1),
        "request_id_header": infer_bytes(p, body, hl, "X-Request-Id: abc\r\n"),
        "keep_alive_header": infer_bytes(p, body, hl, "Connection: keep-alive\r\n"),
        "duplicate_length": infer_bytes(p, body, hl, f"Content-Length: {len(body)}\r\n"),
    }


@pytest.mark.parametrize("variant", sorted(_variants(*mlp_request(np.zeros((1, 64), np.float32)))))
def test_errors_and_unusual_requests_answer_as_the_python_path(servers, variant):
    x = np.random.default_rng(3).standard_normal((1, 64)).astype(np.float32)
    body, hl = mlp_request(x)
    learned = infer_bytes("/v2/models/mlp/infer", body, hl)
    req = _variants(body, hl)[variant]
    # taught first; then the variant on a connection of its own (some close it), then the
    # learned request again
    pairs = both(servers, learned) + both(servers, req) + both(servers, learned)
    for got, want in pairs:
        assert normal(got) == normal(want), (got[:400], want[:400])
    assert status(pairs[0][0]) == 200 and status(pairs[2][0]) == 200


@pytest.mark.parametrize("how", ["connection_close", "over_limit", "expect_continue"])
def test_requests_that_end_or_hold_the_connection(servers, how):
    body, hl = mlp_request(np.ones((1, 64), np.float32))
    p = "/v2/models/mlp/infer"
    both(servers, infer_bytes(p, body, hl))  # teach it
    outs = []
    for srv in servers:
        c = Conn(srv.port)
        if how == "connection_close":
            c.send(infer_bytes(p, body, hl, "Connection: close\r\n"))
        elif how == "over_limit":
            c.send(f"POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: {LIMIT + 1}\r\n"
                   f"Inference-Header-Content-Length: {hl}\r\n\r\n".encode() + body)
        else:
            c.send(infer_bytes(p, b"", hl, "Expect: 100-continue\r\n").replace(
                b"Content-Length: 0", f"Content-Length: {len(body)}".encode()))
            assert c.recv() == b"HTTP/1.1 100 Continue\r\n\r\n"
            c.send(body)
        outs.append(c.recv())
        if how != "expect_continue":
            assert c.sock.recv(1) == b""  # closed
        c.close()
    assert normal(outs[0]) == normal(outs[1])
    assert status(outs[0]) == {"connection_close": 200, "over_limit": 413,
                               "expect_continue": 200}[how]


def test_auth(repo):
    body, hl = mlp_request(np.ones((1, 64), np.float32))
    p = "/v2/models/mlp/infer"
    good = infer_bytes(p, body, hl, "Authorization: Bearer s3cret\r\n")
    reqs = [good, good, infer_bytes(p, body, hl),
            infer_bytes(p, body, hl, "Authorization: Bearer s3cre\r\n"),
            infer_bytes(p, body, hl, "Authorization: Bearer s3cret \r\n"),
            infer_bytes(p, body, hl, "Authorization: Basic s3cret\r\n"), good]
    srvs = [_server(repo, True, auth_token="s3cret"), _server(repo, False, auth_token="s3cret")]
    try:
        taken = srvs[0].app.fast.taken()
        pairs = both(srvs, *reqs)
        assert srvs[0].app.fast.taken() - taken == 2
    finally:
        for s in srvs:
            s.stop()
    assert [status(g) for g, _ in pairs] == [200, 200, 401, 401, 401, 401, 200]
    for got, want in pairs:
        assert normal(got) == normal(want)


# ---- connections ------------------------------------------------------------------------------
def test_pipelined_and_split_requests(servers):
    fast_srv, _ = servers
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((1, 64)).astype(np.float32) for _ in range(5)]
    reqs = [infer_bytes("/v2/models/mlp/infer", *mlp_request(x)) for x in xs]
    want = [runnx.InferenceSession(DEMO).run(None, {"input": x})[0] for x in xs]
    c = Conn(fast_srv.port)
    c.roundtrip(reqs[0])  # teach it
    # two in one segment, answered in order
    c.send(reqs[1] + reqs[2])
    got = [c.recv(), c.recv()]
    # one split across reads, within the head and within the body
    for cut in (10, len(reqs[3]) - 7):
        c.send(reqs[3][:cut])
        time.sleep(0.05)
        c.send(reqs[3][cut:])
        got.append(c.recv())
    # a fast request, then at once another one behind it on the same connection
    c.send(reqs[4])
    c.send(reqs[1])
    got += [c.recv(), c.recv()]
    c.close()
    order = [1, 2, 3, 3, 4, 1]
    for resp, i in zip(got, order):
        np.testing.assert_allclose(decode(resp)["outputs"]["output"], want[i], rtol=1e-5,
                                   atol=1e-6)


def test_concurrent_fast_requests_get_their_own_results(servers):
    """Many clients, two models, several request shapes: requests of one loop pass run together
    (inline or on the workers) and each gets its own rows back."""
    fast_srv, _ = servers
    sessions = {"mlp": runnx.InferenceSession(DEMO),
                "scale": runnx.InferenceSession(os.path.join(fast_srv.repo.path, "scale", "2",
                                                             "model.onnx"))}
    paths = {"mlp": "/v2/models/mlp/infer", "scale": "/v2/models/scale/versions/2/infer"}
    width = {"mlp": 64, "scale": 4}
    rng = np.random.default_rng(21)
    n_clients, n_requests = 12, 20
    plan = [[("mlp" if (i + j) % 3 else "scale", int(rng.integers(1, 4)))
             for j in range(n_requests)] for i in range(n_clients)]
    xs = [[rng.standard_normal((rows, width[m])).astype(np.float32) for m, rows in row]
          for row in plan]

    def request(m, x):
        name = "input" if m == "mlp" else "x"
        return infer_bytes(paths[m], *encode_infer_request({name: x}, binary_output=True))

    teach = Conn(fast_srv.port)
    for m in paths:
        for rows in (1, 2, 3):
            teach.roundtrip(request(m, np.zeros((rows, width[m]), np.float32)))
    teach.close()
    results = [[None] * n_requests for _ in range(n_clients)]
    taken = fast_srv.app.fast.taken()
    start = threading.Barrier(n_clients)

    def client(i):
        c = Conn(fast_srv.port)
        start.wait()
        for j, (m, _) in enumerate(plan[i]):
            results[i][j] = decode(c.roundtrip(request(m, xs[i][j])))
        c.close()

    in_threads(client, n_clients)
    assert fast_srv.app.fast.taken() - taken == n_clients * n_requests
    for i in range(n_clients):
        for j, (m, _) in enumerate(plan[i]):
            feeds = {sessions[m].get_inputs()[0].name: xs[i][j]}
            want = sessions[m].run(None, feeds)[0]
            got = results[i][j]["outputs"]
            np.testing.assert_allclose(next(iter(got.values())), want, rtol=1e-5, atol=1e-6)


def test_metrics_count_fast_requests(servers):
    fast_srv, _ = servers
    c = Conn(fast_srv.port)

    def get(path):
        r = c.roundtrip(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        return r.split(b"\r\n\r\n", 1)[1].decode()

    def stats():
        s = json.loads(get("/v2/models/mlp/stats"))["model_stats"][0]
        return s["inference_count"], s["inference_stats"]["success"]["count"]

    def ok_responses():
        m = re.search(r'runnx_http_responses_total\{code="200"\} (\d+)', get("/metrics"))
        return int(m.group(1))

    req = infer_bytes("/v2/models/mlp/infer", *mlp_request(np.ones((2, 64), np.float32)))
    c.roundtrip(req)
    rows0, ok0 = stats()
    codes0 = ok_responses()
    taken = fast_srv.app.fast.taken()
    for _ in range(5):
        assert status(c.roundtrip(req)) == 200
    assert fast_srv.app.fast.taken() - taken == 5
    rows1, ok1 = stats()
    assert (rows1 - rows0, ok1 - ok0) == (10, 5)
    assert ok_responses() - codes0 == 5 + 1 + 1  # the five, the stats answer, the metrics answer
    c.close()


def test_reload_and_unload_forget_learned_routes(repo, tmp_path):
    from server_helpers import scale_model
    root = tmp_path / "r"
    _save(scale_model(3.0), str(root / "scale" / "1" / "model.onnx"))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    req = infer_bytes("/v2/models/scale/infer", *encode_infer_request({"x": x}, binary_output=True))
    srv = _server(str(root), True)
    try:
        c = Conn(srv.port)
        for _ in range(3):
            np.testing.assert_allclose(decode(c.roundtrip(req))["outputs"]["y"], 3 * x)
        # a new file for version 1 and a reload: the learned request now meets the new model
        _save(scale_model(5.0), str(root / "scale" / "1" / "model.onnx"))
        load = b"POST /v2/repository/models/scale/load HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        assert status(c.roundtrip(load)) == 200
        for _ in range(3):
            np.testing.assert_allclose(decode(c.roundtrip(req))["outputs"]["y"], 5 * x)
        unload = load.replace(b"/load", b"/unload")
        assert status(c.roundtrip(unload)) == 200
        gone = c.roundtrip(req)
        assert status(gone) == 404 and b"not loaded" in gone
        c.close()
    finally:
        srv.stop()


# ---- failures inside the batcher are worded by the app ----------------------------------------
@pytest.fixture(scope="module")
def slow_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastslow")
    _save(slow_model(8, 1024), str(root / "slow" / "1" / "model.onnx"))
    (root / "slow" / "config.json").write_text(json.dumps({"max_batch_size": 1, "max_queue_size": 2}))
    return str(root)


def _burst(port, req, n):
    replies = [None] * n
    start = threading.Barrier(n)

    def client(i):
        c = Conn(port)
        start.wait()
        replies[i] = c.roundtrip(req)
        c.close()

    in_threads(client, n)
    return replies


def test_queue_full_and_deadline_from_the_fast_path(slow_repo):
    x = np.ones((1, 1024), np.float32)
    body, hl = encode_infer_request({"x": x}, binary_output=True)
    full = infer_bytes("/v2/models/slow/infer", body, hl)
    header = json.loads(body[:hl])
    header["parameters"] = {"timeout": 1, "binary_data_output": True}
    hb = json.dumps(header).encode()
    timed = infer_bytes("/v2/models/slow/infer", hb + body[hl:], len(hb))
    srv = _server(slow_repo, True)
    try:
        fast = srv.app.fast
        c = Conn(srv.port)
        assert status(c.roundtrip(full)) == 200  # taught (alone: runs at once)
        taken = fast.taken()
        replies = _burst(srv.port, full, 16)
        assert fast.taken() - taken == 16
        codes = sorted(status(r) for r in replies)
        assert set(codes) == {200, 429}, codes
        for r in replies:
            if status(r) == 429:
                assert b"\r\nretry-after: 1\r\n" in r
                assert r.endswith(b'{"error":"model \'slow\' is overloaded: the batcher\'s queue '
                                  b'is full (max_queue_size=2); retry later"}')
        metrics = c.roundtrip(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").decode()
        rejected = re.search(r'runnx_inference_requests_total\{model="slow",version="1",'
                             r'outcome="rejected"\} (\d+)', metrics)
        assert int(rejected.group(1)) == codes.count(429)
        # the 1 us timeout: taught while the model is idle, then it expires behind others
        for _ in range(20):
            if status(c.roundtrip(timed)) == 200:
                break
        seen = set()
        for _ in range(10):
            seen |= {status(r) for r in _burst(srv.port, timed, 3)}
            if 504 in seen:
                break
        assert 504 in seen and seen <= {200, 429, 504}
        c.close()
    finally:
        srv.stop()


def test_client_gone_before_its_answer(slow_repo):
    body, hl = encode_infer_request({"x": np.ones((1, 1024), np.float32)}, binary_output=True)
    req = infer_bytes("/v2/models/slow/infer", body, hl)
    srv = _server(slow_repo, True)
    try:
        c = Conn(srv.port)
        assert status(c.roundtrip(req)) == 200
        taken = srv.app.fast.taken()
        for _ in range(3):  # sent and closed at once: answered into a closed connection
            g = socket.create_connection(("127.0.0.1", srv.port))
            g.sendall(req)
            g.close()
        # Until one of those has run, they fill the queue (one running, max_queue_size=2 queued):
        # retry a 429 as a client honouring Retry-After would.
        deadline = time.monotonic() + 60
        while status(reply := c.roundtrip(req)) == 429 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status(reply) == 200
        assert srv.app.fast.taken() > taken
        c.close()
    finally:
        srv.stop()
