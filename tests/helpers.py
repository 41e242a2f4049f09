"""Shared test helpers: one-node model builder, reference runner, awkward shapes, tolerances."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import runnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Shapes that catch tail handling, size-1 broadcasting and empty tensors.
AWKWARD_SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 17), (0, 3), (1, 1, 33)]

_NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def onnx_type(dtype) -> int:
    return _NP_TO_ONNX[np.dtype(dtype)]


def one_node_model(
    op_type: str,
    input_infos: list,
    n_outputs: int,
    *,
    attrs: dict | None,
    initializers: dict[str, np.ndarray],
    order: list[str],
    domain: str,
    opset_imports: list,
    graph_name: str,
) -> onnx.ModelProto:
    """The one-node model both builders make: `input_infos` are graph inputs (ValueInfoProto),
    outputs y0.. are left untyped, `order` lists the node's inputs."""
    node = helper.make_node(
        op_type, order, [f"y{i}" for i in range(n_outputs)], domain=domain, **(attrs or {})
    )
    graph = helper.make_graph(
        [node],
        graph_name,
        input_infos,
        [helper.make_tensor_value_info(f"y{i}", TensorProto.UNDEFINED, None) for i in range(n_outputs)],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=opset_imports)
    model.ir_version = 8
    return model


def make_model(
    op_type: str,
    inputs: dict[str, np.ndarray],
    n_outputs: int = 1,
    *,
    attrs: dict | None = None,
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = 17,
    domain: str = "",
    input_order: list[str] | None = None,
    dynamic: bool = False,
) -> onnx.ModelProto:
    """One-node model. `inputs` become graph inputs, `initializers` constant inputs; node inputs
    follow `input_order` (use "" for an omitted optional input) or inputs then initializers.
    `dynamic` declares every input dim unnamed, so shapes are known only at run time."""
    initializers = initializers or {}
    return one_node_model(
        op_type,
        [
            helper.make_tensor_value_info(k, onnx_type(v.dtype), [None] * v.ndim if dynamic else v.shape)
            for k, v in inputs.items()
        ],
        n_outputs,
        attrs=attrs,
        initializers=initializers,
        order=input_order or list(inputs) + list(initializers),
        domain=domain,
        opset_imports=[helper.make_opsetid(domain, opset)],
        graph_name=f"test_{op_type}",
    )


def expect_invalid(op_type: str, feeds: dict, match: str, n_outputs: int = 1, **kw) -> None:
    """A model whose inputs cannot work together fails with a message matching `match`: at load
    (InvalidModel, from static inference) when its input shapes are declared, and at run time
    (InvalidArgument, from the kernel) when they are dynamic."""
    for dynamic in (False, True):
        with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match=match):
            model = make_model(op_type, feeds, n_outputs, dynamic=dynamic, **kw)
            sess = runnx.InferenceSession(model.SerializeToString())
            sess.run(None, feeds)


def threads(n: int) -> runnx.SessionOptions:
    """SessionOptions with `n` intra-op threads (1 exercises the serial paths)."""
    so = runnx.SessionOptions()
    so.intra_op_num_threads = n
    return so


def session_from(data: bytes, how: str, tmp_path, level: int) -> runnx.InferenceSession:
    """A session on serialized model `data`, given as the bytes themselves (`how` = "bytes") or
    as a file holding them ("file"), at graph_optimization_level `level`."""
    so = runnx.SessionOptions()
    so.graph_optimization_level = level
    if how == "file":
        (tmp_path / "m.onnx").write_bytes(data)
        return runnx.InferenceSession(str(tmp_path / "m.onnx"), so)
    assert how == "bytes", how
    return runnx.InferenceSession(data, so)


def run_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return list(ReferenceEvaluator(model).run(None, feeds))


def run_runnx(model: onnx.ModelProto, feeds: dict[str, np.ndarray], **kw) -> list[np.ndarray]:
    sess = runnx.InferenceSession(model.SerializeToString(), **kw)
    return sess.run(None, feeds)


def tolerance(dtype) -> dict:
    dt = np.dtype(dtype)
    if dt == np.float16:
        return dict(rtol=1e-2, atol=1e-2)
    if dt == np.float32:
        return dict(rtol=1e-4, atol=1e-5)
    if dt == np.float64:
        return dict(rtol=1e-10, atol=1e-12)
    return dict(rtol=0, atol=0)


def assert_close(actual, expected, dtype=None):
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, **tolerance(dtype or expected.dtype))


def check_against_reference(op_type, inputs, n_outputs=1, **kw):
    """Runs the one-node model in runnx and in onnx.reference and compares every output."""
    model = make_model(op_type, inputs, n_outputs, **kw)
    expected = run_reference(model, inputs)
    actual = run_runnx(model, inputs)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert_close(a, e)
    return actual


def rand(shape, dtype=np.float32, low=-2.0, high=2.0, rng=None):
    rng = rng or np.random.default_rng()
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)  # an array even for shape ()
    if dt.kind in "iu":
        return rng.integers(int(low), int(high) + 1, size=shape).astype(dt)
    return rng.uniform(low, high, size=shape).astype(dt)
