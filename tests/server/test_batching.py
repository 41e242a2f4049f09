"""Many clients at once: results equal single-request results, requests are batched together, a
full queue is answered 429 with Retry-After, and a request whose timeout passes in the queue 504."""

import json
import os
import threading

import numpy as np
import pytest
import runnx
from runnx.server import ServeDefaults, Server
from server_helpers import DEMO, Http, _save, slow_model

HAS_BATCHER = hasattr(runnx, "Batcher")


def _batch_counts(metrics: str, model: str) -> dict:
    """le -> cumulative count of the runnx_batch_size histogram."""
    out = {}
    for line in metrics.splitlines():
        if line.startswith(f'runnx_batch_size_bucket{{model="{model}",'):
            le = line.split('le="')[1].split('"')[0]
            out[le] = int(line.rsplit(" ", 1)[1])
    return out


def test_concurrent_clients_get_their_own_results(tmp_path):
    os.makedirs(tmp_path / "mlp" / "1")
    with open(DEMO, "rb") as f, open(tmp_path / "mlp" / "1" / "model.onnx", "wb") as g:
        g.write(f.read())
    # A long queue delay makes batches form even on a busy 2-core machine.
    (tmp_path / "mlp" / "config.json").write_text(json.dumps(
        {"max_batch_size": 32, "dynamic_batching": {"max_queue_delay_microseconds": 20000}}))
    sess = runnx.InferenceSession(DEMO)
    rng = np.random.default_rng(11)
    n_clients, n_requests = 12, 8
    inputs = [[rng.standard_normal((int(rng.integers(1, 4)), 64)).astype(np.float32)
               for _ in range(n_requests)] for _ in range(n_clients)]
    results = [[None] * n_requests for _ in range(n_clients)]
    start = threading.Barrier(n_clients)

    def client(i):
        c = Http(srv.port)
        start.wait()
        for j, x in enumerate(inputs[i]):
            results[i][j] = c.infer("mlp", {"input": x}, binary=(i % 2 == 0))
        c.close()

    with Server(str(tmp_path), port=0, defaults=ServeDefaults(intra_op_threads=1)) as srv:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = Http(srv.port).request("GET", "/metrics")[2].decode()
    for i in range(n_clients):
        for j in range(n_requests):
            status, resp = results[i][j]
            assert status == 200, resp
            np.testing.assert_allclose(resp["outputs"]["output"],
                                       sess.run(None, {"input": inputs[i][j]})[0],
                                       rtol=1e-5, atol=1e-6)
    counts = _batch_counts(metrics, "mlp")
    assert counts["+Inf"] == n_clients * n_requests
    if not HAS_BATCHER:
        pytest.skip("runnx.Batcher is not built: requests ran one by one")
    # Requests that ran in a batch of more rows than they brought themselves: batches > 3 rows.
    assert counts["+Inf"] - counts["2"] > 0
    assert counts["+Inf"] - counts["4"] > 0


@pytest.fixture(scope="module")
def slow_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("slow")
    _save(slow_model(8, 1024), str(root / "slow" / "1" / "model.onnx"))
    (root / "slow" / "config.json").write_text(json.dumps(
        {"max_batch_size": 1, "max_queue_size": 2}))
    return str(root)


def test_full_queue_answers_429_at_once(slow_repo):
    n = 24
    replies = [None] * n
    start = threading.Barrier(n)

    def client(i):
        c = Http(srv.port)
        start.wait()
        replies[i] = c.request("POST", "/v2/models/slow/infer", body, {
            "Inference-Header-Content-Length": str(hl)})

    from runnx.server.kserve import encode_infer_request
    body, hl = encode_infer_request({"x": np.ones((1, 1024), np.float32)})
    with Server(slow_repo, port=0, defaults=ServeDefaults(intra_op_threads=1)) as srv:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = Http(srv.port).request("GET", "/metrics")[2].decode()
    statuses = sorted(r[0] for r in replies)
    assert set(statuses) <= {200, 429} and 200 in statuses and 429 in statuses, statuses
    for status, headers, data in replies:
        if status == 429:
            assert headers["retry-after"] == "1"
            assert "overloaded" in json.loads(data)["error"]
    rejected = next(line for line in metrics.splitlines()
                    if line.startswith('runnx_inference_requests_total{model="slow",version="1",'
                                       'outcome="rejected"}'))
    assert int(rejected.rsplit(" ", 1)[1]) == statuses.count(429)


def test_timeout_in_queue_answers_504(slow_repo):
    from runnx.server.kserve import encode_infer_request
    body, hl = encode_infer_request({"x": np.ones((1, 1024), np.float32)})
    req = json.loads(body[:hl])
    req["parameters"] = {"timeout": 1}  # microseconds: passes while the first request computes
    header = json.dumps(req).encode()
    quick = header + body[hl:]
    with Server(slow_repo, port=0, defaults=ServeDefaults(intra_op_threads=1)) as srv:
        first = threading.Thread(target=lambda: Http(srv.port).request(
            "POST", "/v2/models/slow/infer", body, {"Inference-Header-Content-Length": str(hl)}))
        first.start()
        seen = set()
        c = Http(srv.port)
        for _ in range(20):  # the first request may not have reached the queue yet: retry
            status, _, data = c.request("POST", "/v2/models/slow/infer", quick, {
                "Inference-Header-Content-Length": str(len(header))})
            seen.add(status)
            if status == 504:
                assert "expired" in json.loads(data)["error"] or "deadline" in \
                    json.loads(data)["error"].lower() or "timeout" in json.loads(data)["error"]
                break
        first.join()
    assert 504 in seen


@pytest.mark.skipif(not HAS_BATCHER, reason="no Batcher in this build")
@pytest.mark.parametrize("inline_us, config", [(0, None), (1000, None), (1000, 0), (0, 5000)])
def test_max_inline_us_decides_whether_lone_requests_run_inline(tmp_path, inline_us, config):
    """Sequential requests to an idle small model run on the loop's thread unless the server
    default (--max-inline-us) or the model's config.json max_inline_us is 0."""
    os.makedirs(tmp_path / "mlp" / "1")
    with open(DEMO, "rb") as f, open(tmp_path / "mlp" / "1" / "model.onnx", "wb") as g:
        g.write(f.read())
    if config is not None:
        (tmp_path / "mlp" / "config.json").write_text(json.dumps({"max_inline_us": config}))
    x = np.ones((1, 64), np.float32)
    with Server(str(tmp_path), port=0, defaults=ServeDefaults(intra_op_threads=1,
                                                              max_inline_us=inline_us)) as srv:
        c = Http(srv.port)
        for _ in range(12):
            assert c.infer("mlp", {"input": x})[0] == 200
        stats = srv.repo.get("mlp").runner.batcher.stats()
        c.close()
    assert stats["requests_ok"] == 12
    effective = inline_us if config is None else config
    if effective == 0:
        assert stats["inline_runs"] == 0
    else:  # the first runs on a worker (no compute time known yet); later ones find it idle
        assert stats["inline_runs"] > 0
