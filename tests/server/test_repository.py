"""Model repository over HTTP: version policy and routing, index, load and unload at run time
(uploads and config overrides too), and a bad model failing alone."""

import base64
import json
import threading

import numpy as np
import pytest
from runnx.server import ServeDefaults, Server
from server_helpers import Http, scale_model, write_repository


@pytest.fixture
def srv(tmp_path):
    with Server(write_repository(str(tmp_path)), port=0,
                defaults=ServeDefaults(intra_op_threads=1)) as s:
        yield s


def _post(c, path, obj=None):
    status, _, body = c.request("POST", path, json.dumps(obj).encode() if obj is not None else b"")
    return status, (json.loads(body) if body else None)


def test_versions_follow_the_policy(srv):
    c = Http(srv.port)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    status, meta = c.get_json("/v2/models/scale")
    assert meta["versions"] == ["2", "3"]          # latest 2 of 1, 2, 3
    status, resp = c.infer("scale", {"x": x})
    np.testing.assert_array_equal(resp["outputs"]["y"], 3 * x)   # newest by default
    status, resp = c.infer("scale", {"x": x}, version="2")
    np.testing.assert_array_equal(resp["outputs"]["y"], 2 * x)
    status, resp = c.infer("scale", {"x": x}, version="1")
    assert status == 404 and "no version '1'" in resp["error"]
    status, cfg = c.get_json("/v2/models/scale/versions/2/config")
    assert cfg["version_policy"] == {"latest": {"num_versions": 2}} and cfg["max_batch_size"] == 8
    status, stats = c.get_json("/v2/models/scale/stats")
    assert sorted(s["version"] for s in stats["model_stats"]) == ["2", "3"]


def test_index_load_unload(srv):
    c = Http(srv.port)
    status, index = _post(c, "/v2/repository/index")
    assert status == 200
    by_name = {}
    for e in index:
        by_name.setdefault(e["name"], []).append(e)
    assert {e["version"] for e in by_name["scale"]} == {"2", "3"}
    assert by_name["mlp"][0]["state"] == "READY"
    assert by_name["broken"][0]["state"] == "UNAVAILABLE"
    assert "failed to load model 'broken'" in by_name["broken"][0]["reason"]
    status, ready = _post(c, "/v2/repository/index", {"ready": True})
    assert "broken" not in {e["name"] for e in ready}

    # Server readiness comes back once the failed model is unloaded.
    assert c.request("GET", "/v2/health/ready")[0] == 400
    assert _post(c, "/v2/repository/models/broken/unload")[0] == 200
    assert c.request("GET", "/v2/health/ready")[0] == 200

    # Unload, then the model is gone but listed; load brings it back.
    assert _post(c, "/v2/repository/models/scale/unload")[0] == 200
    status, resp = c.infer("scale", {"x": np.ones((1, 4), np.float32)})
    assert status == 404 and resp["error"] == "model 'scale' is not loaded"
    assert c.request("GET", "/v2/models/scale/ready")[0] == 400
    status, index = _post(c, "/v2/repository/index")
    assert {"name": "scale", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"} in index
    # A config override in the load request: every version this time.
    status, _ = _post(c, "/v2/repository/models/scale/load", {"parameters": {
        "config": json.dumps({"version_policy": {"all": {}}, "max_batch_size": 4})}})
    assert status == 200
    assert c.get_json("/v2/models/scale")[1]["versions"] == ["1", "2", "3"]
    status, resp = c.infer("scale", {"x": np.ones((1, 4), np.float32)}, version="1")
    assert status == 200 and resp["outputs"]["y"].tolist() == [[1, 1, 1, 1]]

    # Errors: unknown model, bad config (the old versions keep serving).
    status, resp = _post(c, "/v2/repository/models/nothing/load")
    assert status == 404 and "not in the repository" in resp["error"]
    status, resp = _post(c, "/v2/repository/models/scale/load",
                         {"parameters": {"config": '{"max_batch_size": "many"}'}})
    assert status == 400 and "max_batch_size must be an integer" in resp["error"]
    assert c.infer("scale", {"x": np.ones((1, 4), np.float32)}, version="1")[0] == 200
    status, resp = _post(c, "/v2/repository/models/scale/load",
                         {"parameters": {"config": '{"max_batch_size": 4, "input": '
                                         '[{"name": "x", "data_type": "TYPE_INT8"}]}'}})
    assert status == 400 and "TYPE_FP32" in resp["error"]
    status, resp = _post(c, "/v2/repository/models/broken/load")
    assert status == 400 and "failed to load model 'broken'" in resp["error"]
    assert c.request("GET", "/v2/health/live")[0] == 200


def test_upload_a_model(srv):
    c = Http(srv.port)
    blob = base64.b64encode(scale_model(5.0).SerializeToString()).decode()
    status, _ = _post(c, "/v2/repository/models/five/load",
                      {"parameters": {"file:1/model.onnx": blob}})
    assert status == 200
    status, resp = c.infer("five", {"x": np.ones((2, 4), np.float32)})
    assert status == 200 and resp["outputs"]["y"].tolist() == [[5] * 4] * 2
    status, resp = _post(c, "/v2/repository/models/six/load",
                         {"parameters": {"file:1/model.onnx": "!!not base64!!"}})
    assert status == 400 and "base64" in resp["error"]


def test_reload_and_unload_do_not_drop_requests_on_other_models(srv):
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    expected = Http(srv.port).infer("mlp", {"input": x})[1]["outputs"]["output"]
    failures, done = [], threading.Event()

    def hammer():
        c = Http(srv.port)
        while not done.is_set():
            status, resp = c.infer("mlp", {"input": x})
            # allclose: a request batched with others may take another GEMM blocking
            if status != 200 or not np.allclose(resp["outputs"]["output"], expected,
                                                 rtol=1e-5, atol=1e-6):
                failures.append((status, resp))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    c = Http(srv.port)
    for _ in range(3):
        assert _post(c, "/v2/repository/models/scale/unload")[0] == 200
        assert _post(c, "/v2/repository/models/scale/load")[0] == 200
        assert _post(c, "/v2/repository/models/types/load")[0] == 200   # reload in place
    done.set()
    for t in threads:
        t.join()
    assert failures == []


def test_config_reaches_the_batcher(tmp_path):
    import asyncio

    import runnx
    from runnx.server import Repository
    from server_helpers import _save
    _save(scale_model(2.0), str(tmp_path / "m" / "1" / "model.onnx"))
    (tmp_path / "m" / "config.json").write_text(json.dumps({
        "max_batch_size": 6, "instance_group": [{"count": 2}], "max_queue_size": 9,
        "dynamic_batching": {"max_queue_delay_microseconds": 123, "preferred_batch_size": [2, 4]}}))
    repo = Repository(str(tmp_path), ServeDefaults(intra_op_threads=1))

    async def check():
        await repo.load("m")
        m = repo.get("m")
        if hasattr(runnx, "Batcher"):
            b = m.runner.batcher
            assert (b.max_batch_size, b.instance_count, b.max_queue_size) == (6, 2, 9)
            assert b.max_queue_delay_us == 123 and tuple(b.preferred_batch_sizes) == (2, 4)
        res = await m.runner.infer({"x": np.ones((3, 4), np.float32)})
        assert res.outputs["y"].tolist() == [[2.0] * 4] * 3
        await repo.close()

    asyncio.run(check())
