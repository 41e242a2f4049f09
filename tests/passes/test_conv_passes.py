"""Conv passes: BatchNormalization folded into the conv (conv_bn_folding) and Conv + residual Add
+ activation -> FusedConv (conv_activation_fusion). Each fires where it should, leaves alone what
it must, and the optimised graph computes what the unoptimised one does (level 0 vs 99)."""

import os
import sys

import numpy as np
import onnx
import pytest
from helpers import rand
from onnx import helper

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from pass_helpers import FLOAT, graph_model, run_both, session

from bench.models import zoo

MODELS = os.path.join(os.path.dirname(__file__), "..", "models")


def close(a, b, scale=1.0):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale)


def bn_params(m, rng):
    return {
        "scale": rng.uniform(0.5, 1.5, m).astype(np.float32),
        "shift": rng.standard_normal(m).astype(np.float32),
        "mean": rng.standard_normal(m).astype(np.float32),
        "var": rng.uniform(0.2, 2.0, m).astype(np.float32),
    }


def conv_bn_model(bias: bool, act: str | None, residual: bool, group: int = 1, c: int = 6, m: int = 6):
    rng = np.random.default_rng(7)
    inits = {"w": rng.standard_normal((m, c // group, 3, 3)).astype(np.float32) * 0.3}
    inits.update(bn_params(m, rng))
    conv_in = ["x", "w"] + (["b"] if bias else [])
    if bias:
        inits["b"] = rng.standard_normal(m).astype(np.float32)
    nodes = [
        helper.make_node("Conv", conv_in, ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=group),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"], epsilon=1e-3),
    ]
    last = "bn"
    if residual:
        nodes.append(helper.make_node("Add", ["r", last], ["sum"]))
        last = "sum"
    if act == "Clip":
        inits["lo"], inits["hi"] = np.float32(0.0), np.float32(6.0)
        nodes.append(helper.make_node("Clip", [last, "lo", "hi"], ["y"]))
    elif act == "LeakyRelu":
        nodes.append(helper.make_node("LeakyRelu", [last], ["y"], alpha=0.3))
    elif act:
        nodes.append(helper.make_node(act, [last], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"]))
    inputs = [("x", FLOAT, [2, c, 7, 9])] + ([("r", FLOAT, [2, m, 7, 9])] if residual else [])
    return graph_model(nodes, inputs, [("y", FLOAT, None)], inits)


@pytest.mark.parametrize("act", [None, "Relu", "Clip", "Sigmoid", "LeakyRelu", "HardSwish"])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_bn_act_fused(bias, residual, act):
    model = conv_bn_model(bias, act, residual)
    feeds = {"x": rand((2, 6, 7, 9))}
    if residual:
        feeds["r"] = rand((2, 6, 7, 9))
    (plain,), (opt,), fired = run_both(model, feeds)
    assert fired.get("conv_bn_folding") == 1
    if act or residual:
        assert fired.get("conv_activation_fusion") == 1
    close(opt, plain, np.abs(plain).max())


def test_depthwise_conv_bn_relu6_fused():
    model = conv_bn_model(False, "Clip", False, group=6)
    feeds = {"x": rand((2, 6, 7, 9))}
    (plain,), (opt,), fired = run_both(model, feeds)
    assert fired.get("conv_bn_folding") == 1 and fired.get("conv_activation_fusion") == 1
    close(opt, plain)


def test_not_fused_when_intermediate_is_read_elsewhere():
    rng = np.random.default_rng(3)
    inits = {"w": rng.standard_normal((4, 3, 1, 1)).astype(np.float32)}
    inits.update(bn_params(4, rng))
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["y"]),
        helper.make_node("Neg", ["c"], ["y2"]),  # the conv output is read twice
    ]
    m = graph_model(nodes, [("x", FLOAT, [1, 3, 5, 5])], [("y", FLOAT, None), ("y2", FLOAT, None)], inits)
    feeds = {"x": rand((1, 3, 5, 5))}
    plain, opt, fired = run_both(m, feeds)
    assert "conv_bn_folding" not in fired
    for a, b in zip(opt, plain):
        close(a, b)


def test_graph_output_in_the_middle_is_kept():
    # The conv output is itself a graph output: Conv + Relu must not be fused.
    rng = np.random.default_rng(4)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [1, 3, 6, 6])], [("c", FLOAT, None), ("y", FLOAT, None)], {"w": w})
    plain, opt, fired = run_both(m, {"x": rand((1, 3, 6, 6))})
    assert "conv_activation_fusion" not in fired
    for a, b in zip(opt, plain):
        close(a, b)


def test_conv_with_runtime_weights_not_fused():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [1, 3, 6, 6]), ("w", FLOAT, [4, 3, 3, 3])], [("y", FLOAT, None)])
    feeds = {"x": rand((1, 3, 6, 6)), "w": rand((4, 3, 3, 3))}
    (plain,), (opt,), fired = run_both(m, feeds)
    assert "conv_activation_fusion" not in fired
    close(opt, plain)


def test_broadcasting_add_fused_exactly():
    # Add of a per-channel constant [M,1,1]: the FusedConv residual broadcasts.
    rng = np.random.default_rng(5)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "k": rng.standard_normal((4, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["k", "c"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [2, 3, 5, 5])], [("y", FLOAT, None)], inits)
    (plain,), (opt,), fired = run_both(m, {"x": rand((2, 3, 5, 5))})
    assert fired.get("conv_activation_fusion") == 1
    close(opt, plain, np.abs(plain).max())


def test_old_clip_attributes():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Clip", ["c"], ["y"], min=-0.5, max=0.5)]
    m = graph_model(nodes, [("x", FLOAT, [1, 3, 4, 4])], [("y", FLOAT, None)], {"w": w}, opset=9)
    (plain,), (opt,), fired = run_both(m, {"x": rand((1, 3, 4, 4))})
    assert fired.get("conv_activation_fusion") == 1
    close(opt, plain)


@pytest.mark.parametrize("name", ["resnet50", "mobilenetv2"])
def test_zoo_tiny_models(name):
    """Every Conv+BN of the tiny zoo models folds, the activations/residuals fuse, and the outputs
    match the unoptimised graph (batch 3, fresh inputs)."""
    path = os.path.join(MODELS, f"{name}_tiny.onnx")
    model = onnx.load(path)
    n_bn = sum(n.op_type == "BatchNormalization" for n in model.graph.node)
    n_conv = sum(n.op_type == "Conv" for n in model.graph.node)
    feeds = zoo.sample_inputs(name, batch=3, scale="tiny", seed=5)
    plain = session(path, 0).run(None, feeds)
    opt_sess = session(path, 99)
    fired = opt_sess._passes_fired()
    assert fired.get("conv_bn_folding") == n_bn
    assert 0 < fired.get("conv_activation_fusion", 0) <= n_conv
    for a, b in zip(opt_sess.run(None, feeds), plain):
        close(a, b, np.abs(b).max())


@pytest.mark.parametrize("name", ["resnet50", "mobilenetv2"])
def test_zoo_builder_models_batch1(name):
    model = zoo.build(name, "tiny")
    feeds = zoo.sample_inputs(name, batch=1, scale="tiny", seed=9)
    (plain,), (opt,), fired = run_both(model, feeds)
    assert fired.get("conv_bn_folding", 0) > 0 and fired.get("conv_activation_fusion", 0) > 0
    close(opt, plain, np.abs(plain).max())
