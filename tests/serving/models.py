"""Small models built by code for the batcher tests."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "serving_test", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


def mlp(features=5, hidden=7, classes=3, seed=0) -> bytes:
    """x [N, features] -> y = relu(x @ w1 + b1) @ w2 + b2 [N, classes], z = softmax(y)."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((features, hidden)).astype(np.float32)
    b1 = rng.standard_normal(hidden).astype(np.float32)
    w2 = rng.standard_normal((hidden, classes)).astype(np.float32)
    b2 = rng.standard_normal(classes).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["y0"]),
        helper.make_node("Add", ["y0", "b2"], ["y"]),
        helper.make_node("Softmax", ["y"], ["z"], axis=-1),
    ]
    inits = [
        numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", classes]),
        ],
        inits,
    )


def two_inputs() -> bytes:
    """a [N, k] float, b [N] int64 -> s = a * 2 + cast(b)[:, None] [N, k], r = ReduceSum(a, 1) [N]."""
    nodes = [
        helper.make_node("Mul", ["a", "two"], ["a2"]),
        helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["bf", "one"], ["bcol"]),
        helper.make_node("Add", ["a2", "bcol"], ["s"]),
        helper.make_node("ReduceSum", ["a", "one"], ["r"], keepdims=0),
    ]
    inits = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
    ]
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", "k"]),
            helper.make_tensor_value_info("b", TensorProto.INT64, ["N"]),
        ],
        [
            helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N", "k"]),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N"]),
        ],
        inits,
    )


def tiny() -> bytes:
    """x [N, 1] -> y = Relu(x): a batch of one runs in well under a microsecond."""
    return _model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    )


def fixed_shape() -> bytes:
    """x [2, 3] -> y = x + 1 (no batch dim: serve with max_batch_size=0)."""
    nodes = [helper.make_node("Add", ["x", "c"], ["y"])]
    inits = [numpy_helper.from_array(np.array(1.0, np.float32), "c")]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        inits,
    )


def lookup(table_rows=5) -> bytes:
    """idx [N] int64 -> y = table[idx] [N, 2]; an index outside the table fails at run time."""
    table = np.arange(table_rows * 2, dtype=np.float32).reshape(table_rows, 2)
    nodes = [helper.make_node("Gather", ["table", "idx"], ["y"], axis=0)]
    return _model(
        nodes,
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(table, "table")],
    )


def to_bfloat16() -> bytes:
    """x [N, 2] float -> y = cast(x, bfloat16): numpy has no bfloat16, so the answer cannot be
    handed over (the request must fail alone, not the batcher)."""
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BFLOAT16)]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, ["N", 2])],
    )


def slow(depth=24) -> bytes:
    """x [N, M] -> y = sin(sin(...sin(x))) (`depth` times): a model whose run takes a while."""
    nodes = [
        helper.make_node(
            "Sin", ["x" if i == 0 else f"s{i}"], [f"s{i + 1}" if i + 1 < depth else "y"]
        )
        for i in range(depth)
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "M"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "M"])],
    )
