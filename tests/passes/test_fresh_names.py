"""Names a pass gives what it adds never clash with the graph's: a BN fold's weight and bias, a
fused Gemm's node, when the graph already holds a value, an initializer, a graph output and a node
under the names the pass would try first."""

import numpy as np
import runnx
from helpers import rand
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator


def test_names_taken_by_values_initializers_outputs_and_nodes_are_skipped():
    rng = np.random.default_rng(9)
    c, m = 3, 4
    w = rand((m, c, 3, 3), rng=rng)
    scale, shift, mean = rand((m,), rng=rng), rand((m,), rng=rng), rand((m,), rng=rng)
    var = rng.uniform(0.5, 2.0, m).astype(np.float32)
    taken_init = rand((1, m, 1, 1), rng=rng)  # an initializer named as the fold's weight would be
    gw, gb = rand((m * 4, 5), rng=rng), rand((5,), rng=rng)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv_out"], name="c", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv_out", "s", "b", "mu", "v"], ["bn"], name="bn"),
        helper.make_node("Add", ["bn", "c.weight_bn"], ["c.bias_bn"], name="c.weight_bn_1"),  # value, node
        helper.make_node("Relu", ["c.bias_bn"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "gw", "gb"], ["g_fused"], name="g"),  # a value named as the fused node
        helper.make_node("Relu", ["g_fused"], ["y"], name="g_fused_1"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5]),
         helper.make_tensor_value_info("c.bias_bn_1", TensorProto.FLOAT, None)],  # a graph output too
        [numpy_helper.from_array(a, n) for a, n in [
            (w, "w"), (scale, "s"), (shift, "b"), (mean, "mu"), (var, "v"), (taken_init, "c.weight_bn"),
            (gw, "gw"), (gb, "gb")]],
    )
    graph.node.append(helper.make_node("Identity", ["r"], ["c.bias_bn_1"], name="id"))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = runnx.InferenceSession(model.SerializeToString())
    fired = dict(sess._sess.passes_fired())
    assert fired.get("conv_bn_folding") == 1 and fired.get("gemm_fusion") == 1, fired
    node_names = [step[0] for step in sess._sess.placement()]
    assert len(node_names) == len(set(node_names)), node_names
    assert "g_fused_2" in node_names  # "g_fused" is a value, "g_fused_1" a node
    x = rand((1, c, 2, 2), rng=rng)
    want = ReferenceEvaluator(model).run(None, {"x": x})
    for got, ref in zip(sess.run(None, {"x": x}), want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
