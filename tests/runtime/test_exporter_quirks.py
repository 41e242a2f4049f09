"""What real exporters (PyTorch, tf2onnx, Keras, Paddle) write and runnx must tolerate."""

import numpy as np
import runnx
from helpers import assert_close, rand
from onnx import TensorProto, helper, numpy_helper


def _graph_model(nodes, inputs, outputs, inits=(), opsets=(("", 17),)):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = 8
    return m


def test_unused_extra_opset_imports_and_symbolic_expression_dims():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch_size", "seq_len"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch_size", "Addy_dim_1*2+seq_len-1"])
    m = _graph_model(
        [helper.make_node("Relu", ["x"], ["y"])], [x], [y],
        opsets=[("", 13), ("ai.onnx.ml", 3), ("com.microsoft", 1), ("ai.onnx.training", 1)],
    )
    sess = runnx.InferenceSession(m.SerializeToString())
    assert sess.get_outputs()[0].shape == ["batch_size", "Addy_dim_1*2+seq_len-1"]
    v = rand((2, 5))
    assert_close(sess.run(None, {"x": v})[0], np.maximum(v, 0))


def test_dim_value_minus_one_is_an_unknown_dim():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    x.type.tensor_type.shape.dim[0].dim_value = -1  # tf2onnx writes unknown dims like this
    m = _graph_model([helper.make_node("Neg", ["x"], ["y"])], [x],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    sess = runnx.InferenceSession(m.SerializeToString())
    assert sess.get_inputs()[0].shape == [None, 4]
    for batch in (1, 3):
        v = rand((batch, 4))
        assert_close(sess.run(None, {"x": v})[0], -v)


def test_hundreds_of_constant_nodes():
    nodes, prev = [], "x"
    for i in range(300):  # torch exports scalars and shapes as Constant nodes, one per use
        nodes.append(helper.make_node("Constant", [], [f"c{i}"], value=numpy_helper.from_array(np.array(1.0, np.float32))))
        nodes.append(helper.make_node("Add", [prev, f"c{i}"], [f"a{i}"]))
        prev = f"a{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    m = _graph_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    v = rand((3,))
    assert_close(runnx.InferenceSession(m.SerializeToString()).run(None, {"x": v})[0], v + 300)


def test_constant_value_forms_and_constant_graph_output():
    nodes = [
        helper.make_node("Constant", [], ["f"], value_float=2.5),
        helper.make_node("Constant", [], ["fs"], value_floats=[1.0, 2.0]),
        helper.make_node("Constant", [], ["i"], value_int=7),
        helper.make_node("Constant", [], ["is"], value_ints=[1, 2, 3]),
        helper.make_node("Mul", ["x", "f"], ["y"]),
    ]
    outs = [helper.make_tensor_value_info(n, t, None) for n, t in
            [("y", TensorProto.FLOAT), ("fs", TensorProto.FLOAT), ("i", TensorProto.INT64), ("is", TensorProto.INT64)]]
    m = _graph_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], outs)
    y, fs, i, is_ = runnx.InferenceSession(m.SerializeToString()).run(None, {"x": np.ones(2, np.float32)})
    assert_close(y, np.full(2, 2.5, np.float32))
    assert_close(fs, np.array([1.0, 2.0], np.float32))
    assert i.shape == () and i.dtype == np.int64 and i == 7
    assert_close(is_, np.array([1, 2, 3], np.int64))


def test_torch_style_dynamic_reshape_from_shape_arithmetic():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as torch writes x.view(b, -1)."""
    i0 = numpy_helper.from_array(np.array(0, np.int64), "zero")
    neg = numpy_helper.from_array(np.array([-1], np.int64), "minus_one")
    ax = numpy_helper.from_array(np.array([0], np.int64), "axes0")
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["bu"]),
        helper.make_node("Concat", ["bu", "minus_one"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    m = _graph_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 4])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 12])], [i0, neg, ax])
    sess = runnx.InferenceSession(m.SerializeToString())
    for batch in (1, 5, 2):
        v = rand((batch, 3, 4))
        for _ in range(2):
            assert_close(sess.run(None, {"x": v})[0], v.reshape(batch, -1))
