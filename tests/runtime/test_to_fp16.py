"""runnx.quantize.to_fp16: structure of the converted graph and its numbers against float32.

The converted models are run by onnx.reference, which computes float16 ops in float16 (numpy),
accumulations included; the GPU kernels accumulate in float32, so these tolerances are looser than
the GPU tests' (tests/cuda/).
"""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
import pytest
import runnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from runnx import quantize

MODELS = pathlib.Path(__file__).resolve().parents[1] / "models"


def _feeds(sess, rng):
    feeds = {}
    for arg in sess.get_inputs():
        shape = [d if isinstance(d, int) else 3 for d in arg.shape]
        if "float" in arg.type:
            feeds[arg.name] = rng.standard_normal(shape).astype(np.float32)
        else:  # token ids and type ids: 0/1 fit every vocabulary
            feeds[arg.name] = rng.integers(0, 2, shape).astype(np.int64)
    return feeds


def _initializer_types(model):
    return {t.name: t.data_type for t in model.graph.initializer}


@pytest.mark.parametrize("name", ["mlp_tiny", "resnet50_tiny", "mobilenetv2_tiny", "bert_tiny"])
def test_zoo_model_converts_and_matches_float32(name):
    rng = np.random.default_rng(7)
    model = onnx.load(str(MODELS / f"{name}.onnx"))
    converted = quantize.to_fp16(model)
    sess = runnx.InferenceSession(model.SerializeToString())
    feeds = _feeds(sess, rng)
    expected = sess.run(None, feeds)
    actual = ReferenceEvaluator(converted).run(None, feeds)
    for e, a in zip(expected, actual):
        assert a.dtype == np.float32  # keep_io_types: outputs stay float32
        scale = max(float(np.abs(e).max()), 1.0)
        # float16 has an 11-bit mantissa (rel. error 4.9e-4 per rounding); onnx.reference also
        # accumulates in float16, over up to a few hundred terms here.
        np.testing.assert_allclose(a, e, rtol=0, atol=5e-2 * scale)
    # Every float weight became float16, and only the edges gained Casts.
    types = _initializer_types(converted)
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            assert types[t.name] == TensorProto.FLOAT16, t.name
    added_casts = sum(n.op_type == "Cast" for n in converted.graph.node) - sum(
        n.op_type == "Cast" for n in model.graph.node
    )
    assert added_casts == len([i for i in sess.get_inputs() if "float" in i.type]) + len(
        sess.get_outputs()
    )
    # The original model is not modified.
    assert _initializer_types(model) == {t.name: t.data_type for t in onnx.load(str(MODELS / f"{name}.onnx")).graph.initializer}


def _chain_model():
    """x -> MatMul(W) -> ReduceSum(axis 1, keepdims) -> Mul(x-shaped broadcast) -> Cast(float) -> y."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 4)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("ReduceSum", ["h", "axes"], ["s"], name="sum", keepdims=1),
        helper.make_node("Mul", ["h", "s"], ["p"], name="mul"),
        helper.make_node("Cast", ["p"], ["y"], name="to_float", to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _dtype_of(model, value):
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        if v.name == value:
            return v.type.tensor_type.elem_type
    raise KeyError(value)


def test_blocked_op_keeps_float32_between_casts():
    model = _chain_model()
    converted = quantize.to_fp16(model)
    by_name = {n.name: n for n in converted.graph.node}
    # ReduceSum is blocked: it reads a float32 copy of h and its result is cast back for Mul.
    assert _dtype_of(converted, by_name["sum"].input[0]) == TensorProto.FLOAT
    assert _dtype_of(converted, by_name["mm"].output[0]) == TensorProto.FLOAT16
    assert _dtype_of(converted, by_name["mul"].input[1]) == TensorProto.FLOAT16
    # The model's own Cast-to-float now targets float16; a final Cast restores the output.
    assert next(a.i for a in by_name["to_float"].attribute if a.name == "to") == TensorProto.FLOAT16
    assert _dtype_of(converted, "y") == TensorProto.FLOAT
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    actual = ReferenceEvaluator(converted).run(None, {"x": x})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-2, atol=1e-2 * np.abs(expected).max())


def test_empty_block_list_converts_everything_and_io_types_can_change():
    converted = quantize.to_fp16(_chain_model(), keep_io_types=False, op_block_list=[])
    assert converted.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert converted.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert not any(n.op_type == "Cast" and n.name.startswith("cast_") for n in converted.graph.node)
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float16)
    (y,) = ReferenceEvaluator(converted).run(None, {"x": x})
    assert y.dtype == np.float16


def test_node_block_list_and_shared_initializer():
    # Two MatMuls read the same weight; blocking one keeps the weight float32 for it, and the
    # other reads a half copy through one Cast.
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["a"], name="keep32"),
            helper.make_node("MatMul", ["x", "w"], ["b"], name="half"),
            helper.make_node("Add", ["a", "b"], ["y"], name="add"),
        ],
        "shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    converted = quantize.to_fp16(model, node_block_list=["keep32"])
    assert _initializer_types(converted)["w"] == TensorProto.FLOAT
    by_name = {n.name: n for n in converted.graph.node}
    assert by_name["keep32"].input[1] == "w"
    assert by_name["half"].input[1] != "w"
    x = np.random.default_rng(2).standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_allclose(
        ReferenceEvaluator(converted).run(None, {"x": x})[0], x @ w * 2, rtol=2e-2, atol=2e-2
    )


def test_constants_and_out_of_range_weights():
    big = np.array([1e6, -1e6, 0.5, np.inf], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["c"], value_float=0.25),
            helper.make_node("ConstantOfShape", ["shape"], ["z"]),
            helper.make_node("Mul", ["x", "big"], ["m"]),
            helper.make_node("Add", ["m", "c"], ["a"]),
            helper.make_node("Add", ["a", "z"], ["y"]),
        ],
        "consts",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [numpy_helper.from_array(big, "big"), numpy_helper.from_array(np.array([4], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.warns(UserWarning, match="clipped"):
        converted = quantize.to_fp16(model)
    weight = numpy_helper.to_array(next(t for t in converted.graph.initializer if t.name == "big"))
    assert weight.dtype == np.float16
    assert list(weight[:3]) == [65504.0, -65504.0, 0.5] and np.isinf(weight[3])
    x = np.array([1e-3, 1e-3, 2.0, 1.0], np.float32)
    y = ReferenceEvaluator(converted).run(None, {"x": x})[0]
    np.testing.assert_allclose(y[:3], [65.754, -65.254, 1.25], rtol=2e-3)


def test_accepts_path_and_bytes_and_rejects_garbage(tmp_path):
    model = _chain_model()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    a = quantize.to_fp16(str(path))
    b = quantize.to_fp16(model.SerializeToString())
    assert a.SerializeToString() == b.SerializeToString()
    with pytest.raises(runnx.InvalidModel, match="not a readable ONNX model"):
        quantize.to_fp16(b"not a model")
