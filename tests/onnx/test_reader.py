"""runnx's own ONNX reader against the `onnx` package, and on hostile bytes.

Every model is built by code (onnx.helper, or the small protobuf writer below for encodings that
onnx.helper never produces). `parse_model` returns plain Python; `describe_onnx` builds the same
description from onnx's own parse, and the two must agree field by field.
"""

from __future__ import annotations

import glob
import math
import os
import re
import struct

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from runnx._C import _testing

parse_model = _testing.parse_model

# ---- a minimal protobuf writer, for encodings onnx.helper never produces --------------------


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 values use ten bytes, as protobuf writes them
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def pb_int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def pb_bytes(field: int, value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    return _key(field, 2) + _varint(len(value)) + value


def pb_f32(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", value)


def pb_f64(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", value)


def pb_packed_varints(field: int, values) -> bytes:
    return pb_bytes(field, b"".join(_varint(v) for v in values))


def pb_model(graph: bytes, *, opset: int = 17, extra: bytes = b"") -> bytes:
    """ModelProto: ir_version 8, the graph, one default-domain opset import."""
    opset_import = pb_bytes(8, pb_bytes(1, "") + pb_int(2, opset))
    return pb_int(1, 8) + pb_bytes(7, graph) + opset_import + extra


def pb_graph_with_initializer(tensor: bytes) -> bytes:
    return pb_bytes(2, "g") + pb_bytes(5, tensor)


# Unknown fields of every valid wire type, placed in each message to check they are skipped.
UNKNOWN = (
    pb_int(900, 123456789) + pb_f64(901, 1.0) + pb_bytes(902, b"\x01\x02\x03") + pb_f32(903, 2.0)
)

# ---- the reference description, from the onnx package ---------------------------------------


def _onnx_dims(vi):
    t = vi.type
    if not t.HasField("tensor_type"):
        return 0, None
    tt = t.tensor_type
    if not tt.HasField("shape"):
        return tt.elem_type, None
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(d.dim_value)
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tt.elem_type, dims


def _onnx_vi(vi):
    dtype, dims = _onnx_dims(vi)
    return (vi.name, dtype, dims)


def _onnx_tensor(t: TensorProto, base_dir: str = ""):
    if t.data_type == TensorProto.STRING:
        return np.empty(tuple(t.dims), dtype=object)
    return numpy_helper.to_array(t, base_dir)


def _onnx_attr(a):
    A = onnx.AttributeProto
    if a.type in (A.SPARSE_TENSOR, A.SPARSE_TENSORS, A.TYPE_PROTO, A.TYPE_PROTOS):
        return None
    if a.type == A.TENSOR:
        return _onnx_tensor(a.t)
    if a.type == A.TENSORS:
        return [_onnx_tensor(t) for t in a.tensors]
    if a.type == A.GRAPH:
        return describe_graph(a.g)
    if a.type == A.GRAPHS:
        return [describe_graph(g) for g in a.graphs]
    v = helper.get_attribute_value(a)
    return list(v) if isinstance(v, (list, tuple)) or type(v).__name__.startswith("Repeated") else v


def describe_graph(g, base_dir: str = "") -> dict:
    return {
        "name": g.name,
        "doc": g.doc_string,
        "inputs": [_onnx_vi(v) for v in g.input],
        "outputs": [_onnx_vi(v) for v in g.output],
        "value_info": [_onnx_vi(v) for v in g.value_info],
        "nodes": [
            {
                "name": n.name,
                "op_type": n.op_type,
                "domain": n.domain,
                "inputs": list(n.input),
                "outputs": list(n.output),
                "attrs": {a.name: _onnx_attr(a) for a in n.attribute},
            }
            for n in g.node
        ],
        "initializers": [(t.name, _onnx_tensor(t, base_dir)) for t in g.initializer],
    }


def describe_onnx(m: onnx.ModelProto, base_dir: str = "") -> dict:
    return {
        "ir_version": m.ir_version,
        "opsets": [(o.domain, o.version) for o in m.opset_import],
        "producer_name": m.producer_name,
        "producer_version": m.producer_version,
        "domain": m.domain,
        "model_version": m.model_version,
        "doc": m.doc_string,
        "metadata": [(p.key, p.value) for p in m.metadata_props],
        "graph": describe_graph(m.graph, base_dir),
    }


def assert_same(ours, ref, path="model"):
    """Deep comparison; `ours` may carry extra dict keys. Arrays: same shape, element size and
    bytes (bfloat16 comes back from runnx as its uint16 bit patterns)."""
    if isinstance(ref, dict):
        assert isinstance(ours, dict), path
        for k, v in ref.items():
            assert k in ours, f"{path}: missing key {k!r}"
            assert_same(ours[k], v, f"{path}.{k}")
    elif isinstance(ref, np.ndarray):
        assert isinstance(ours, np.ndarray), f"{path}: {type(ours)}"
        assert ours.shape == ref.shape, f"{path}: shape {ours.shape} != {ref.shape}"
        if ref.dtype == object:
            assert ours.dtype == object, path
            return
        assert ours.dtype.itemsize == ref.dtype.itemsize, f"{path}: {ours.dtype} vs {ref.dtype}"
        assert ours.tobytes() == np.ascontiguousarray(ref).tobytes(), f"{path}: values differ"
    elif isinstance(ref, (list, tuple)):
        assert isinstance(ours, (list, tuple)), f"{path}: {type(ours)}"
        assert len(ours) == len(ref), f"{path}: length {len(ours)} != {len(ref)}"
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(ref, float):
        assert isinstance(ours, float), path
        assert (math.isnan(ours) and math.isnan(ref)) or ours == ref, f"{path}: {ours} != {ref}"
    else:
        assert type(ours) is type(ref) and ours == ref, f"{path}: {ours!r} != {ref!r}"


def check_model(model: onnx.ModelProto) -> dict:
    """Parses `model` three ways (bytes in place, bytes copied, from onnx's own re-parse) and
    compares each with the onnx package's description."""
    data = model.SerializeToString()
    ref = describe_onnx(onnx.load_from_string(data))
    ours = parse_model(data)
    assert_same(ours, ref)
    copied = parse_model(data, copy=True)
    assert_same(copied, ref)
    assert not any(copied["graph"]["initializer_in_place"])
    return ours


def expect_invalid(data, **kw) -> str:
    """Parsing must raise InvalidModel naming a field and a byte offset."""
    with pytest.raises(Exception) as ei:
        parse_model(data, **kw)
    names = [c.__name__ for c in type(ei.value).__mro__]
    assert "InvalidModel" in names, f"{type(ei.value).__name__}: {ei.value}"
    msg = str(ei.value)
    assert re.search(r"field\b.*\bbyte \d+", msg), msg
    return msg


def make_graph_model(nodes, inputs, outputs, inits=(), value_info=(), **model_kw):
    g = helper.make_graph(
        list(nodes), "main", list(inputs), list(outputs), list(inits), value_info=list(value_info)
    )
    kw = {"opset_imports": [helper.make_opsetid("", 17)]}
    kw.update(model_kw)
    return helper.make_model(g, **kw)


# ---- well-formed models ---------------------------------------------------------------------

ALL_DTYPES = [
    (TensorProto.FLOAT, np.float32),
    (TensorProto.UINT8, np.uint8),
    (TensorProto.INT8, np.int8),
    (TensorProto.UINT16, np.uint16),
    (TensorProto.INT16, np.int16),
    (TensorProto.INT32, np.int32),
    (TensorProto.INT64, np.int64),
    (TensorProto.BOOL, np.bool_),
    (TensorProto.FLOAT16, np.float16),
    (TensorProto.DOUBLE, np.float64),
    (TensorProto.UINT32, np.uint32),
    (TensorProto.UINT64, np.uint64),
    (TensorProto.BFLOAT16, None),  # numpy has none: built from float32 bit patterns
]


def _sample(onnx_type, np_type, shape=(2, 3, 5)):
    rng = np.random.default_rng(onnx_type)
    n = int(np.prod(shape))
    if onnx_type == TensorProto.BFLOAT16:
        vals = rng.standard_normal(n).astype(np.float32)
        return vals, (vals.view(np.uint32) >> 16).astype(np.uint16).reshape(shape)
    if np_type == np.bool_:
        arr = rng.integers(0, 2, n).astype(np.bool_)
    elif np.issubdtype(np_type, np.integer):
        info = np.iinfo(np_type)
        arr = rng.integers(info.min, info.max, n, dtype=np_type, endpoint=True)
    else:
        arr = (rng.standard_normal(n) * 100).astype(np_type)
    arr = arr.reshape(shape)
    return arr, arr


def test_reader_basic_model_matches_onnx():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "seq"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    b = numpy_helper.from_array(np.array([1, -2], dtype=np.int64), "b")
    vi = helper.make_tensor_value_info("h", TensorProto.FLOAT, [None, 4])
    n1 = helper.make_node("MatMul", ["x", "w"], ["h"], name="mm", doc_string="matmul")
    n2 = helper.make_node("Relu", ["h"], ["y"], name="act")
    m = make_graph_model(
        [n1, n2],
        [x],
        [y],
        [w, b],
        [vi],
        opset_imports=[
            helper.make_opsetid("", 17),
            helper.make_opsetid("ai.onnx.ml", 3),
            helper.make_opsetid("com.microsoft", 1),
        ],
        producer_name="runnx-tests",
        producer_version="1.2.3",
        domain="org.runnx",
        model_version=42,
        doc_string="a test model",
    )
    m.graph.doc_string = "graph doc"
    helper.set_model_props(m, {"author": "me", "license": "apache", "empty": ""})
    d = check_model(m)
    assert d["graph"]["inputs"][0] == ("x", TensorProto.FLOAT, ["batch", 3, "seq"])
    assert d["opsets"] == [("", 17), ("ai.onnx.ml", 3), ("com.microsoft", 1)]
    assert d["metadata"] == [("author", "me"), ("license", "apache"), ("empty", "")]
    assert d["model_version"] == 42 and d["producer_version"] == "1.2.3"


def test_reader_every_attribute_type():
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["o"])],
        "then_g",
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "a")],
    )
    other_g = helper.make_graph([], "other", [], [])
    t1 = numpy_helper.from_array(np.array([[1, 2], [3, 4]], np.int32), "t1")
    t2 = helper.make_tensor("t2", TensorProto.DOUBLE, [3], [0.5, -1.5, 1e300], raw=False)
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sv", TensorProto.FLOAT, [2], [1.0, 2.0]),
        helper.make_tensor("si", TensorProto.INT64, [2], [0, 3]),
        [5],
    )
    node = helper.make_node(
        "Custom",
        ["x", ""],
        ["y", "", "z"],
        name="everything",
        domain="test.domain",
        f=1.25,
        f_nan=float("nan"),
        i=-7,
        i_big=2**62,
        s="hello",
        s_bin=b"\x00\xff",
        t=t1,
        g=then_g,
        floats=[1.0, -2.5, 3e38],
        ints=[1, -2, 3**30],
        strings=["a", "bc", ""],
        tensors=[t1, t2],
        graphs=[then_g, other_g],
        sp=sparse,
        tp=helper.make_tensor_type_proto(TensorProto.FLOAT, [1]),
    )
    node.attribute.extend(
        [
            helper.make_attribute("empty_ints", [], attr_type=onnx.AttributeProto.INTS),
            helper.make_attribute("empty_floats", [], attr_type=onnx.AttributeProto.FLOATS),
            helper.make_attribute("empty_strings", [], attr_type=onnx.AttributeProto.STRINGS),
        ]
    )
    m = make_graph_model(
        [node],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    d = check_model(m)
    attrs = d["graph"]["nodes"][0]["attrs"]
    assert attrs["s"] == b"hello" and attrs["i"] == -7 and attrs["i_big"] == 2**62
    assert attrs["g"]["name"] == "then_g" and attrs["graphs"][1]["name"] == "other"
    assert attrs["empty_ints"] == [] and attrs["sp"] is None and attrs["tp"] is None
    assert d["graph"]["nodes"][0]["inputs"] == ["x", ""]


def test_reader_if_subgraphs():
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n"])

    def branch(name, value):
        c = numpy_helper.from_array(np.full((3,), value, np.float32), f"{name}_c")
        return helper.make_graph(
            [helper.make_node("Identity", [f"{name}_c"], [f"{name}_o"], name=f"{name}_id")],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_o", TensorProto.FLOAT, [3])],
            [c],
        )

    inner_if = helper.make_node(
        "If", ["cond"], ["inner"], then_branch=branch("tt", 1.0), else_branch=branch("te", 2.0)
    )
    then_g = helper.make_graph(
        [inner_if], "then", [], [helper.make_tensor_value_info("inner", TensorProto.FLOAT, [3])]
    )
    node = helper.make_node(
        "If", ["cond"], ["out"], name="if0", then_branch=then_g, else_branch=branch("else", 3.0)
    )
    d = check_model(make_graph_model([node], [cond], [out]))
    then_d = d["graph"]["nodes"][0]["attrs"]["then_branch"]
    assert then_d["nodes"][0]["attrs"]["else_branch"]["initializers"][0][0] == "te_c"


@pytest.mark.parametrize("onnx_type,np_type", ALL_DTYPES, ids=lambda v: str(v))
def test_reader_tensor_raw_data_every_dtype(onnx_type, np_type):
    vals, bits = _sample(onnx_type, np_type)
    raw = helper.make_tensor("r", onnx_type, bits.shape, bits.tobytes(), raw=True)
    inits = [raw]
    if np_type is not None:
        inits.append(numpy_helper.from_array(vals, "from_array"))
    d = check_model(make_graph_model([], [], [], inits))
    assert d["graph"]["initializers"][0][1].tobytes() == bits.tobytes()


@pytest.mark.parametrize("onnx_type,np_type", ALL_DTYPES, ids=lambda v: str(v))
def test_reader_tensor_typed_fields_every_dtype(onnx_type, np_type):
    vals, bits = _sample(onnx_type, np_type)
    flat = vals.reshape(-1)
    t = helper.make_tensor(
        "typed",
        onnx_type,
        vals.shape,
        flat.tolist() if np_type in (np.uint64, np.uint32) else flat,
        raw=False,
    )
    assert not t.raw_data
    scalar = helper.make_tensor("scalar", onnx_type, [], flat[:1], raw=False)
    empty = helper.make_tensor("empty", onnx_type, [0, 3], [], raw=False)
    d = check_model(make_graph_model([], [], [], [t, scalar, empty]))
    ours = d["graph"]["initializers"]
    if onnx_type != TensorProto.BFLOAT16:  # make_tensor rounds to bfloat16; _sample truncates
        assert ours[0][1].tobytes() == bits.tobytes()
    assert ours[1][1].shape == () and ours[2][1].shape == (0, 3)
    # Typed fields are always decoded into a fresh tensor.
    assert not any(d["graph"]["initializer_in_place"])


def test_reader_unpacked_and_mixed_typed_encodings():
    """proto2 writers may emit repeated scalars unpacked, or mix packed runs and single values;
    dims may also come packed."""
    floats = [1.5, -2.0, 3.25, 0.0]
    t_f = (
        pb_int(1, 2)
        + pb_int(1, 2)
        + pb_int(2, TensorProto.FLOAT)
        + pb_bytes(8, "f")
        + b"".join(pb_f32(4, v) for v in floats)
        + UNKNOWN
    )
    t_i64 = (
        pb_packed_varints(1, [3])
        + pb_int(2, TensorProto.INT64)
        + pb_bytes(8, "i64")
        + pb_int(7, -5)
        + pb_packed_varints(7, [2**40, 7])
    )
    t_i8 = (
        pb_int(1, 4)
        + pb_int(2, TensorProto.INT8)
        + pb_bytes(8, "i8")
        + pb_packed_varints(5, [-128, 127])
        + pb_int(5, -1)
        + pb_int(5, 0)
    )
    t_d = (
        pb_int(1, 2)
        + pb_int(2, TensorProto.DOUBLE)
        + pb_bytes(8, "d")
        + pb_f64(10, 1e-300)
        + pb_bytes(10, struct.pack("<d", -4.5))
    )
    t_u64 = (
        pb_int(1, 2)
        + pb_int(2, TensorProto.UINT64)
        + pb_bytes(8, "u64")
        + pb_int(11, 2**64 - 1)
        + pb_int(11, 9)
    )
    graph = pb_bytes(2, "g") + b"".join(pb_bytes(5, t) for t in (t_f, t_i64, t_i8, t_d, t_u64))
    data = pb_model(graph)
    ref = describe_onnx(onnx.load_from_string(data))
    ours = parse_model(data)
    assert_same(ours, ref)
    inits = dict(ours["graph"]["initializers"])
    np.testing.assert_array_equal(inits["f"], np.array(floats, np.float32).reshape(2, 2))
    np.testing.assert_array_equal(inits["i64"], [-5, 2**40, 7])
    np.testing.assert_array_equal(inits["i8"], [-128, 127, -1, 0])
    np.testing.assert_array_equal(inits["u64"], np.array([2**64 - 1, 9], np.uint64))


def test_reader_unknown_fields_skipped_everywhere():
    attr = pb_bytes(1, "alpha") + UNKNOWN + pb_int(20, 1) + pb_f32(2, 0.5)
    node = (
        pb_bytes(1, "x")
        + UNKNOWN
        + pb_bytes(2, "y")
        + pb_bytes(4, "LeakyRelu")
        + pb_bytes(5, attr)
        + pb_bytes(3, "n0")
    )
    dim = pb_int(1, 4) + UNKNOWN
    ttype = pb_int(1, TensorProto.FLOAT) + pb_bytes(2, pb_bytes(1, dim) + UNKNOWN) + UNKNOWN
    vi = pb_bytes(1, "x") + UNKNOWN + pb_bytes(2, pb_bytes(1, ttype) + UNKNOWN)
    vi_y = pb_bytes(1, "y") + pb_bytes(2, pb_bytes(4, b"\x0a\x00"))  # a sequence type: skipped
    tensor = (
        pb_int(1, 1)
        + pb_int(2, TensorProto.FLOAT)
        + UNKNOWN
        + pb_bytes(8, "w")
        + pb_bytes(9, struct.pack("<f", 7.0))
    )
    graph = (
        pb_bytes(1, node)
        + UNKNOWN
        + pb_bytes(2, "g")
        + pb_bytes(11, vi)
        + pb_bytes(12, vi_y)
        + pb_bytes(5, tensor)
    )
    opset = pb_bytes(1, "") + UNKNOWN + pb_int(2, 17)
    data = (
        UNKNOWN
        + pb_int(1, 9)
        + pb_bytes(7, graph)
        + pb_bytes(8, opset)
        + UNKNOWN
        + pb_bytes(14, pb_bytes(1, "k") + UNKNOWN + pb_bytes(2, "v"))
    )
    ref = describe_onnx(onnx.load_from_string(data))
    ours = parse_model(data)
    assert_same(ours, ref)
    assert ours["graph"]["inputs"] == [("x", 1, [4])]
    assert ours["graph"]["outputs"] == [("y", 0, None)]
    assert ours["graph"]["nodes"][0]["attrs"] == {"alpha": 0.5}


def test_reader_attribute_type_inferred_when_missing():
    # Old exporters (IR < 0.0.2) omitted AttributeProto.type.
    attrs = [
        pb_bytes(1, "f") + pb_f32(2, 2.5),
        pb_bytes(1, "ints") + pb_int(8, 3) + pb_int(8, 4),
        pb_bytes(1, "s") + pb_bytes(4, "abc"),
    ]
    node = pb_bytes(4, "Op") + b"".join(pb_bytes(5, a) for a in attrs)
    d = parse_model(pb_model(pb_bytes(1, node)))
    assert d["graph"]["nodes"][0]["attrs"] == {"f": 2.5, "ints": [3, 4], "s": b"abc"}


def test_reader_value_info_dims():
    vis = [
        helper.make_tensor_value_info("minus_one", TensorProto.FLOAT, [-1, 3]),
        helper.make_tensor_value_info("unknown", TensorProto.FLOAT, [None, "n"]),
        helper.make_tensor_value_info("scalar", TensorProto.INT64, []),
        helper.make_tensor_value_info("no_shape", TensorProto.FLOAT16, None),
        helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("f8", TensorProto.FLOAT8E4M3FN, [1]),
    ]
    d = check_model(make_graph_model([], vis, vis[:1], value_info=vis[2:]))
    assert d["graph"]["inputs"][0] == ("minus_one", 1, [None, 3])
    assert d["graph"]["inputs"][1] == ("unknown", 1, [None, "n"])
    assert d["graph"]["inputs"][2] == ("scalar", 7, [])
    assert d["graph"]["inputs"][3] == ("no_shape", 10, None)
    assert d["graph"]["inputs"][4] == ("seq", 0, None)


def test_reader_string_tensor_recorded_without_data():
    t = numpy_helper.from_array(np.array([b"ab", b"", b"xyz"], dtype=object), "names")
    assert t.data_type == TensorProto.STRING
    d = check_model(make_graph_model([], [], [], [t]))
    name, arr = d["graph"]["initializers"][0]
    assert name == "names" and arr.shape == (3,) and arr.dtype == object


def test_reader_in_place_initializers_follow_alignment(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "w0": rng.standard_normal(3).astype(np.float32),
        "w1": rng.standard_normal(4).astype(np.float64),
        "w2": rng.integers(-30000, 30000, 5).astype(np.int16),
        "w3": rng.integers(0, 256, 6).astype(np.uint8),
        "w4": rng.standard_normal(7).astype(np.float32),
    }
    inits = [numpy_helper.from_array(a, k) for k, a in arrays.items()]
    m = make_graph_model([], [], [], inits)
    data = m.SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    for d in (parse_model(data), parse_model(str(path), True)):
        for (name, arr), in_place in zip(
            d["graph"]["initializers"], d["graph"]["initializer_in_place"]
        ):
            offset = data.find(arrays[name].tobytes())
            assert offset > 0
            # In place exactly when the weight is aligned for its type (both buffers are
            # at least 16-byte aligned, so the file offset decides); copied otherwise.
            assert in_place == (offset % arr.dtype.itemsize == 0), name
            np.testing.assert_array_equal(arr, arrays[name])
    assert parse_model(data)["graph"]["initializer_in_place"][3]  # uint8: always aligned


def test_reader_from_path_matches_bytes(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    w = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w")
    m = make_graph_model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [w],
    )
    path = tmp_path / "model.onnx"
    onnx.save(m, str(path))
    assert_same(parse_model(str(path), True), describe_onnx(m))


def test_reader_missing_file_raises(tmp_path):
    with pytest.raises(Exception) as ei:
        parse_model(str(tmp_path / "nope.onnx"), True)
    assert "nope.onnx" in str(ei.value)


def test_reader_large_model(tmp_path):
    rng = np.random.default_rng(1)
    nodes, inits = [], []
    prev = "x"
    for i in range(400):
        w = f"w{i}"
        inits.append(
            numpy_helper.from_array(
                rng.standard_normal((64, 64) if i % 50 else (1024, 1024)).astype(np.float32), w
            )
        )
        nodes.append(helper.make_node("Add", [prev, w], [f"h{i}"], name=f"add{i}"))
        prev = f"h{i}"
    m = make_graph_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [64, 64])],
        inits,
    )
    path = tmp_path / "large.onnx"
    onnx.save(m, str(path))
    assert path.stat().st_size > 30 * 2**20
    d = parse_model(str(path), True)
    assert len(d["graph"]["nodes"]) == 400 and len(d["graph"]["initializers"]) == 400
    assert_same(d, describe_onnx(m))


_SHIPPED = sorted(
    glob.glob(os.path.join(os.path.dirname(__file__), "..", "models", "*.onnx"))
    + glob.glob(
        os.path.join(os.path.dirname(__file__), "..", "..", "python", "runnx", "demo", "*.onnx")
    )
)


@pytest.mark.parametrize("path", _SHIPPED, ids=os.path.basename)
def test_reader_shipped_models(path):
    """The exported models in the repository (ResNet, MobileNet, BERT, MLP), by path."""
    assert_same(parse_model(path, True), describe_onnx(onnx.load(path)))


# ---- external data --------------------------------------------------------------------------


def _external_model(tmp_path, location="weights.bin"):
    rng = np.random.default_rng(2)
    arrays = {
        "a": rng.standard_normal((32, 16)).astype(np.float32),
        "b": rng.integers(-9, 9, (7,)).astype(np.int64),
        "c": rng.standard_normal((5,)).astype(np.float16),
    }
    inits = [numpy_helper.from_array(a, k) for k, a in arrays.items()]
    m = make_graph_model([], [], [], inits)
    path = tmp_path / "model.onnx"
    onnx.save(
        m,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=0,
    )
    return path, onnx.load(str(path)), arrays  # onnx.load reads the external data back in


def test_reader_external_data(tmp_path):
    path, m, arrays = _external_model(tmp_path)
    assert (tmp_path / "weights.bin").exists()
    d = parse_model(str(path), True)
    assert_same(d, describe_onnx(m))
    for name, arr in d["graph"]["initializers"]:
        np.testing.assert_array_equal(arr, arrays[name])
    # From bytes, external data needs the folder to resolve against.
    data = path.read_bytes()
    assert_same(parse_model(data, base_dir=str(tmp_path)), describe_onnx(m))
    msg = expect_invalid(data)
    assert "'a'" in msg


def _with_external(tmp_path, location, *, offset=None, length=None, name="w", numel=4):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend([numel])
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)
    t.data_location = TensorProto.EXTERNAL
    m = make_graph_model([], [], [], [t])
    return m.SerializeToString()


def test_reader_external_data_refuses_escape(tmp_path):
    model_dir = tmp_path / "model"
    outside = tmp_path / "outside"
    model_dir.mkdir()
    outside.mkdir()
    (outside / "secret.bin").write_bytes(np.zeros(4, np.float32).tobytes())
    (model_dir / "ok.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    os.symlink(outside / "secret.bin", model_dir / "link.bin")
    os.symlink(model_dir / "ok.bin", model_dir / "alias.bin")  # inside the folder: allowed
    os.symlink(outside, model_dir / "sub")

    for location in ["../outside/secret.bin", "sub/../../outside/secret.bin", "..\\secret.bin"]:
        msg = expect_invalid(_with_external(tmp_path, location), base_dir=str(model_dir))
        assert "'w'" in msg and ".." in msg
    for location in [str(outside / "secret.bin"), "/etc/passwd", "C:\\secret.bin"]:
        msg = expect_invalid(_with_external(tmp_path, location), base_dir=str(model_dir))
        assert "'w'" in msg and "absolute" in msg
    for location in ["link.bin", "sub/secret.bin"]:
        msg = expect_invalid(_with_external(tmp_path, location), base_dir=str(model_dir))
        assert "'w'" in msg and "outside" in msg
    # A model file loaded by path resolves against its own folder the same way.
    path = model_dir / "m.onnx"
    path.write_bytes(_with_external(tmp_path, "../outside/secret.bin"))
    assert "'w'" in expect_invalid(str(path), is_path=True)

    d = parse_model(_with_external(tmp_path, "alias.bin"), base_dir=str(model_dir))
    np.testing.assert_array_equal(d["graph"]["initializers"][0][1], np.arange(4))
    d = parse_model(
        _with_external(tmp_path, "ok.bin", offset=4, length=8, numel=2), base_dir=str(model_dir)
    )
    np.testing.assert_array_equal(d["graph"]["initializers"][0][1], [1, 2])


def test_reader_external_data_bounds(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    base = str(tmp_path)
    for kw in [{"offset": 4}, {"offset": 1 << 40}, {"length": 12}, {"length": 99}]:
        assert "'w'" in expect_invalid(_with_external(tmp_path, "w.bin", **kw), base_dir=base)
    assert "not found" in expect_invalid(_with_external(tmp_path, "missing.bin"), base_dir=base)
    assert "'w'" in expect_invalid(_with_external(tmp_path, ""), base_dir=base)


# ---- hostile inputs -------------------------------------------------------------------------


def _small_model_bytes() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0], raw=False)
    r = numpy_helper.from_array(np.array([3, 4], np.int64), "r")
    node = helper.make_node("Add", ["x", "w"], ["y"], name="add", axis=1, alpha=0.5)
    g = helper.make_graph([node], "small", [x], [y], [w, r])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("seed", range(12))
def test_reader_random_bytes(seed):
    rng = np.random.default_rng(seed)
    for size in (1, 2, 7, 64, 1000, 65536):
        expect_invalid(rng.integers(0, 256, size, dtype=np.uint8).tobytes())


def test_reader_empty_input():
    assert "ModelProto.graph" in expect_invalid(b"")


def test_reader_every_truncation_point():
    data = _small_model_bytes()
    parse_model(data)
    for i in range(len(data)):
        expect_invalid(data[:i])


def test_reader_mutated_bytes_never_crash():
    # Single-byte corruptions may still parse; they must never crash or raise anything else.
    data = bytearray(_small_model_bytes())
    rng = np.random.default_rng(5)
    for _ in range(2000):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), 2):
            bad[pos] = int(rng.integers(0, 256))
        try:
            parse_model(bytes(bad))
        except Exception as e:  # noqa: BLE001
            assert "InvalidModel" in [c.__name__ for c in type(e).__mro__], repr(e)


def test_reader_length_past_end():
    node = pb_bytes(4, "Relu")
    graph = pb_bytes(1, node)
    bad_graph = graph + _key(1, 2) + _varint(99999) + b"\x22\x04Relu"
    msg = expect_invalid(pb_model(bad_graph))
    assert "GraphProto.node" in msg and "declares length 99999" in msg
    # The same for a length beyond 2^63 and for the top-level graph field itself.
    msg = expect_invalid(pb_int(1, 8) + _key(7, 2) + b"\xff" * 9 + b"\x01")
    assert "ModelProto.graph" in msg
    msg = expect_invalid(pb_int(1, 8) + _key(7, 2) + _varint(2**64 - 1))
    assert "ModelProto.graph" in msg and "declares length" in msg


def _tensor_model(tensor: bytes) -> bytes:
    return pb_model(pb_graph_with_initializer(tensor))


def test_reader_huge_declared_tensor_is_not_allocated():
    t = (
        pb_int(1, 2**20)
        + pb_int(1, 2**20)
        + pb_int(2, TensorProto.FLOAT)
        + pb_bytes(8, "big")
        + pb_bytes(9, b"\0" * 4)
    )
    msg = expect_invalid(_tensor_model(t))
    assert "TensorProto.dims" in msg and "'big'" in msg
    # Within the size limit, but the bytes are not there: refused before any allocation.
    t = (
        pb_int(1, 2**30)
        + pb_int(2, TensorProto.FLOAT)
        + pb_bytes(8, "big")
        + pb_bytes(9, b"\0" * 4)
    )
    assert "TensorProto.raw_data" in expect_invalid(_tensor_model(t))
    t = pb_int(1, 2**30) + pb_int(2, TensorProto.FLOAT) + pb_bytes(8, "big") + pb_f32(4, 1.0)
    assert "TensorProto.float_data" in expect_invalid(_tensor_model(t))
    t = pb_int(1, 2**30) + pb_int(2, TensorProto.FLOAT) + pb_bytes(8, "big")
    assert "'big'" in expect_invalid(_tensor_model(t))
    # Dims whose product overflows int64.
    t = pb_int(1, 2**40) * 3 + pb_int(2, TensorProto.UINT8) + pb_bytes(8, "ovf")
    assert "TensorProto.dims" in expect_invalid(_tensor_model(t))


def test_reader_bad_tensors():
    base = pb_int(2, TensorProto.FLOAT) + pb_bytes(8, "t")
    cases = {
        "negative": (pb_int(1, -3) + base + pb_bytes(9, b""), "TensorProto.dims"),
        "raw size": (pb_int(1, 3) + base + pb_bytes(9, b"\0" * 8), "TensorProto.raw_data"),
        "typed count": (pb_int(1, 3) + base + pb_f32(4, 1.0), "TensorProto.float_data"),
        "wrong field": (pb_int(1, 1) + base + pb_int(7, 1), "TensorProto.int64_data"),
        "two sources": (pb_int(1, 1) + base + pb_f32(4, 1.0) + pb_bytes(9, b"\0" * 4), "'t'"),
        "packed ragged": (pb_int(1, 1) + base + pb_bytes(4, b"\0" * 5), "TensorProto.float_data"),
        "packed cut": (
            pb_int(1, 1) + pb_int(2, TensorProto.INT64) + pb_bytes(7, b"\x80"),
            "TensorProto.int64_data",
        ),
        "no type": (pb_int(1, 1) + pb_bytes(9, b"\0" * 4), "TensorProto.data_type"),
        "float8": (
            pb_int(1, 1) + pb_int(2, TensorProto.FLOAT8E4M3FN) + pb_bytes(9, b"\0"),
            "TensorProto.data_type",
        ),
        "complex": (
            pb_int(1, 1) + pb_int(2, TensorProto.COMPLEX64) + pb_bytes(9, b"\0" * 8),
            "TensorProto.data_type",
        ),
        "strings": (
            pb_int(1, 2) + pb_int(2, TensorProto.STRING) + pb_bytes(6, "a"),
            "TensorProto.string_data",
        ),
        "location": (
            pb_int(1, 1) + base + pb_bytes(9, b"\0" * 4) + pb_int(14, 7),
            "TensorProto.data_location",
        ),
        "float wire": (pb_int(1, 1) + base + pb_int(4, 1), "TensorProto.float_data"),
    }
    for what, (tensor, needle) in cases.items():
        msg = expect_invalid(_tensor_model(tensor))
        assert needle in msg, (what, msg)


@pytest.mark.parametrize("wire_type", [3, 4, 6, 7])
def test_reader_invalid_wire_types(wire_type):
    for data in (
        pb_int(1, 8) + _key(5, wire_type) + b"\0" * 8,
        pb_model(pb_bytes(2, "g") + _key(40, wire_type) + b"\0" * 8),
    ):
        msg = expect_invalid(data)
        assert f"wire type {wire_type}" in msg


def test_reader_malformed_varints_and_tags():
    too_long = pb_int(1, 8) + _key(5, 0) + b"\xff" * 10 + b"\x01"
    assert "longer than 64 bits" in expect_invalid(too_long)
    assert "field number 0" in expect_invalid(b"\x00\x00")
    assert "ModelProto.graph" in expect_invalid(pb_int(1, 8) + pb_int(7, 3))  # wrong wire type
    assert "ModelProto.ir_version" in expect_invalid(b"\x08")  # a tag, then nothing
    expect_invalid(b"\x80")  # a tag cut inside its varint
    msg = expect_invalid(
        pb_model(pb_bytes(2, "g") + pb_bytes(1, pb_bytes(5, pb_bytes(1, "a") + pb_int(20, 99))))
    )
    assert "AttributeProto.type" in msg


def test_reader_missing_graph_or_opset():
    assert "ModelProto.graph" in expect_invalid(pb_int(1, 8) + pb_bytes(8, pb_int(2, 17)))
    assert "ModelProto.opset_import" in expect_invalid(pb_int(1, 8) + pb_bytes(7, b""))


def _nested_if_model(depth: int) -> bytes:
    """A graph whose If node's then_branch holds another such graph, `depth` levels down."""
    graph = pb_bytes(2, f"g{depth}")
    for level in range(depth):
        attr = pb_bytes(1, "then_branch") + pb_int(20, 5) + pb_bytes(6, graph)
        node = pb_bytes(1, "c") + pb_bytes(2, "o") + pb_bytes(4, "If") + pb_bytes(5, attr)
        graph = pb_bytes(1, node) + pb_bytes(2, f"g{depth - level - 1}")
    return pb_model(graph)


def test_reader_nested_subgraphs_capped():
    d = parse_model(_nested_if_model(64))
    levels = 0
    g = d["graph"]
    while g["nodes"]:
        g = g["nodes"][0]["attrs"]["then_branch"]
        levels += 1
    assert levels == 64 and g["name"] == "g64"
    for depth in (65, 2000):
        msg = expect_invalid(_nested_if_model(depth))
        assert "AttributeProto.g" in msg and "64" in msg


def test_reader_error_messages_escape_names_from_the_file():
    # Python reads messages as UTF-8: a hostile name must not turn InvalidModel into another error.
    name = b"bad\xdc\xff\x01\xc3\xa9" + b"x" * 1000
    t = pb_int(1, 3) + pb_int(2, TensorProto.FLOAT) + pb_bytes(8, name) + pb_f32(4, 1.0)
    msg = expect_invalid(_tensor_model(t))
    assert "'bad\\xdc\\xff\\x01\u00e9xxx" in msg and "(1008 bytes)" in msg
    assert len(msg) < 500
