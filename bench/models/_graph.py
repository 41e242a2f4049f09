"""A tiny graph-building helper shared by the zoo builders: unique names, initializers, nodes."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # pinned so the serialized bytes do not depend on the installed onnx version
SCALES = ("full", "tiny")


class GraphBuilder:
    """Collects nodes and initializers; `op` returns output names so code reads like the model.

    Example:
        >>> g = GraphBuilder("demo", seed=0)
        >>> x = g.input("x", TensorProto.FLOAT, ["batch", 4])
        >>> y = g.op("Relu", [x])
        >>> g.output(y, TensorProto.FLOAT, ["batch", 4])
        >>> model = g.model()
    """

    def __init__(self, name: str, seed: int):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._counts: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        """A new unique tensor/node name derived from `base`."""
        n = self._counts.get(base, 0)
        self._counts[base] = n + 1
        return f"{base}_{n}" if n else base

    def input(self, name: str, elem_type: int, shape) -> str:
        """Declares a graph input and returns its name."""
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, name: str, elem_type: int, shape) -> None:
        """Declares an existing tensor as a graph output."""
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def init(self, name: str, array) -> str:
        """Adds a constant initializer (float64 arrays become float32) and returns its name."""
        array = np.asarray(array)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        name = self.fresh(name)
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def normal(self, name: str, shape, std: float, mean: float = 0.0) -> str:
        """A float32 initializer drawn from N(mean, std^2)."""
        return self.init(name, mean + std * self.rng.standard_normal(shape, dtype=np.float32))

    def uniform(self, name: str, shape, low: float, high: float) -> str:
        """A float32 initializer drawn from U(low, high)."""
        return self.init(name, self.rng.uniform(low, high, size=shape).astype(np.float32))

    def op(
        self,
        op_type: str,
        inputs: list[str],
        n_out: int = 1,
        name: str | None = None,
        out: str | None = None,
        **attrs,
    ):
        """Appends a node; returns its output name (or a list of names when n_out > 1).

        `out` names the (single) output explicitly, e.g. to make it a graph output."""
        base = name or op_type
        node_name = self.fresh(base)
        outs = [f"{node_name}_out{i}" if n_out > 1 else f"{node_name}_out" for i in range(n_out)]
        if out is not None:
            outs = [out]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=node_name, **attrs))
        return outs if n_out > 1 else outs[0]

    def model(self, doc: str = "") -> onnx.ModelProto:
        """Assembles the ModelProto (opset 17, IR version 8, fixed producer fields)."""
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="runnx-bench-zoo",
            producer_version="1",
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        return model


def check_scale(scale: str) -> None:
    """Raises ValueError unless scale is 'full' or 'tiny'."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
