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


def layernorm_nodes(x, y, square="pow", opset=17, swap=False):
    """LayerNorm over the last axis in its decomposed form, as exporters write it; constants
    two, eps, gamma, beta (and axes from opset 18) come from layernorm_inits."""
    mean_kw = {"axes": [-1]} if opset < 18 else {}
    mean_in = [x] if opset < 18 else [x, "axes"]
    nodes = [helper.make_node("ReduceMean", mean_in, ["m"], **mean_kw),
             helper.make_node("Sub", [x, "m"], ["d"])]
    nodes.append(helper.make_node("Pow", ["d", "two"], ["sq"]) if square == "pow"
                 else helper.make_node("Mul", ["d", "d"], ["sq"]))
    nodes += [helper.make_node("ReduceMean", ["sq"] + mean_in[1:], ["v"], **mean_kw),
              helper.make_node("Add", ["eps", "v"] if swap else ["v", "eps"], ["ve"]),
              helper.make_node("Sqrt", ["ve"], ["s"]),
              helper.make_node("Div", ["d", "s"], ["n"]),
              helper.make_node("Mul", ["gamma", "n"] if swap else ["n", "gamma"], ["ng"]),
              helper.make_node("Add", ["ng", "beta"], [y])]
    return nodes


def layernorm_inits(c, rng, dtype=np.float32, beta_dtype=None):
    """layernorm_nodes' constants in `dtype` (beta in `beta_dtype` when given)."""
    return {"two": np.array(2, dtype), "eps": np.array(1e-5, dtype), "axes": np.array([-1], np.int64),
            "gamma": rng.standard_normal(c).astype(dtype),
            "beta": rng.standard_normal(c).astype(beta_dtype or dtype)}
