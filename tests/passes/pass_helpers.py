"""Shared by the pass tests: build small graphs, run them at two optimisation levels, compare."""

from __future__ import annotations

import numpy as np
import onnx
import runnx
from onnx import TensorProto, helper, numpy_helper


def graph_model(nodes, inputs, outputs, initializers=None, opset=17, value_info=None) -> onnx.ModelProto:
    """`inputs` / `outputs`: lists of (name, elem_type, shape) (shape None = unknown)."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
        value_info=value_info or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def session(model, level: int, threads: int = 2) -> runnx.InferenceSession:
    so = runnx.SessionOptions()
    so.graph_optimization_level = runnx.GraphOptimizationLevel(level)
    so.intra_op_num_threads = threads
    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    return runnx.InferenceSession(data, so)


def run_both(model, feeds, level: int = 99):
    """Outputs at level 0 (no passes) and at `level`, and the passes that fired there."""
    plain = session(model, 0)
    assert plain._passes_fired() == {}
    opt = session(model, level)
    return plain.run(None, feeds), opt.run(None, feeds), opt._passes_fired()


FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
