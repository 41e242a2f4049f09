"""Helpers for the server tests: a model repository built from code and a raw HTTP client
(http.client, so nothing hides the wire format)."""

from __future__ import annotations

import http.client
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from runnx.server.kserve import decode_infer_response, encode_infer_request

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "python", "runnx", "demo", "mlp.onnx")


def _save(model: onnx.ModelProto, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.ir_version = 8
    onnx.save(model, path)


def identity_types_model() -> onnx.ModelProto:
    """Four inputs of different datatypes, each [batch, 3], echoed (Identity) to four outputs."""
    types = {"f16": TensorProto.FLOAT16, "i64": TensorProto.INT64, "b": TensorProto.BOOL,
             "u8": TensorProto.UINT8}
    nodes = [helper.make_node("Identity", [k], [f"{k}_out"]) for k in types]
    g = helper.make_graph(
        nodes, "types",
        [helper.make_tensor_value_info(k, t, ["batch", 3]) for k, t in types.items()],
        [helper.make_tensor_value_info(f"{k}_out", t, ["batch", 3]) for k, t in types.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def fixed_model() -> onnx.ModelProto:
    """No batch dimension: y[2,3] = x[2,3] * 2 (served without batching)."""
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def scale_model(k: float) -> onnx.ModelProto:
    """y[batch, 4] = x * k: versions of one model told apart by k."""
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])], "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.array(k, np.float32), "k")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def slow_model(n_layers: int = 12, width: int = 512) -> onnx.ModelProto:
    """A chain of [batch, width] x [width, width] MatMuls: a few ms per request."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(n_layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    g = helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def write_repository(root: str) -> str:
    """models/: mlp (the demo, batching), types (dtype echo), fixed (no batch dim), scale
    (versions 1..3, policy latest 2), broken (not a model)."""
    with open(DEMO, "rb") as f:
        demo = f.read()
    os.makedirs(os.path.join(root, "mlp", "1"), exist_ok=True)
    with open(os.path.join(root, "mlp", "1", "model.onnx"), "wb") as f:
        f.write(demo)
    with open(os.path.join(root, "mlp", "config.json"), "w") as f:
        json.dump({"max_batch_size": 16, "dynamic_batching": {"max_queue_delay_microseconds": 2000}},
                  f)
    _save(identity_types_model(), os.path.join(root, "types", "1", "model.onnx"))
    _save(fixed_model(), os.path.join(root, "fixed", "1", "model.onnx"))
    for v in (1, 2, 3):
        _save(scale_model(float(v)), os.path.join(root, "scale", str(v), "model.onnx"))
    with open(os.path.join(root, "scale", "config.json"), "w") as f:
        json.dump({"version_policy": {"latest": {"num_versions": 2}}, "max_batch_size": 8}, f)
    os.makedirs(os.path.join(root, "broken", "1"), exist_ok=True)
    with open(os.path.join(root, "broken", "1", "model.onnx"), "wb") as f:
        f.write(b"this is not an onnx model")
    return root


class Http:
    """Raw HTTP/1.1 to the server (one keep-alive connection per instance)."""

    def __init__(self, port: int, token: str | None = None):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        h = dict(headers or {})
        if self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        if r.getheader("connection", "").lower() == "close":
            self.conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def get_json(self, path: str):
        status, _, body = self.request("GET", path)
        return status, (json.loads(body) if body else None)

    def infer(self, model: str, inputs: dict, binary: bool = True, binary_output: bool = True,
              outputs=None, version: str = ""):
        body, hl = encode_infer_request(inputs, binary=binary, binary_output=binary_output,
                                        outputs=outputs)
        headers = {} if hl is None else {"Inference-Header-Content-Length": str(hl)}
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        status, h, data = self.request("POST", path, body, headers)
        if status != 200:
            return status, json.loads(data)
        hl = h.get("inference-header-content-length")
        return status, decode_infer_response(data, None if hl is None else int(hl))

    def close(self):
        self.conn.close()


