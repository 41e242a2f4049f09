"""Model conversion for the GPU: float32 -> float16.

>>> import runnx.quantize
>>> fp16 = runnx.quantize.to_fp16("model.onnx")  # doctest: +SKIP
>>> sess = runnx.InferenceSession(fp16.SerializeToString(),
...                               providers=["CUDAExecutionProvider"])  # doctest: +SKIP

Every float32 tensor the model computes becomes float16, except the inputs and outputs of ops
whose float16 result would be wrong or lose too much: sums that can overflow float16's range
(65504), index and coordinate arithmetic, random generators, quantisation parameters and control
flow. Those nodes keep float32, and Cast nodes join the two precisions where they meet. By default
the model's inputs and outputs stay float32, so callers need not change (``keep_io_types``).

Needs the ``onnx`` package (``pip install onnx``) to write the converted model.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np

FP16_MAX = 65504.0

# Ops kept in float32 by default, and why.
DEFAULT_FP32_OPS = frozenset(
    {
        # Sums and products over many elements overflow float16 long before float32 does.
        "ReduceSum", "ReduceSumSquare", "ReduceProd", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp", "CumSum",
        # Coordinates, counters and ordering: float16's 11-bit mantissa miscounts past 2048.
        "Range", "Resize", "Upsample", "RoiAlign", "NonMaxSuppression", "TopK", "GridSample",
        # Generators whose dtype is an attribute.
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
        "Bernoulli", "EyeLike",
        # Quantisation scales are float32 by the ONNX contract.
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
        # Subgraphs are not converted; their bodies keep float32.
        "If", "Loop", "Scan",
    }
)


def _onnx():
    try:
        import onnx  # optional dependency, imported on use
    except ImportError as e:  # pragma: no cover - the test extra always has onnx
        raise ImportError("runnx.quantize needs the onnx package: pip install onnx") from e
    return onnx


def _load(model):
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    try:
        if isinstance(model, (bytes, bytearray, memoryview)):
            return onnx.load_from_string(bytes(model))
        return onnx.load(str(model))
    except Exception as e:  # protobuf's DecodeError and friends
        from .errors import InvalidModel

        raise InvalidModel(f"to_fp16: the input is not a readable ONNX model ({e})") from e


def _value_dtypes(model) -> dict[str, str]:
    """Every value's element type ('float', 'int64', ...) from runnx's own static inference."""
    from .session import GraphOptimizationLevel, InferenceSession, SessionOptions

    options = SessionOptions()
    options.graph_optimization_level = GraphOptimizationLevel.ORT_DISABLE_ALL
    session = InferenceSession(model.SerializeToString(), options)
    return {name: info[0] for name, info in session._sess.inferred_types().items()}


def _to_half_array(values: np.ndarray, where: str) -> np.ndarray:
    too_big = np.abs(values) > FP16_MAX
    if np.any(too_big & np.isfinite(values)):
        warnings.warn(
            f"to_fp16: {int(np.count_nonzero(too_big))} value(s) of {where} exceed float16's "
            f"range and were clipped to +-{FP16_MAX:g}",
            stacklevel=4,
        )
        values = np.where(np.isfinite(values), np.clip(values, -FP16_MAX, FP16_MAX), values)
    return values.astype(np.float16)


def _half_tensor(tensor, where: str):
    onnx = _onnx()
    from onnx import numpy_helper

    converted = numpy_helper.from_array(_to_half_array(numpy_helper.to_array(tensor), where), tensor.name)
    assert converted.data_type == onnx.TensorProto.FLOAT16
    return converted


class _Converter:
    def __init__(self, model, keep_io_types: bool, fp32_ops: set[str], fp32_nodes: set[str]):
        self.onnx = _onnx()
        self.model = model
        self.graph = model.graph
        self.keep_io_types = keep_io_types
        self.dtypes = _value_dtypes(model)
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.fp32_ops = fp32_ops
        self.fp32_nodes = fp32_nodes
        self.used_names = {v for n in self.graph.node for v in (*n.input, *n.output)}
        self.used_names |= set(self.initializers) | {v.name for v in self.graph.input}
        self.casts: dict[tuple[str, int], str] = {}  # (value, to) -> cast output
        self.new_nodes: list = []

    def is_float(self, value: str) -> bool:
        return bool(value) and self.dtypes.get(value) == "float"

    def node_in_fp16(self, node) -> bool:
        if node.domain not in ("", "ai.onnx", "com.runnx"):
            return False
        return node.op_type not in self.fp32_ops and not (node.name and node.name in self.fp32_nodes)

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.used_names:
            i += 1
            name = f"{base}_{i}"
        self.used_names.add(name)
        return name

    def cast(self, value: str, to: int) -> str:
        """The name of `value` cast to `to` (one Cast per value and target, placed before use)."""
        key = (value, to)
        if key not in self.casts:
            suffix = "fp16" if to == self.onnx.TensorProto.FLOAT16 else "fp32"
            out = self.fresh(f"{value}_{suffix}")
            self.new_nodes.append(
                self.onnx.helper.make_node("Cast", [value], [out], name=self.fresh(f"cast_{out}"), to=to)
            )
            self.casts[key] = out
        return self.casts[key]

    def run(self):
        onnx = self.onnx
        FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
        graph_inputs = {v.name for v in self.graph.input} - set(self.initializers)
        graph_outputs = {v.name for v in self.graph.output}
        fp16_nodes = [self.node_in_fp16(n) for n in self.graph.node]

        # Where each float value is stored: half when its producer computes in float16.
        stored_half: dict[str, bool] = {}
        for name in graph_inputs:
            stored_half[name] = not self.keep_io_types
        consumers_half: dict[str, list[bool]] = {}
        for node, half in zip(self.graph.node, fp16_nodes):
            for v in node.input:
                consumers_half.setdefault(v, []).append(half)
            for v in node.output:
                stored_half[v] = half
        # An initializer becomes half unless a float32 node also reads it (then it stays float32
        # and half readers get a Cast that constant folding removes at load).
        for name, tensor in self.initializers.items():
            readers = consumers_half.get(name, [])
            stored_half[name] = tensor.data_type == FLOAT and bool(readers) and all(readers)
            if stored_half[name]:
                self.graph.initializer.remove(tensor)
                self.graph.initializer.append(_half_tensor(tensor, f"initializer '{name}'"))

        nodes = list(self.graph.node)
        del self.graph.node[:]
        for node, half in zip(nodes, fp16_nodes):
            self.new_nodes = []
            for i, v in enumerate(node.input):
                if self.is_float(v) and stored_half.get(v, False) != half:
                    node.input[i] = self.cast(v, FLOAT16 if half else FLOAT)
            if half:
                self.retarget_attributes(node)
            self.graph.node.extend(self.new_nodes)
            self.graph.node.append(node)

        self.finish_outputs(stored_half, graph_outputs)
        self.finish_inputs(graph_inputs)
        self.retype_value_info(stored_half)
        return self.model

    def retarget_attributes(self, node):
        """Attributes that fix a float32 output: Cast's target, constants' payloads."""
        onnx = self.onnx
        FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
        outputs_float = any(self.is_float(v) for v in node.output)
        if not outputs_float:
            return
        where = f"node '{node.name or node.op_type}'"
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
                attr.i = FLOAT16
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT:
                attr.t.CopyFrom(_half_tensor(attr.t, where))
        if node.op_type == "Constant":
            for attr in list(node.attribute):
                if attr.name in ("value_float", "value_floats"):
                    values = np.array(attr.f if attr.name == "value_float" else list(attr.floats), np.float32)
                    node.attribute.remove(attr)
                    node.attribute.append(
                        onnx.helper.make_attribute("value", onnx.numpy_helper.from_array(_to_half_array(values, where)))
                    )
        if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
            zero = onnx.numpy_helper.from_array(np.zeros(1, np.float16))
            node.attribute.append(onnx.helper.make_attribute("value", zero))

    def finish_outputs(self, stored_half, graph_outputs):
        onnx = self.onnx
        for out in self.graph.output:
            if not self.is_float(out.name) or not stored_half.get(out.name):
                continue
            if not self.keep_io_types:
                out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
                continue
            # The producer writes a half value under a fresh name; a Cast restores the output.
            half_name = self.fresh(f"{out.name}_fp16")
            for node in self.graph.node:
                for i, v in enumerate(node.input):
                    if v == out.name:
                        node.input[i] = half_name
                for i, v in enumerate(node.output):
                    if v == out.name:
                        node.output[i] = half_name
            self.graph.node.append(
                onnx.helper.make_node("Cast", [half_name], [out.name], name=self.fresh(f"cast_{out.name}"),
                                      to=onnx.TensorProto.FLOAT)
            )
            stored_half[half_name] = True
            self.dtypes[half_name] = "float"
            stored_half[out.name] = False

    def finish_inputs(self, graph_inputs):
        if self.keep_io_types:
            return
        for value in self.graph.input:
            if value.name in graph_inputs and self.is_float(value.name):
                value.type.tensor_type.elem_type = self.onnx.TensorProto.FLOAT16

    def retype_value_info(self, stored_half):
        for value in self.graph.value_info:
            if value.type.tensor_type.elem_type == self.onnx.TensorProto.FLOAT and stored_half.get(value.name):
                value.type.tensor_type.elem_type = self.onnx.TensorProto.FLOAT16


def to_fp16(
    model,
    keep_io_types: bool = True,
    op_block_list: Iterable[str] | None = None,
    node_block_list: Iterable[str] | None = None,
):
    """Returns a float16 copy of `model` (an ``onnx.ModelProto``, a path, or serialized bytes).

    keep_io_types: graph inputs and outputs stay float32 (Casts at the edges); False makes them
        float16 too.
    op_block_list: op types that keep float32 (default ``DEFAULT_FP32_OPS``); an empty list
        converts everything.
    node_block_list: node names that keep float32 in addition.

    Initializer values beyond float16's range are clipped to +-65504 with a warning.
    """
    loaded = _load(model)
    fp32_ops = set(DEFAULT_FP32_OPS if op_block_list is None else op_block_list)
    converted = _Converter(loaded, keep_io_types, fp32_ops, set(node_block_list or ())).run()
    _onnx().checker.check_model(converted)
    return converted
