"""Static dtype/shape inference: coverage of every op, symbolic dims through torch-style shape
arithmetic, load-time errors for contradictory models, and the run-time check that binds the
input symbols (the whole suite runs with RUNNX_CHECK_INFERENCE=1, see conftest.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import runnx
from helpers import rand
from onnx import TensorProto, helper, numpy_helper
from runnx import _C

I64 = np.int64
MODELS = os.path.join(os.path.dirname(__file__), "..", "models")


def session(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return runnx.InferenceSession(model.SerializeToString())


def types(sess):
    return sess._sess.inferred_types()


def test_every_supported_op_has_an_inference_function():
    inferred = {(d, op) for d, op in _C.inference_ops()}
    missing = sorted({(d, op) for d, op, _ in _C.supported_ops()} - inferred)
    assert not missing, f"ops without shape inference: {missing}"


def torch_style_reshape():
    """x[batch, seq, 6] -> Reshape to [batch, seq, 2, 3] through Shape/Gather/Unsqueeze/Concat."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["b"], axis=0),
        helper.make_node("Gather", ["s", "i1"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax0"], ["bu"]),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["nu"]),
        helper.make_node("Concat", ["bu", "nu", "tail"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3]),
        helper.make_node("Mul", ["b", "n"], ["bn"]),
        helper.make_node("Unsqueeze", ["bn", "ax0"], ["bnu"]),
        helper.make_node("Concat", ["bnu", "minus1"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, I64), "i0"),
        numpy_helper.from_array(np.array(1, I64), "i1"),
        numpy_helper.from_array(np.array([0], I64), "ax0"),
        numpy_helper.from_array(np.array([2, 3], I64), "tail"),
        numpy_helper.from_array(np.array([-1], I64), "minus1"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 6])
    outs = [
        helper.make_tensor_value_info("t", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("flat", TensorProto.FLOAT, None),
    ]
    return session(nodes, [x], outs, inits)


def test_symbols_flow_through_torch_shape_arithmetic():
    sess = torch_style_reshape()
    t = types(sess)
    assert t["s"] == ("int64", [3], ["batch", "seq", 6])
    assert t["target"] == ("int64", [4], ["batch", "seq", 2, 3])
    assert t["r"] == ("float", ["batch", "seq", 2, 3], None)
    assert t["t"] == ("float", ["batch", 2, "seq", 3], None)
    assert t["bn"][2] == ["batch*seq"]
    assert t["flat"] == ("float", ["batch*seq", 6], None)  # the -1 resolved symbolically
    # Outputs the model leaves undeclared are reported as inferred, the way onnxruntime does.
    assert sess.get_outputs()[0].shape == ["batch", 2, "seq", 3]
    assert sess.get_outputs()[0].type == "tensor(float)"


def test_symbols_are_bound_per_run_and_checked():
    sess = torch_style_reshape()
    for b, n in [(1, 1), (3, 5), (2, 7), (3, 5)]:
        x = rand((b, n, 6))
        t, flat = sess.run(None, {"x": x})
        np.testing.assert_array_equal(t, x.reshape(b, n, 2, 3).transpose(0, 2, 1, 3))
        np.testing.assert_array_equal(flat, x.reshape(b * n, 6))
    stats = sess._sess.stats()
    assert stats["plans"] == 3 and stats["inference_mismatches"] == 0


def test_unnamed_dims_become_per_input_symbols():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    sess = session([helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    assert types(sess)["y"] == ("float", ["x:0", 4], None)
    assert sess.run(None, {"x": rand((5, 4))})[0].shape == (5, 4)


@pytest.mark.parametrize("start, end, step", [(1, 2**62, 1), (0, -1, 1), (-3, 2**62, 1), (2**62, -2**62, -1),
                                               (-1, -2**63, -2), (1, 3, 1)])
def test_slice_of_a_symbolic_dim_evaluates_like_the_kernel(start, end, step):
    nodes = [helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"])]
    inits = [numpy_helper.from_array(np.array([v], I64), n)
             for n, v in [("s", start), ("e", end), ("a", 0), ("st", step)]]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    sess = session(nodes, [x], [y], inits)
    assert isinstance(types(sess)["y"][1][0], str)  # symbolic, not unknown
    for n in [0, 1, 2, 5, 9]:  # the run-time check compares each with the kernel's result
        xv = rand((n, 2))
        np.testing.assert_array_equal(sess.run(None, {"x": xv})[0], xv[start:end:step])


@pytest.mark.parametrize(
    "node, inputs, match",
    [
        (helper.make_node("Add", ["a", "b"], ["y"]),
         [("a", TensorProto.FLOAT, [2, 3]), ("b", TensorProto.INT64, [2, 3])], "types differ"),
        (helper.make_node("Mul", ["a", "b"], ["y"]),
         [("a", TensorProto.FLOAT, ["n", 3]), ("b", TensorProto.FLOAT, [4])], "cannot broadcast"),
        (helper.make_node("Concat", ["a", "b"], ["y"], axis=0),
         [("a", TensorProto.FLOAT, ["n", 3]), ("b", TensorProto.FLOAT, ["m", 2])], "does not match"),
        (helper.make_node("Squeeze", ["a", "axes"], ["y"]),
         [("a", TensorProto.FLOAT, [2, 3])], "cannot squeeze"),
    ],
)
def test_contradictions_are_invalid_model_at_load(node, inputs, match):
    vis = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    inits = [numpy_helper.from_array(np.array([0], I64), "axes")]
    y = helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)
    with pytest.raises(runnx.InvalidModel, match=match):
        session([node], vis, [y], inits)


def test_reshape_to_the_wrong_element_count_is_invalid_model():
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [numpy_helper.from_array(np.array([4, 4], I64), "shape")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    with pytest.raises(runnx.InvalidModel, match="Reshape.*cannot reshape"):
        session(nodes, [x], [y], inits)


def test_data_dependent_shapes_stay_unknown_and_run():
    nodes = [helper.make_node("NonZero", ["x"], ["nz"]), helper.make_node("Transpose", ["nz"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, None)
    sess = session(nodes, [x], [y])
    dtype, dims, _ = types(sess)["y"]
    assert dtype == "int64" and dims[1] == 2 and dims[0] == "?"
    xv = np.array([[0, 1, 2], [3, 0, 0]], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": xv})[0], np.argwhere(xv))


@pytest.mark.parametrize("model", ["mlp_tiny", "resnet50_tiny", "mobilenetv2_tiny", "bert_tiny"])
def test_zoo_models_infer_every_value_and_agree_with_the_kernels(model):
    sess = runnx.InferenceSession(os.path.join(MODELS, f"{model}.onnx"))
    t = types(sess)
    for name, (dtype, dims, _) in t.items():
        assert dtype is not None, f"{name}: dtype not inferred"
        assert dims is not None, f"{name}: rank not inferred"
        assert all(not (isinstance(d, str) and "?" in d) for d in dims), f"{name}: {dims}"
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        feeds = {}
        for i in sess.get_inputs():
            shape = [d if isinstance(d, int) else batch for d in i.shape]
            if i.type == "tensor(float)":
                feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
            else:
                feeds[i.name] = rng.integers(0, 2, shape).astype(np.int64)
        sess.run(None, feeds)
    assert sess._sess.stats()["inference_mismatches"] == 0
