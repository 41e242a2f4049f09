"""`runnx serve --workers 2`: two processes share the port, each answers correct results, the
repository API is refused, and SIGTERM to the supervisor stops both cleanly."""

import json
import os
import signal
import time

import numpy as np
import pytest
import runnx
from runnx.server import Server
from server_helpers import DEMO, Http
from test_operations import _serve


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_share_the_port_and_stop_together():
    sess = runnx.InferenceSession(DEMO)
    proc, port = _serve(["--demo", "--workers", "2"])
    try:
        rng = np.random.default_rng(5)
        pids = set()
        rows = requests = 0
        # Connections spread over the workers by the kernel's hash; 16 all on one worker
        # would have a chance of 2**-15.
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            conns = [Http(port) for _ in range(16)]
            for c in conns:
                x = rng.standard_normal((int(rng.integers(1, 5)), 64)).astype(np.float32)
                status, h, body = c.request("GET", "/v2/models/mlp/ready")
                if status != 200:  # this worker still loads its model
                    continue
                pids.add(h["x-request-id"].split("-")[0])
                status, resp = c.infer("mlp", {"input": x})
                assert status == 200, resp
                rows += x.shape[0]
                requests += 1
                np.testing.assert_allclose(resp["outputs"]["output"], sess.run(None, {"input": x})[0],
                                           rtol=1e-5, atol=1e-6)
                c.close()
        assert len(pids) == 2
        status, _, body = Http(port).request("POST", "/v2/repository/models/mlp/unload", b"{}")
        assert status == 400 and "--workers" in json.loads(body)["error"]
        status, meta = Http(port).get_json("/v2")
        assert "statistics" in meta["extensions"] and "binary_tensor_data" in meta["extensions"]
        assert "model_repository" not in meta["extensions"]
        # /stats adds up both workers' requests, whichever answers (each publishes within 25 ms)
        time.sleep(0.5)
        for _ in range(6):
            status, st = Http(port).get_json("/v2/models/mlp/stats")
            s = st["model_stats"][0]
            assert s["inference_count"] == rows
            assert s["inference_stats"]["success"]["count"] == requests
            # one client at a time per connection: each request was a batch of its own
            assert s["execution_count"] == requests
            assert sum(b["compute_infer"]["count"] * b["batch_size"] for b in s["batch_stats"]) \
                == rows
            # /metrics adds them up too
            status, _, body = Http(port).request("GET", "/metrics")
            assert status == 200
            text = body.decode()
            assert _sample(text, 'runnx_inference_requests_total{model="mlp",version="1",'
                                 'outcome="success"}') == requests
            assert _sample(text, 'runnx_batch_size_count{model="mlp",version="1"}') == requests
            assert _sample(text, 'runnx_batch_size_sum{model="mlp",version="1"}') == rows
            assert _sample(text, 'runnx_http_responses_total{code="200"}') >= 2 * requests
        worker_pids = [int(p, 16) for p in pids]
        assert proc.pid not in worker_pids
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in worker_pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in worker_pids)


def _sample(text: str, series: str) -> float:
    lines = [ln for ln in text.splitlines() if ln.startswith(series + " ")]
    assert len(lines) == 1, (series, text[:2000])
    return float(lines[0].split()[-1])


def test_workers_argument_checks():
    with pytest.raises(ValueError, match="workers"):
        Server(DEMO, port=0, workers=0)
    with pytest.raises(ValueError, match="run()"):
        Server(DEMO, port=0, workers=2).start()


def test_statistics_of_workers_add_up():
    from runnx.server.shared_stats import merge_model_stats

    def part(last, rows, execs, ok_ns, sizes):
        d = {"count": rows, "ns": ok_ns}
        return {"name": "m", "version": "1", "last_inference": last, "inference_count": rows,
                "execution_count": execs, "inference_stats": {"success": d, "queue": dict(d)},
                "batch_stats": [{"batch_size": b, "compute_infer": {"count": n, "ns": 10 * n}}
                                for b, n in sizes]}

    a, b = part(5, 3, 2, 100, [(1, 1), (2, 1)]), part(9, 4, 1, 50, [(4, 1)])
    m = merge_model_stats([a, b])
    assert (m["last_inference"], m["inference_count"], m["execution_count"]) == (9, 7, 3)
    assert m["inference_stats"]["success"] == {"count": 7, "ns": 150}
    assert [(s["batch_size"], s["compute_infer"]["count"]) for s in m["batch_stats"]] == \
        [(1, 1), (2, 1), (4, 1)]
    assert a["inference_count"] == 3 and len(a["batch_stats"]) == 2  # the parts are untouched
    assert merge_model_stats([a, a])["batch_stats"][1]["compute_infer"] == {"count": 2, "ns": 20}


def test_metrics_of_workers_add_up():
    from runnx.server.metrics import ModelMetrics, merge_prometheus_states, prometheus_text

    a, b = ModelMetrics("m", "1"), ModelMetrics("m", "1")
    a.success(2, 10.0, 300.0, 2, 0.001)
    a.failure("rejected", 0.0001)
    b.success(1, 5.0, 200.0, 4, 0.002)
    other = ModelMetrics("n", "2")
    other.success(1, 1.0, 1.0, 1, 0.003)
    merged = merge_prometheus_states([a.prometheus_state(3), b.prometheus_state(1),
                                      other.prometheus_state(0)])
    m = next(s for s in merged if s["name"] == "m")
    assert m["queue_depth"] == 4
    assert m["outcomes"] == {"success": 2, "failure": 0, "rejected": 1, "expired": 0}
    counts, total, count = m["batch"]
    assert (count, total) == (2, 6) and sum(counts) == 2
    assert m["e2e"][2] == 3 and abs(m["e2e"][1] - 0.0031) < 1e-12
    assert a.prometheus_state(3)["batch"][2] == 1  # the parts are untouched
    text = prometheus_text(merged, {200: 3})
    assert _sample(text, 'runnx_queue_depth{model="m",version="1"}') == 4
    assert _sample(text, 'runnx_request_duration_seconds_count{model="m",version="1"}') == 3
    assert _sample(text, 'runnx_batch_size_bucket{model="m",version="1",le="2"}') == 1
    assert _sample(text, 'runnx_batch_size_bucket{model="m",version="1",le="4"}') == 2
    assert _sample(text, 'runnx_inference_requests_total{model="n",version="2",'
                         'outcome="success"}') == 1
