"""Triton's own Python client (tritonclient[http]) against runnx serve; skipped when the client
is not installed."""

import numpy as np
import pytest
import runnx
from runnx.server import ServeDefaults, Server
from server_helpers import DEMO

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def client():
    with Server(DEMO, port=0, defaults=ServeDefaults(intra_op_threads=1)) as srv:
        c = httpclient.InferenceServerClient(url=f"127.0.0.1:{srv.port}")
        yield c
        c.close()


def test_health_metadata_config(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp") and not client.is_model_ready("nope")
    meta = client.get_server_metadata()
    assert meta["name"] == "runnx" and "binary_tensor_data" in meta["extensions"]
    mm = client.get_model_metadata("mlp")
    assert mm["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 64]}
    cfg = client.get_model_config("mlp")
    assert cfg["max_batch_size"] > 0 and cfg["input"][0]["dims"] == [64]


def _infer_checked(client, sess, x, binary: bool, request_id: str):
    """One infer of the mlp with output named, checked against the session; returns the input."""
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("output", binary_data=binary)
    res = client.infer("mlp", [inp], outputs=[out], request_id=request_id)
    assert res.get_response()["id"] == request_id
    np.testing.assert_allclose(res.as_numpy("output"), sess.run(None, {"input": x})[0],
                               rtol=1e-5, atol=1e-6)
    return inp


@pytest.mark.parametrize("binary", [True, False])
def test_infer(client, binary):
    sess = runnx.InferenceSession(DEMO)
    x = np.random.default_rng(5).standard_normal((3, 64)).astype(np.float32)
    inp = _infer_checked(client, sess, x, binary, "t1")
    res = client.infer("mlp", [inp])  # no outputs named: all of them
    assert res.as_numpy("output").shape == (3, 1)


def test_errors_reach_the_client(client):
    x = np.zeros((1, 64), np.float64)
    inp = httpclient.InferInput("input", [1, 64], "FP64")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="datatype FP64 does not match"):
        client.infer("mlp", [inp])
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.get_model_metadata("nope")


def test_statistics_and_repository(client):
    stats = client.get_inference_statistics("mlp")
    assert stats["model_stats"][0]["name"] == "mlp"
    index = client.get_model_repository_index()
    assert index[0]["name"] == "mlp" and index[0]["state"] == "READY"
    client.unload_model("mlp")
    assert not client.is_model_ready("mlp")
    client.load_model("mlp")
    assert client.is_model_ready("mlp")


def test_repeated_binary_requests_take_the_fast_path():
    """The same request shape again and again (what perf_analyzer and most clients send): the
    server's C++ fast path answers from the second on, with the same results."""
    sess = runnx.InferenceSession(DEMO)
    rng = np.random.default_rng(9)
    with Server(DEMO, port=0, defaults=ServeDefaults(intra_op_threads=1)) as srv:
        c = httpclient.InferenceServerClient(url=f"127.0.0.1:{srv.port}")
        taken = srv.app.fast.taken() if srv.app.fast is not None else None
        for _ in range(8):
            _infer_checked(c, sess, rng.standard_normal((2, 64)).astype(np.float32), True, "same")
        stats = c.get_inference_statistics("mlp")["model_stats"][0]
        assert stats["inference_count"] == 16 and stats["inference_stats"]["success"]["count"] == 8
        c.close()
        if taken is not None:  # the client sends each request in one write: all but the first
            assert srv.app.fast.taken() - taken == 7
