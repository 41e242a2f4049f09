"""Operations: bearer-token auth, graceful SIGTERM shutdown of `runnx serve` with requests in
flight, the CLI's --demo, and structured logs with request ids."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from runnx.server import Server
from runnx.server.kserve import encode_infer_request
from server_helpers import DEMO, Http, _save, slow_model


def test_bearer_token_on_all_but_health():
    with Server(DEMO, port=0, auth_token="s3cret") as srv:
        anon = Http(srv.port)
        assert anon.request("GET", "/v2/health/live")[0] == 200
        assert anon.request("GET", "/v2/health/ready")[0] == 200
        for method, path in (("GET", "/v2"), ("GET", "/v2/models/mlp"), ("GET", "/metrics"),
                             ("POST", "/v2/models/mlp/infer"), ("POST", "/v2/repository/index"),
                             ("GET", "/v2/models/mlp/stats")):
            status, headers, body = anon.request(method, path, b"{}" if method == "POST" else None)
            assert status == 401, path
            assert json.loads(body) == {"error": "missing or invalid bearer token"}
            assert headers["www-authenticate"].startswith("Bearer")
        wrong = Http(srv.port, token="guess")
        status, _, body = wrong.request("GET", "/v2")
        assert status == 401 and json.loads(body)["error"] == "invalid bearer token"
        ok = Http(srv.port, token="s3cret")
        assert ok.request("GET", "/v2")[0] == 200
        status, resp = ok.infer("mlp", {"input": np.zeros((1, 64), np.float32)})
        assert status == 200 and resp["outputs"]["output"].shape == (1, 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(args, env_extra=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
    # The child imports runnx the way this test process did (dev build or installed).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "runnx", "serve", *args, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"runnx serve did not start: {err.decode()[-2000:]}")
        time.sleep(0.1)


def test_demo_serves_and_logs_json(tmp_path):
    proc, port = _serve(["--demo", "--access-log"])
    try:
        c = Http(port)
        x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64)
        status, resp = c.infer("mlp", {"input": x}, binary=False, binary_output=False)
        assert status == 200 and resp["outputs"]["output"].shape == (1, 1)
        status, _, _ = c.request("GET", "/v2/models/nope", headers={"X-Request-ID": "req-77"})
        assert status == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    events = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert "server_ready" in kinds and "shutdown_requested" in kinds and "server_stopped" in kinds
    failed = [e for e in events if e.get("request_id") == "req-77"]
    assert failed and any(e.get("status") == 404 for e in failed)
    assert all("ts" in e and "level" in e for e in events)


def test_sigterm_answers_every_request_in_flight(tmp_path):
    _save(slow_model(8, 1024), str(tmp_path / "slow" / "1" / "model.onnx"))
    # The batch waits up to 2 s for more rows, so every request is still queued at SIGTERM
    # and must be answered, not dropped.
    (tmp_path / "slow" / "config.json").write_text(json.dumps(
        {"max_batch_size": 64, "dynamic_batching": {"max_queue_delay_microseconds": 2000000}}))
    proc, port = _serve([str(tmp_path), "--threads", "1", "--shutdown-timeout", "60"])
    n = 12
    body, hl = encode_infer_request({"x": np.ones((4, 1024), np.float32)})
    request = (b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               b"Inference-Header-Content-Length: %d\r\n\r\n" % (len(body), hl)) + body
    sent = threading.Barrier(n + 1)
    replies = [b""] * n
    finished = [0.0] * n

    def client(i):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(request)
            sent.wait()
            s.settimeout(120)
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                replies[i] += chunk
                head, _, rest = replies[i].partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")]
                if length and len(rest) >= length[0]:
                    break
        finished[i] = time.monotonic()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    sent.wait()
    time.sleep(0.3)  # let the server read them; they wait in the queue or compute
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    for t in threads:
        t.join(120)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    statuses = [r.split(b" ", 2)[1] if r else b"none" for r in replies]
    assert statuses == [b"200"] * n, err.decode()[-2000:]
    assert max(finished) > signalled  # some were still in flight when the signal came
    # and the port no longer accepts connections
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_cli_errors():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-m", "runnx", "serve", "/no/such/models"],
                       capture_output=True, env=env, timeout=60, check=False)
    assert r.returncode == 1 and b"neither a folder nor a file" in r.stderr
    r = subprocess.run([sys.executable, "-m", "runnx", "serve"], capture_output=True, env=env,
                       timeout=60, check=False)
    assert r.returncode == 2 and b"--demo" in r.stderr
