"""The KServe v2 codec on its own: JSON and binary tensors, every datatype, and malformed input."""

import json
import struct

import numpy as np
import pytest
from runnx.server.kserve import (
    ProtocolError,
    datatype_of_onnx,
    decode_infer_request,
    decode_infer_response,
    encode_infer_request,
    encode_infer_response,
    tensor_bytes,
    triton_type,
)

RNG = np.random.default_rng(7)


def _arrays():
    return {
        "fp32": RNG.standard_normal((2, 3, 5)).astype(np.float32),
        "fp64": RNG.standard_normal((7,)).astype(np.float64),
        "fp16": RNG.standard_normal((3, 1)).astype(np.float16),
        "i64": RNG.integers(-2**40, 2**40, (4, 2)).astype(np.int64),
        "i32": RNG.integers(-1000, 1000, (1, 1, 3)).astype(np.int32),
        "i8": RNG.integers(-128, 128, (5,)).astype(np.int8),
        "u8": RNG.integers(0, 256, (2, 2)).astype(np.uint8),
        "u16": RNG.integers(0, 2**16, (3,)).astype(np.uint16),
        "u64": RNG.integers(0, 2**62, (2,)).astype(np.uint64),
        "b": RNG.random((3, 3)) < 0.5,
        "empty": np.zeros((0, 4), np.float32),
    }


@pytest.mark.parametrize("binary", [True, False])
def test_request_roundtrip_every_datatype(binary):
    arrays = _arrays()
    body, hl = encode_infer_request(arrays, binary=binary)
    assert (hl is not None) == binary
    req = decode_infer_request(body, hl)
    assert list(req.inputs) == list(arrays)
    for k, a in arrays.items():
        got = req.inputs[k]
        assert got.dtype == a.dtype and got.shape == a.shape, k
        np.testing.assert_array_equal(got, a)


def test_binary_layout_is_little_endian_row_major():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert tensor_bytes(a) == struct.pack("<6f", *range(6))
    # A transposed (non-contiguous) view is sent in its logical row-major order.
    assert tensor_bytes(a.T) == struct.pack("<6f", 0, 3, 1, 4, 2, 5)
    assert tensor_bytes(np.array([True, False, True])) == b"\x01\x00\x01"
    big_endian = np.arange(3, dtype=">i4")
    assert tensor_bytes(big_endian) == struct.pack("<3i", 0, 1, 2)


def test_bytes_tensor_binary_and_json():
    a = np.array([[b"ab", b""], [b"\xff\x00", "z\u00e9".encode()]], dtype=object)
    raw = tensor_bytes(a)
    assert raw[:6] == struct.pack("<I", 2) + b"ab"
    header = json.dumps({"inputs": [{"name": "s", "shape": [2, 2], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    req = decode_infer_request(header + raw, len(header))
    assert req.inputs["s"].tolist() == a.tolist()
    req = decode_infer_request(json.dumps({"inputs": [
        {"name": "s", "shape": [3], "datatype": "BYTES", "data": ["a", "b\u00e9", ""]}]}).encode())
    assert req.inputs["s"].tolist() == [b"a", "b\u00e9".encode(), b""]
    # Non-UTF-8 bytes cannot go out as JSON: the error says to ask for binary data.
    with pytest.raises(ProtocolError, match="binary_data"):
        encode_infer_response("m", "1", None, [("s", a, False)])
    body, hl = encode_infer_response("m", "1", None, [("s", a, True)])
    assert decode_infer_response(body, hl)["outputs"]["s"].tolist() == a.tolist()


def test_json_data_nested_or_flat_is_row_major():
    for data in ([1, 2, 3, 4, 5, 6], [[1, 2, 3], [4, 5, 6]], [[1, 2], [3, 4], [5, 6]]):
        req = decode_infer_request(json.dumps({"inputs": [
            {"name": "x", "shape": [2, 3], "datatype": "INT32", "data": data}]}).encode())
        np.testing.assert_array_equal(req.inputs["x"], [[1, 2, 3], [4, 5, 6]])
        assert req.inputs["x"].dtype == np.int32


def test_fp16_in_json_and_scalars():
    req = decode_infer_request(json.dumps({"inputs": [
        {"name": "h", "shape": [2], "datatype": "FP16", "data": [0.5, -1.25]},
        {"name": "s", "shape": [], "datatype": "FP32", "data": 3.5}]}).encode())
    assert req.inputs["h"].dtype == np.float16 and req.inputs["h"].tolist() == [0.5, -1.25]
    assert req.inputs["s"].shape == () and float(req.inputs["s"]) == 3.5


@pytest.mark.parametrize("inp, message", [
    ({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}, "needs 4 elements"),
    ({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]}, "rectangular"),
    ({"name": "x", "shape": [2], "datatype": "FP32", "data": ["1", "2"]}, "JSON numbers"),
    ({"name": "x", "shape": [2], "datatype": "INT32", "data": [1.5, 2]}, "integers"),
    ({"name": "x", "shape": [1], "datatype": "UINT8", "data": [256]}, "out of range"),
    ({"name": "x", "shape": [1], "datatype": "INT8", "data": [-129]}, "out of range"),
    ({"name": "x", "shape": [2], "datatype": "BOOL", "data": [1, 0]}, "true/false"),
    ({"name": "x", "shape": [2], "datatype": "FLOAT", "data": [1, 0]}, "unknown datatype"),
    ({"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}, "non-negative"),
    ({"name": "x", "shape": "2", "datatype": "FP32", "data": [1]}, "non-negative"),
    ({"name": "x", "shape": [1], "datatype": "FP32"}, "needs 'data'"),
    ({"name": "x", "shape": [1], "datatype": "BF16", "data": [1]}, "not supported"),
    ({"shape": [1], "datatype": "FP32", "data": [1]}, "string 'name'"),
])
def test_bad_json_inputs_are_named(inp, message):
    with pytest.raises(ProtocolError, match=message):
        decode_infer_request(json.dumps({"inputs": [inp]}).encode())


@pytest.mark.parametrize("body, message", [
    (b'{"inputs": [', "malformed JSON"),
    (b'[1, 2]', "JSON object"),
    (b'{"inputs": []}', "non-empty 'inputs'"),
    (b'{"id": 5, "inputs": [{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}', "'id'"),
    ((b'{"inputs": [{"name":"x","shape":[1],"datatype":"FP32","data":[1]},'
      b'{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}'), "given twice"),
    ((b'{"parameters": {"priority": -1}, "inputs": [{"name":"x","shape":[1],"datatype":"FP32",'
      b'"data":[1]}]}'), None),
])
def test_bad_request_bodies(body, message):
    if message is None:  # priority is validated when read
        with pytest.raises(ProtocolError, match="priority"):
            _ = decode_infer_request(body).priority
        return
    with pytest.raises(ProtocolError, match=message):
        decode_infer_request(body)


def _binary_request(size_declared: int, payload: bytes, shape=(2,), datatype="FP32"):
    header = json.dumps({"inputs": [{"name": "x", "shape": list(shape), "datatype": datatype,
                                     "parameters": {"binary_data_size": size_declared}}]}).encode()
    return header + payload, len(header)


def test_binary_size_errors():
    body, hl = _binary_request(8, b"\0" * 8)
    assert decode_infer_request(body, hl).inputs["x"].tolist() == [0.0, 0.0]
    with pytest.raises(ProtocolError, match="does not match shape"):
        decode_infer_request(*_binary_request(4, b"\0" * 4))
    with pytest.raises(ProtocolError, match="overruns"):
        decode_infer_request(*_binary_request(8, b"\0" * 6))
    with pytest.raises(ProtocolError, match="no input claims"):
        decode_infer_request(*_binary_request(8, b"\0" * 12))
    body, hl = _binary_request(8, b"\0" * 8)
    with pytest.raises(ProtocolError, match="outside the body"):
        decode_infer_request(body, len(body) + 1)
    with pytest.raises(ProtocolError, match="malformed JSON"):
        decode_infer_request(body, hl - 3)  # a header length that cuts the JSON short


def test_unaligned_binary_data_is_usable():
    a = RNG.standard_normal(5).astype(np.float64)
    for pad in range(8):  # headers of every length modulo 8
        header = json.dumps({"id": "x" * pad, "inputs": [{"name": "x", "shape": [5],
                            "datatype": "FP64", "parameters": {"binary_data_size": 40}}]}).encode()
        got = decode_infer_request(header + a.tobytes(), len(header)).inputs["x"]
        assert got.ctypes.data % 8 == 0
        np.testing.assert_array_equal(got, a)


def test_response_json_outputs_have_no_parameters_member():
    # perf_analyzer's C++ client fails on an output with "parameters" but no binary_data_size.
    y = np.arange(6, dtype=np.float32).reshape(3, 2)
    body, hl = encode_infer_response("m", "2", "42", [("y", y, False)])
    assert hl is None
    resp = json.loads(body)
    assert resp == {"model_name": "m", "model_version": "2", "id": "42", "outputs": [
        {"name": "y", "datatype": "FP32", "shape": [3, 2], "data": [0, 1, 2, 3, 4, 5]}]}


def test_response_mixed_binary_and_json():
    y = RNG.standard_normal((2, 2)).astype(np.float32)
    z = np.array([1, 2, 3], np.int64)
    body, hl = encode_infer_response("m", "1", None, [("y", y, True), ("z", z, False)])
    header = json.loads(body[:hl])
    assert "id" not in header
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert header["outputs"][1]["data"] == [1, 2, 3] and "parameters" not in header["outputs"][1]
    assert len(body) == hl + 16
    out = decode_infer_response(body, hl)["outputs"]
    np.testing.assert_array_equal(out["y"], y)
    np.testing.assert_array_equal(out["z"], z)


def test_requested_outputs_and_parameters():
    req = decode_infer_request(json.dumps({
        "id": "r1", "parameters": {"binary_data_output": True, "priority": 1, "timeout": 5000},
        "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
        "outputs": [{"name": "a"}, {"name": "b", "parameters": {"binary_data": False}}]}).encode())
    assert req.id == "r1" and req.binary_output and req.priority == 1 and req.timeout_us == 5000
    assert [(o.name, o.binary) for o in req.outputs] == [("a", None), ("b", False)]
    with pytest.raises(ProtocolError, match="classification"):
        decode_infer_request(json.dumps({
            "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
            "outputs": [{"name": "a", "parameters": {"classification": 3}}]}).encode())


def test_type_names():
    assert datatype_of_onnx("tensor(float)") == "FP32"
    assert datatype_of_onnx("tensor(float16)") == "FP16"
    assert datatype_of_onnx("tensor(string)") == "BYTES"
    assert datatype_of_onnx("tensor(bfloat16)") == "BF16"
    assert datatype_of_onnx("tensor(bool)") == "BOOL"
    assert triton_type("FP32") == "TYPE_FP32" and triton_type("BYTES") == "TYPE_STRING"
    with pytest.raises(ValueError):
        datatype_of_onnx("tensor(complex64)")


def test_repeated_binary_headers_decode_each_payload():
    from runnx.server import kserve
    a = RNG.standard_normal((2, 3)).astype(np.float32)
    b = RNG.standard_normal((2, 3)).astype(np.float32)
    body_a, hl = encode_infer_request({"x": a, "m": np.array([True, False])})
    body_b, hl_b = encode_infer_request({"x": b, "m": np.array([False, True])})
    assert body_a[:hl] == body_b[:hl_b]               # same header, other tensors
    for body, x, m in ((body_a, a, [True, False]), (body_b, b, [False, True]), (body_a, a, None)):
        req = decode_infer_request(body, hl)
        np.testing.assert_array_equal(req.inputs["x"], x)
        if m is not None:
            assert req.inputs["m"].tolist() == m
    assert body_a[:hl] in kserve._PLANS
    with pytest.raises(ProtocolError, match="no input claims"):   # a cached header, wrong size
        decode_infer_request(body_a + b"\0", hl)
    json_body, _ = encode_infer_request({"x": a}, binary=False)
    decode_infer_request(json_body, len(json_body))  # JSON data: nothing cached
    assert json_body not in kserve._PLANS


def test_cached_response_header_matches_a_fresh_one():
    from runnx.server import kserve
    outs = [("y", RNG.standard_normal((3, 2)).astype(np.float32), True),
            ("flag", RNG.random((3,)) < 0.5, True),
            ("idx", RNG.integers(0, 9, (3, 1)).astype(np.int64), True)]
    first, hl = encode_infer_response("m", "1", None, outs)
    again = [(n, RNG.standard_normal(a.shape).astype(a.dtype) if a.dtype.kind == "f" else a, b)
             for n, a, b in outs]
    second, hl2 = encode_infer_response("m", "1", None, again)   # from the cached header
    assert ("m", "1", "y", "<f4", (3, 2), "flag", "|b1", (3,), "idx", "<i8", (3, 1)) in kserve._HEADS
    assert hl == hl2 and first[:hl] == second[:hl2]
    for body, h, src in ((first, hl, outs), (second, hl2, again)):
        resp = decode_infer_response(body, h)
        for n, a, _ in src:
            np.testing.assert_array_equal(resp["outputs"][n], a)
    # Other shapes, an id or JSON data each get their own header.
    other, hl3 = encode_infer_response("m", "1", None, [("y", np.zeros((1, 2), np.float32), True)])
    assert json.loads(other[:hl3])["outputs"][0]["shape"] == [1, 2]
    with_id, hl4 = encode_infer_response("m", "1", "r7", outs)
    assert json.loads(with_id[:hl4])["id"] == "r7"
    as_json, hl5 = encode_infer_response("m", "1", None, [("y", outs[0][1], False)])
    assert hl5 is None and json.loads(as_json)["outputs"][0]["data"] == outs[0][1].ravel().tolist()


def test_requests_from_one_cached_header_share_a_memo():
    x = RNG.standard_normal((1, 4)).astype(np.float32)
    body, hl = encode_infer_request({"x": x})
    r1, r2 = decode_infer_request(body, hl), decode_infer_request(body, hl)
    assert r1.memo is not None and r1.memo is r2.memo
    json_body, _ = encode_infer_request({"x": x}, binary=False)
    assert decode_infer_request(json_body).memo is None
