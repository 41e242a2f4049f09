"""KServe v2 / Open Inference Protocol codec: JSON and the binary tensor data extension.

Pure functions from request bytes to numpy arrays and from arrays to response bytes; no I/O.

>>> req = decode_infer_request(b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}')
>>> req.inputs["x"].tolist()
[[1.0, 2.0]]
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class ProtocolError(ValueError):
    """A request that does not follow the protocol; answered with 400 and its message."""


# KServe datatype -> numpy dtype (None: numpy has no such type), ONNX word in "tensor(...)".
DATATYPES: dict[str, tuple[Any, str]] = {
    "BOOL": (np.dtype(np.bool_), "bool"),
    "UINT8": (np.dtype("<u1"), "uint8"),
    "UINT16": (np.dtype("<u2"), "uint16"),
    "UINT32": (np.dtype("<u4"), "uint32"),
    "UINT64": (np.dtype("<u8"), "uint64"),
    "INT8": (np.dtype("<i1"), "int8"),
    "INT16": (np.dtype("<i2"), "int16"),
    "INT32": (np.dtype("<i4"), "int32"),
    "INT64": (np.dtype("<i8"), "int64"),
    "FP16": (np.dtype("<f2"), "float16"),
    "FP32": (np.dtype("<f4"), "float32"),
    "FP64": (np.dtype("<f8"), "float64"),
    "BYTES": (np.dtype(object), "string"),
    "BF16": (None, "bfloat16"),
}
_ONNX_TO_KSERVE = {onnx: k for k, (_, onnx) in DATATYPES.items()}
_ONNX_TO_KSERVE["float"] = "FP32"
_ONNX_TO_KSERVE["double"] = "FP64"
_NUMPY_TO_KSERVE = {dt: k for k, (dt, _) in DATATYPES.items() if dt is not None and k != "BYTES"}


def datatype_of_onnx(type_str: str) -> str:
    """``"tensor(float)"`` -> ``"FP32"``; raises ValueError for types KServe cannot carry."""
    word = type_str[len("tensor("):-1] if type_str.startswith("tensor(") else type_str
    try:
        return _ONNX_TO_KSERVE[word]
    except KeyError:
        raise ValueError(f"ONNX type {type_str} has no KServe v2 datatype") from None


def datatype_of_array(a: np.ndarray) -> str:
    if a.dtype.kind in "OSU":
        return "BYTES"
    try:
        return _NUMPY_TO_KSERVE[a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype]
    except KeyError:
        raise ValueError(f"numpy dtype {a.dtype} has no KServe v2 datatype") from None


def triton_type(datatype: str) -> str:
    """KServe datatype -> Triton model-config name (``FP32`` -> ``TYPE_FP32``, BYTES -> TYPE_STRING)."""
    return "TYPE_STRING" if datatype == "BYTES" else "TYPE_" + datatype


@dataclass
class RequestedOutput:
    name: str
    binary: bool | None  # None: follow the request's binary_data_output


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]          # the datatype each input was declared with
    outputs: list[RequestedOutput] | None
    binary_output: bool                # request-level binary_data_output
    parameters: dict = field(default_factory=dict)
    # Shared by every request parsed from the same cached JSON header (None: not cached): what a
    # caller derives from the header alone can be kept here and reused.
    memo: dict | None = None

    @property
    def priority(self) -> int:
        return _int_param(self.parameters, "priority")

    @property
    def timeout_us(self) -> int:
        return _int_param(self.parameters, "timeout")


def _int_param(params: dict, key: str) -> int:
    v = params.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ProtocolError(f"parameter '{key}' must be a non-negative integer, got {v!r}")
    return v


def _shape(inp: dict, name: str) -> tuple[int, ...]:
    shape = inp.get("shape")
    ok = type(shape) is list
    if ok:
        for d in shape:
            if type(d) is not int or d < 0:  # type(): bool is no dimension
                ok = False
                break
    if not ok:
        raise ProtocolError(f"input '{name}': 'shape' must be a list of non-negative integers, "
                            f"got {shape!r}")
    return tuple(shape)


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _from_binary(name: str, datatype: str, shape: tuple[int, ...], raw: memoryview) -> np.ndarray:
    count = _count(shape)
    if datatype == "BYTES":
        items, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise ProtocolError(f"input '{name}': truncated BYTES length prefix")
            (n,) = struct.unpack_from("<I", raw, pos)
            if pos + 4 + n > len(raw):
                raise ProtocolError(f"input '{name}': BYTES element of {n} bytes overruns the data")
            items.append(bytes(raw[pos + 4:pos + 4 + n]))
            pos += 4 + n
        if len(items) != count:
            raise ProtocolError(f"input '{name}': shape {list(shape)} needs {count} BYTES "
                                f"elements, binary data holds {len(items)}")
        out = np.empty(count, dtype=object)
        out[:] = items
        return out.reshape(shape)
    dtype = _numpy_dtype(name, datatype)
    expect = count * dtype.itemsize
    if len(raw) != expect:
        raise ProtocolError(f"input '{name}': binary_data_size {len(raw)} does not match shape "
                            f"{list(shape)} of {datatype} ({expect} bytes)")
    if datatype == "BOOL":
        return (np.frombuffer(raw, np.uint8) != 0).reshape(shape)
    a = np.frombuffer(raw, dtype)
    if not a.flags.aligned:  # the JSON header has any length: realign
        a = a.copy()
    return a.reshape(shape)


def _numpy_dtype(name: str, datatype: str) -> np.dtype:
    try:
        dtype = DATATYPES[datatype][0]
    except KeyError:
        raise ProtocolError(f"input '{name}': unknown datatype {datatype!r}") from None
    if dtype is None:
        raise ProtocolError(f"input '{name}': datatype {datatype} is not supported")
    return dtype


def _from_json(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    count = _count(shape)
    if not isinstance(data, list):
        data = [data]  # a scalar is a one-element tensor
    if datatype == "BYTES":
        flat = _flatten(name, data)
        if len(flat) != count:
            raise ProtocolError(f"input '{name}': shape {list(shape)} needs {count} elements, "
                                f"data has {len(flat)}")
        out = np.empty(count, dtype=object)
        for i, s in enumerate(flat):
            if not isinstance(s, str):
                raise ProtocolError(f"input '{name}': BYTES elements must be JSON strings")
            out[i] = s.encode()
        return out.reshape(shape)
    dtype = _numpy_dtype(name, datatype)  # FP16 as JSON numbers is accepted, as Triton does
    try:
        a = np.asarray(data)
    except ValueError:
        raise ProtocolError(f"input '{name}': 'data' is not a rectangular array") from None
    if a.size != count:
        raise ProtocolError(f"input '{name}': shape {list(shape)} needs {count} elements, "
                            f"data has {a.size}")
    if count == 0:
        return np.zeros(shape, dtype)
    kind = a.dtype.kind
    if datatype == "BOOL":
        if kind != "b":
            raise ProtocolError(f"input '{name}': BOOL data must be JSON true/false")
    elif kind not in "iuf":
        raise ProtocolError(f"input '{name}': {datatype} data must be JSON numbers")
    elif dtype.kind in "iu":
        if kind == "f" and (not np.all(np.isfinite(a)) or np.any(a != np.floor(a))):
            raise ProtocolError(f"input '{name}': {datatype} data must be integers")
        info = np.iinfo(dtype)
        if a.min() < info.min or a.max() > info.max:
            raise ProtocolError(f"input '{name}': a value is out of range for {datatype}")
    return a.astype(dtype, copy=False).reshape(shape)


def _flatten(name: str, data: list) -> list:
    out: list = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if isinstance(x, list):
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return out


# Clients send the same JSON header again and again (same model, shapes, outputs): a request whose
# inputs are all binary is parsed once per distinct header, then only its tensors are read.
_PLANS: dict[bytes, tuple] = {}
_MAX_PLANS = 256


def decode_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Parses an inference request. ``header_length`` is the value of the
    ``Inference-Header-Content-Length`` header (None when absent: the whole body is JSON)."""
    if header_length is not None and 0 <= header_length <= len(body):
        plan = _PLANS.get(body[:header_length])
        if plan is not None and len(body) - header_length == plan[0]:
            _, specs, rid, datatypes, outputs, binary_output, params, memo = plan
            binary = memoryview(body)[header_length:]
            arrays, offset = {}, 0
            for name, datatype, shape, size in specs:
                arrays[name] = _from_binary(name, datatype, shape, binary[offset:offset + size])
                offset += size
            return InferRequest(rid, arrays, datatypes, outputs, binary_output, params, memo)
    req, specs = _decode(body, header_length)
    if specs is not None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        req.memo = {}
        _PLANS[bytes(body[:header_length])] = (
            sum(sp[3] for sp in specs), specs, req.id, req.datatypes, req.outputs,
            req.binary_output, req.parameters, req.memo)
    return req


def binary_inputs(header: bytes) -> list | None:
    """(name, datatype, shape, bytes) of each input of a cached all-binary request header, in
    the order their bytes follow it; None when that header is not cached."""
    plan = _PLANS.get(header)
    return None if plan is None else plan[1]


def _decode(body: bytes, header_length: int | None) -> tuple[InferRequest, list | None]:
    """The full parse; also returns the per-input (name, datatype, shape, size) list when every
    input is binary (so the header can be cached), else None."""
    if header_length is None:
        header, binary = body, memoryview(b"")
    else:
        if header_length < 0 or header_length > len(body):
            raise ProtocolError(f"Inference-Header-Content-Length {header_length} is outside the "
                                f"body of {len(body)} bytes")
        header, binary = body[:header_length], memoryview(body)[header_length:]
    try:
        req = json.loads(header)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed JSON in the request: {e}") from None
    if not isinstance(req, dict):
        raise ProtocolError("the request must be a JSON object")
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError("'parameters' must be a JSON object")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("the request needs a non-empty 'inputs' list")
    arrays: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    specs: list | None = [] if header_length is not None else None
    offset = 0
    for inp in inputs:
        if not isinstance(inp, dict) or not isinstance(inp.get("name"), str):
            raise ProtocolError("each input must be a JSON object with a string 'name'")
        name = inp["name"]
        if name in arrays:
            raise ProtocolError(f"input '{name}' is given twice")
        datatype = inp.get("datatype")
        if not isinstance(datatype, str) or datatype not in DATATYPES:
            raise ProtocolError(f"input '{name}': unknown datatype {datatype!r}")
        shape = _shape(inp, name)
        iparams = inp.get("parameters") or {}
        if not isinstance(iparams, dict):
            raise ProtocolError(f"input '{name}': 'parameters' must be a JSON object")
        if "shared_memory_region" in iparams:
            raise ProtocolError(f"input '{name}': shared memory is not supported")
        size = iparams.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ProtocolError(f"input '{name}': binary_data_size must be a non-negative "
                                    f"integer")
            if "data" in inp:
                raise ProtocolError(f"input '{name}': has both 'data' and binary_data_size")
            if offset + size > len(binary):
                raise ProtocolError(f"input '{name}': binary_data_size {size} overruns the "
                                    f"{len(binary) - offset} bytes of binary data left")
            arrays[name] = _from_binary(name, datatype, shape, binary[offset:offset + size])
            offset += size
            if specs is not None:
                specs.append((name, datatype, shape, size))
        elif "data" in inp:
            arrays[name] = _from_json(name, datatype, shape, inp["data"])
            specs = None
        else:
            raise ProtocolError(f"input '{name}': needs 'data' or a binary_data_size parameter")
        datatypes[name] = datatype
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} bytes of binary data follow the JSON header "
                            f"that no input claims")
    outputs = None
    if req.get("outputs") is not None:
        outs = req["outputs"]
        if not isinstance(outs, list):
            raise ProtocolError("'outputs' must be a list")
        outputs = []
        for o in outs:
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise ProtocolError("each requested output must be a JSON object with a 'name'")
            oparams = o.get("parameters") or {}
            if not isinstance(oparams, dict):
                raise ProtocolError(f"output '{o['name']}': 'parameters' must be a JSON object")
            if oparams.get("classification"):
                raise ProtocolError(f"output '{o['name']}': the classification extension is not "
                                    f"supported")
            if "shared_memory_region" in oparams:
                raise ProtocolError(f"output '{o['name']}': shared memory is not supported")
            b = oparams.get("binary_data")
            outputs.append(RequestedOutput(o["name"], None if b is None else bool(b)))
    rid = req.get("id")
    if rid is not None and not isinstance(rid, str):
        raise ProtocolError("'id' must be a string")
    req = InferRequest(rid, arrays, datatypes, outputs, bool(params.get("binary_data_output")),
                       params)
    _int_param(params, "priority")  # checked now: a cached plan must hold valid parameters
    _int_param(params, "timeout")
    return req, specs


def _bytes_elements(a: np.ndarray) -> list[bytes]:
    out = []
    for x in a.reshape(-1):
        out.append(x.encode() if isinstance(x, str) else bytes(x))
    return out


def tensor_bytes(a: np.ndarray) -> bytes:
    """The binary-extension encoding of one tensor (little-endian, row-major; BOOL one byte;
    BYTES as 4-byte length + bytes per element)."""
    if a.dtype.kind in "OSU":
        return b"".join(struct.pack("<I", len(e)) + e for e in _bytes_elements(a))
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a).tobytes()


def _json_data(a: np.ndarray, name: str) -> list:
    if a.dtype.kind in "OSU":
        try:
            return [e.decode() for e in _bytes_elements(a)]
        except UnicodeDecodeError:
            raise ProtocolError(f"output '{name}' holds bytes that are not UTF-8; request it with "
                                f"binary_data") from None
    return a.reshape(-1).tolist()


# The JSON header of an all-binary response without id depends only on the model and each
# output's name, dtype and shape: built once per distinct one.
_HEADS: dict[tuple, bytes] = {}
_MAX_HEADS = 256


def encode_infer_response(model_name: str, model_version: str, request_id: str | None,
                          outputs: list[tuple[str, np.ndarray, bool]]) -> tuple[bytes, int | None]:
    """Builds the response body from ``(name, array, as_binary)`` triples. Returns the body and
    the JSON header's length when binary data follows it (for Inference-Header-Content-Length),
    else None."""
    if request_id is None and outputs:
        key: tuple | None = (model_name, model_version)
        for name, a, binary in outputs:
            if not binary or a.dtype.kind in "OSU":
                key = None
                break
            key += (name, a.dtype.str, a.shape)
        if key is not None:
            head = _HEADS.get(key)
            if head is None:
                body, head_len = _encode_response(model_name, model_version, None, outputs)
                if len(_HEADS) >= _MAX_HEADS:
                    _HEADS.clear()
                _HEADS[key] = body[:head_len]
                return body, head_len
            return b"".join([head, *(tensor_bytes(a) for _, a, _ in outputs)]), len(head)
    return _encode_response(model_name, model_version, request_id, outputs)


def _encode_response(model_name: str, model_version: str, request_id: str | None,
                     outputs: list[tuple[str, np.ndarray, bool]]) -> tuple[bytes, int | None]:
    objs = []
    blobs = []
    for name, a, binary in outputs:
        o = {"name": name, "datatype": datatype_of_array(a), "shape": list(a.shape)}
        if binary:
            raw = tensor_bytes(a)
            o["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            # No "parameters" member at all: Triton's C++ client then demands binary_data_size.
            o["data"] = _json_data(a, name)
        objs.append(o)
    resp: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        resp["id"] = request_id
    resp["outputs"] = objs
    header = json.dumps(resp, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def encode_infer_request(inputs: dict[str, np.ndarray], *, binary: bool = True,
                         outputs: list[str] | None = None, binary_output: bool = False,
                         request_id: str | None = None) -> tuple[bytes, int | None]:
    """Client side (tests and bench): the body of an inference request and, when it carries
    binary data, the JSON header length for Inference-Header-Content-Length."""
    objs, blobs = [], []
    for name, a in inputs.items():
        o: dict[str, Any] = {"name": name, "shape": list(a.shape), "datatype": datatype_of_array(a)}
        if binary:
            raw = tensor_bytes(a)
            o["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            o["data"] = _json_data(a, name)
        objs.append(o)
    req: dict[str, Any] = {"inputs": objs}
    if request_id is not None:
        req["id"] = request_id
    if outputs is not None:
        req["outputs"] = [{"name": n, "parameters": {"binary_data": binary_output}}
                          for n in outputs]
    elif binary_output:
        req["parameters"] = {"binary_data_output": True}
    header = json.dumps(req, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def decode_infer_response(body: bytes, header_length: int | None) -> dict[str, Any]:
    """Client side: ``{"id", "model_name", "model_version", "outputs": {name: ndarray}}``."""
    header = body if header_length is None else body[:header_length]
    resp = json.loads(header)
    view = memoryview(body)[len(header):]
    offset = 0
    outs = {}
    for o in resp["outputs"]:
        shape = tuple(o["shape"])
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            outs[o["name"]] = _from_binary(o["name"], o["datatype"], shape,
                                           view[offset:offset + size])
            offset += size
        else:
            outs[o["name"]] = _from_json(o["name"], o["datatype"], shape, o["data"])
    resp["outputs"] = outs
    return resp
