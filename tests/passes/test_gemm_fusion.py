"""gelu_fusion and gemm_fusion: they fire on the exported patterns (and the zoo models), leave what
they must, and the fused graph computes what the unfused one does (level 0 vs 99)."""

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from pass_helpers import FLOAT, graph_model, run_both, session

from bench.models import zoo

MODELS = os.path.join(os.path.dirname(__file__), "..", "models")
f32 = np.float32


def _close(a, b, tol=2e-5):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _gelu_erf_nodes(x, y, order="x_first", div=True):
    pre = "g_" + y
    nodes = [helper.make_node("Div", [x, "sqrt2"], [pre + "d"]) if div
             else helper.make_node("Mul", [x, "inv_sqrt2"], [pre + "d"]),
             helper.make_node("Erf", [pre + "d"], [pre + "e"]),
             helper.make_node("Add", ["one", pre + "e"], [pre + "p"])]
    if order == "x_first":
        nodes += [helper.make_node("Mul", [x, pre + "p"], [pre + "m"]),
                  helper.make_node("Mul", [pre + "m", "half"], [y])]
    else:  # (0.5 * x) * p
        nodes += [helper.make_node("Mul", ["half", x], [pre + "h"]),
                  helper.make_node("Mul", [pre + "p", pre + "h"], [y])]
    return nodes


def _gelu_tanh_nodes(x, y, cube="pow"):
    pre = "t_" + y
    if cube == "pow":
        nodes = [helper.make_node("Pow", [x, "three"], [pre + "c"])]
    else:
        nodes = [helper.make_node("Mul", [x, x], [pre + "sq"]), helper.make_node("Mul", [pre + "sq", x], [pre + "c"])]
    return nodes + [
        helper.make_node("Mul", ["k044", pre + "c"], [pre + "w"]),
        helper.make_node("Add", [x, pre + "w"], [pre + "u"]),
        helper.make_node("Mul", [pre + "u", "sqrt2pi"], [pre + "v"]),
        helper.make_node("Tanh", [pre + "v"], [pre + "t"]),
        helper.make_node("Add", [pre + "t", "one"], [pre + "p"]),
        helper.make_node("Mul", [x, pre + "p"], [pre + "m"]),
        helper.make_node("Mul", [pre + "m", "half"], [y]),
    ]


CONSTS = {"sqrt2": np.array(np.sqrt(2), f32), "inv_sqrt2": np.array(1 / np.sqrt(2), f32), "one": np.array(1, f32),
          "half": np.array(0.5, f32), "three": np.array(3, f32), "k044": np.array(0.044715, f32),
          "sqrt2pi": np.array(np.sqrt(2 / np.pi), f32)}


@pytest.mark.parametrize("form", ["erf_x_first", "erf_half_first", "erf_mul", "tanh_pow", "tanh_mul"])
def test_gelu_forms_fused(form):
    if form.startswith("erf"):
        nodes = _gelu_erf_nodes("x", "y", "x_first" if form != "erf_half_first" else "half_first",
                                div=form != "erf_mul")
    else:
        nodes = _gelu_tanh_nodes("x", "y", "pow" if form == "tanh_pow" else "mul")
    m = graph_model(nodes, [("x", FLOAT, [3, 37])], [("y", FLOAT, None)], CONSTS)
    x = (np.random.default_rng(3).standard_normal((3, 37)) * 3).astype(f32)
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("gelu_fusion") == 1, fired
    _close(opt, plain)


def test_gelu_not_fused_when_intermediate_escapes_or_constant_differs():
    nodes = _gelu_erf_nodes("x", "y")
    m = graph_model(nodes, [("x", FLOAT, [4])], [("y", FLOAT, None), ("g_ye", FLOAT, None)], CONSTS)
    assert "gelu_fusion" not in session(m, 99)._passes_fired()
    wrong = dict(CONSTS, half=np.array(0.4, f32))
    m = graph_model(_gelu_erf_nodes("x", "y"), [("x", FLOAT, [4])], [("y", FLOAT, None)], wrong)
    sess = session(m, 99)
    assert "gelu_fusion" not in sess._passes_fired()
    x = np.linspace(-3, 3, 4).astype(f32)
    _close(sess.run(None, {"x": x})[0], session(m, 0).run(None, {"x": x})[0])
    # float64 constants: x is double, the fused float path must not take it.
    m = graph_model(_gelu_erf_nodes("x", "y"), [("x", onnx.TensorProto.DOUBLE, [4])],
                    [("y", onnx.TensorProto.DOUBLE, None)], {k: v.astype(np.float64) for k, v in CONSTS.items()})
    assert "gelu_fusion" not in session(m, 99)._passes_fired()


ACTS = ["", "Relu", "Sigmoid", "Tanh", "Clip", "GeluErf", "GeluTanh"]


def _act_nodes(act, x, y, opset):
    if act == "Clip":
        if opset < 11:
            return [helper.make_node("Clip", [x], [y], min=-0.5, max=0.7)]
        return [helper.make_node("Clip", [x, "lo", "hi"], [y])]
    if act == "GeluErf":
        return _gelu_erf_nodes(x, y)
    if act == "GeluTanh":
        return _gelu_tanh_nodes(x, y)
    return [helper.make_node(act, [x], [y])]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("a_shape", [(2, 5, 7), (7,), (1, 7), (33, 7)])
@pytest.mark.parametrize("residual", [False, True])
def test_matmul_bias_residual_activation_fused(act, a_shape, residual):
    rng = np.random.default_rng(len(act) + len(a_shape))
    n = 13
    opset = 17
    w = rng.standard_normal((7, n)).astype(f32)
    bias = rng.standard_normal(n).astype(f32)
    out_shape = a_shape[:-1] + (n,)
    nodes = [helper.make_node("MatMul", ["a", "w"], ["mm"]), helper.make_node("Add", ["bias", "mm"], ["b"])]
    last = "b"
    inputs = [("a", FLOAT, list(a_shape))]
    feeds = {"a": rng.standard_normal(a_shape).astype(f32)}
    if residual:
        nodes.append(helper.make_node("Add", ["b", "r"], ["br"]))
        inputs.append(("r", FLOAT, list(out_shape)))
        feeds["r"] = rng.standard_normal(out_shape).astype(f32)
        last = "br"
    if act:
        nodes += _act_nodes(act, last, "y", opset)
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"]))
    inits = dict(CONSTS, w=w, bias=bias, lo=np.array(-0.5, f32), hi=np.array(0.7, f32))
    m = graph_model(nodes, inputs, [("y", FLOAT, None)], inits, opset=opset)
    (plain,), (opt,), fired = run_both(m, feeds)
    assert fired.get("gemm_fusion") == 1, fired
    _close(opt, plain, 1e-4)


def test_broadcast_residual_and_growing_output():
    # The residual broadcasts up: [1, 4, 6] + [4, 6] -> computed, then added with broadcasting.
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("MatMul", ["a", "w"], ["mm"]), helper.make_node("Add", ["mm", "r"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    m = graph_model(nodes, [("a", FLOAT, [4, 3]), ("r", FLOAT, [2, 4, 6])], [("y", FLOAT, None)],
                    {"w": rng.standard_normal((3, 6)).astype(f32)})
    feeds = {"a": rng.standard_normal((4, 3)).astype(f32), "r": rng.standard_normal((2, 4, 6)).astype(f32)}
    (plain,), (opt,), fired = run_both(m, feeds)
    assert fired.get("gemm_fusion") == 1 and opt.shape == (2, 4, 6)
    _close(opt, plain)
    # And a residual of one column broadcast along rows.
    m = graph_model(nodes, [("a", FLOAT, [4, 3]), ("r", FLOAT, [6])], [("y", FLOAT, None)],
                    {"w": rng.standard_normal((3, 6)).astype(f32)})
    feeds["r"] = rng.standard_normal(6).astype(f32)
    (plain,), (opt,), fired = run_both(m, feeds)
    _close(opt, plain)


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (9,), (1, 9)])
def test_gemm_with_bias_and_activation(trans_b, c_shape):
    rng = np.random.default_rng(trans_b)
    w = rng.standard_normal((9, 5) if trans_b else (5, 9)).astype(f32)
    inits = {"w": w}
    ins = ["a", "w"]
    if c_shape:
        inits["c"] = rng.standard_normal(c_shape).astype(f32)
        ins.append("c")
    nodes = [helper.make_node("Gemm", ins, ["g"], transB=trans_b), helper.make_node("Relu", ["g"], ["y"])]
    m = graph_model(nodes, [("a", FLOAT, ["n", 5])], [("y", FLOAT, None)], inits)
    for rows in (1, 3, 50):
        feeds = {"a": rng.standard_normal((rows, 5)).astype(f32)}
        (plain,), (opt,), fired = run_both(m, feeds)
        assert fired.get("gemm_fusion") == 1
        _close(opt, plain)


def test_not_fused_when_intermediate_is_read_elsewhere():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["a", "w"], ["mm"]), helper.make_node("Add", ["mm", "bias"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"]), helper.make_node("Neg", ["mm"], ["z"])]
    m = graph_model(nodes, [("a", FLOAT, [3, 4])], [("y", FLOAT, None), ("z", FLOAT, None)],
                    {"w": rng.standard_normal((4, 6)).astype(f32), "bias": np.ones(6, f32)})
    feeds = {"a": rng.standard_normal((3, 4)).astype(f32)}
    plain, opt, fired = run_both(m, feeds)
    assert "gemm_fusion" not in fired
    for a, b in zip(opt, plain):
        _close(a, b)
    # B fed at run time (not a constant): MatMul stays.
    nodes = [helper.make_node("MatMul", ["a", "w"], ["mm"]), helper.make_node("Relu", ["mm"], ["y"])]
    m = graph_model(nodes, [("a", FLOAT, [3, 4]), ("w", FLOAT, [4, 6])], [("y", FLOAT, None)])
    assert "gemm_fusion" not in session(m, 99)._passes_fired()


def test_fused_gemm_op_directly_runtime_b_and_errors():
    import runnx
    rng = np.random.default_rng(1)
    node = helper.make_node("FusedGemm", ["a", "b", "bias"], ["y"], domain="com.runnx", activation="Relu", trans_b=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, FLOAT, None) for n in ("a", "b", "bias")],
                              [helper.make_tensor_value_info("y", FLOAT, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.runnx", 1)])
    sess = runnx.InferenceSession(m.SerializeToString())
    a, b, bias = (rng.standard_normal(s).astype(f32) for s in ((2, 3, 5), (4, 5), (4,)))
    _close(sess.run(None, {"a": a, "b": b, "bias": bias})[0], np.maximum(a @ b.T + bias, 0), 1e-5)
    with pytest.raises(runnx.InvalidArgument, match="inner dimensions"):
        sess.run(None, {"a": a, "b": rng.standard_normal((4, 6)).astype(f32), "bias": bias})
    with pytest.raises(runnx.InvalidArgument, match="bias"):
        sess.run(None, {"a": a, "b": b, "bias": np.ones(3, f32)})



@pytest.mark.parametrize("a_shape,bias_shape", [((2, 3, 5), (4,)), ((2, 3, 5), (1, 4)), ((2, 3, 5), (1, 1, 1, 4)),
                                                ((5,), (4,)), ((5,), (1, 1, 4)), ((1, 5), (1, 1, 4))])
def test_fused_gemm_bias_rank_sets_output_shape(a_shape, bias_shape):
    # A bias of one value per column may carry leading 1s: the output takes them like numpy's
    # broadcast (only a higher-rank bias adds dims), with B packed at load.
    import runnx
    rng = np.random.default_rng(len(a_shape) * 10 + len(bias_shape))
    b = rng.standard_normal((4, 5)).astype(f32)
    node = helper.make_node("FusedGemm", ["a", "b", "bias"], ["y"], domain="com.runnx", activation="Sigmoid", trans_b=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, FLOAT, None) for n in ("a", "bias")],
                              [helper.make_tensor_value_info("y", FLOAT, None)], [numpy_helper.from_array(b, "b")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.runnx", 1)])
    a, bias = rng.standard_normal(a_shape).astype(f32), rng.standard_normal(bias_shape).astype(f32)
    got = runnx.InferenceSession(m.SerializeToString()).run(None, {"a": a, "bias": bias})[0]
    ref = 1 / (1 + np.exp(-(a.astype(np.float64) @ b.T + bias)))
    assert got.shape == ref.shape
    _close(got, ref.astype(f32), 1e-5)


# BERT tiny: 2 layers x 6 Linear MatMuls + the pooler Gemm (the 4 attention MatMuls have no constant B).
@pytest.mark.parametrize("name,expect", [("bert", {"gelu_fusion": 2, "gemm_fusion": 13}),
                                         ("mlp", {"gemm_fusion": 3})])
def test_fires_on_zoo_models(name, expect):
    path = os.path.join(MODELS, f"{name}_tiny.onnx")
    feeds = zoo.sample_inputs(name, batch=2, scale="tiny", seed=4)
    plain = session(path, 0).run(None, feeds)
    sess = session(path, 99)
    fired = sess._passes_fired()
    for k, v in expect.items():
        assert fired.get(k) == v, fired
    for a, b in zip(sess.run(None, feeds), plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
