"""nhwc_layout: conv chains (with a depthwise conv, or of three group-1 convs) move to channels-last
NhwcConv nodes with reorders only at the chain's borders; the outputs match the unoptimised graph
(level 0) and the NCHW fusions (level 2)."""

import os
import sys

import numpy as np
import onnx
import pytest
from helpers import rand
from onnx import helper

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from pass_helpers import FLOAT, graph_model, session

from bench.models import zoo

MODELS = os.path.join(os.path.dirname(__file__), "..", "models")
RNG = np.random.default_rng(11)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(b).max())))


def w(*shape):
    return (RNG.standard_normal(shape) * 0.3).astype(np.float32)


def levels(model, feeds):
    """Outputs at levels 0, 2 and 99, and the passes that fired at 99. The level-99 session runs
    three times: from the second run on it works in its memory plan (a residual's buffer may be
    taken over by the conv that reads it last), so the last run's outputs are the ones compared."""
    outs = [session(model, lv).run(None, feeds) for lv in (0, 2)]
    opt = session(model, 99)
    for _ in range(2):
        opt.run(None, feeds)
    return outs, opt.run(None, feeds), opt._passes_fired()


def block_model(c_in=3, c=5, expand=17, batch=1, size=9):
    """stem 3x3/s2 (NCHW read) -> Relu -> depthwise -> 1x1 expand -> Clip -> depthwise s2 ->
    1x1 project; a second block adds a residual; a middle value is also a graph output and is
    read by a Sigmoid outside the chain."""
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["s"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["s"], ["s_r"]),
        helper.make_node("Conv", ["s_r", "wd0"], ["d0"], group=c, kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d0", "we", "be"], ["e"], kernel_shape=[1, 1]),
        helper.make_node("Clip", ["e", "lo", "hi"], ["e_c"]),
        helper.make_node("Conv", ["e_c", "wd1"], ["d1"], group=expand, kernel_shape=[3, 3],
                         strides=[2, 2], pads=[0, 1, 1, 0]),
        helper.make_node("Conv", ["d1", "wp"], ["p"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["p", "we2"], ["e2"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["e2"], ["e2_r"]),
        helper.make_node("Conv", ["e2_r", "wd2"], ["d2"], group=expand, kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d2", "wp2"], ["p2"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["p2", "p"], ["y"]),
        helper.make_node("Sigmoid", ["e_c"], ["side"]),
    ]
    inits = {
        "w0": w(c, c_in, 3, 3), "b0": w(c), "wd0": w(c, 1, 3, 3), "we": w(expand, c, 1, 1),
        "be": w(expand), "lo": np.float32(0), "hi": np.float32(6), "wd1": w(expand, 1, 3, 3),
        "wp": w(c, expand, 1, 1), "we2": w(expand, c, 1, 1), "wd2": w(expand, 1, 3, 3),
        "wp2": w(c, expand, 1, 1),
    }
    return graph_model(nodes, [("x", FLOAT, [batch, c_in, size, size])],
                       [("y", FLOAT, None), ("side", FLOAT, None), ("d0", FLOAT, None)], inits)


@pytest.mark.parametrize("batch,size", [(1, 9), (3, 7), (1, 3)])
def test_chain_matches_unfused(batch, size):
    model = block_model(batch=batch, size=size)
    feeds = {"x": rand((batch, 3, size, size), rng=RNG)}
    (plain, ext), opt, fired = levels(model, feeds)
    assert fired.get("nhwc_layout") == 8
    for a, b, c in zip(opt, plain, ext):
        close(a, b)
        close(a, c)


def test_borders_are_transposes_only():
    """The NCHW input is read by the stem itself; only values read outside the chain (the graph
    output y, the Sigmoid's input, the graph output d0) are reordered back."""
    model = block_model()
    sess = session(model, 99)
    ops = [op for _, op, _, _, _, _ in sess._sess.kernel_choices()]
    expanded = sum("expansion" in what for _, _, _, _, _, what in sess._sess.kernel_choices())
    # (nhwc_dw_project_fusion then merges two depthwise + projection pairs, and folds a 1x1
    # expansion read only by its depthwise conv into the pair)
    assert ops.count("NhwcConv") + 2 * ops.count("NhwcDwProject") + expanded == 8
    assert "Conv" not in ops
    assert ops.count("Transpose") == 3


def test_depthwise_pair_is_a_chain():
    """A depthwise conv and the 1x1 after it are the smallest chain."""
    nodes = [helper.make_node("Conv", ["x", "wd"], ["d"], group=4, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["d", "wp"], ["y"], kernel_shape=[1, 1])]
    model = graph_model(nodes, [("x", FLOAT, [2, 4, 6, 5])], [("y", FLOAT, None)],
                        {"wd": w(4, 1, 3, 3), "wp": w(7, 4, 1, 1)})
    feeds = {"x": rand((2, 4, 6, 5), rng=RNG)}
    (plain, _), opt, fired = levels(model, feeds)
    assert fired.get("nhwc_layout") == 2
    close(opt[0], plain[0])


def test_two_group1_convs_stay_nchw():
    """Without a depthwise conv a chain needs three members: two would pay a reorder each side."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["y"], kernel_shape=[1, 1])]
    model = graph_model(nodes, [("x", FLOAT, [1, 4, 5, 5])], [("y", FLOAT, None)],
                        {"w1": w(6, 4, 1, 1), "w2": w(3, 6, 1, 1)})
    feeds = {"x": rand((1, 4, 5, 5), rng=RNG)}
    (plain, _), opt, fired = levels(model, feeds)
    assert "nhwc_layout" not in fired
    close(opt[0], plain[0])


def bottleneck_model(c=16, mid=8, batch=1, size=18):
    """A 1x1 conv, then ResNet's bottleneck on its output h: 1x1 -> Relu -> 3x3 (Winograd-sized)
    -> Relu -> 1x1 -> + h -> Relu. (A residual made outside a chain keeps its conv out of it.)"""
    nodes = [helper.make_node("Conv", ["x", "w0"], ["h"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["h", "w1", "b1"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["a"], ["a_r"]),
             helper.make_node("Conv", ["a_r", "w2"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["b"], ["b_r"]),
             helper.make_node("Conv", ["b_r", "w3", "b3"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["c", "h"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    inits = {"w0": w(c, c, 1, 1), "w1": w(mid, c, 1, 1), "b1": w(mid), "w2": w(mid, mid, 3, 3),
             "w3": w(c, mid, 1, 1), "b3": w(c)}
    return graph_model(nodes, [("x", FLOAT, [batch, c, size, size])], [("y", FLOAT, None)], inits)


@pytest.mark.parametrize("batch,size", [(1, 18), (3, 16), (1, 5)])
def test_bottleneck_goes_channels_last(batch, size):
    """Four group-1 convs, the 3x3 one with channels in whole vectors of 8, are a chain: the
    first reads x through a reorder, the last one's output is reordered back."""
    model = bottleneck_model(batch=batch, size=size)
    feeds = {"x": rand((batch, 16, size, size), rng=RNG)}
    (plain, ext), opt, fired = levels(model, feeds)
    assert fired.get("nhwc_layout") == 4
    ops = kernel_ops(model)
    assert ops.count("NhwcConv") == 4 and ops.count("Transpose") == 2
    assert "Conv" not in ops and "FusedConv" not in ops
    for a, b in ((opt[0], plain[0]), (opt[0], ext[0])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(b).max())))


def test_winograd_conv_off_whole_vectors_stays_nchw():
    """A 3x3 stride-1 conv on 6 channels keeps NCHW Winograd between reorders; the three 1x1
    convs (linked through h, the residual) are still a chain."""
    model = bottleneck_model(c=16, mid=6)
    feeds = {"x": rand((1, 16, 18, 18), rng=RNG)}
    (plain, _), opt, fired = levels(model, feeds)
    assert fired.get("nhwc_layout") == 3
    ops = kernel_ops(model)
    assert ops.count("NhwcConv") == 3 and ops.count("FusedConv") == 1
    np.testing.assert_allclose(opt[0], plain[0], rtol=1e-3,
                               atol=1e-3 * float(np.abs(plain[0]).max()))


@pytest.mark.parametrize("batch,size", [(1, 17), (3, 16)])
def test_basic_block_winograd_takes_the_residual(batch, size):
    """ResNet-18's basic block: a 3x3 -> Relu -> 3x3 + h -> Relu chain after a 1x1 making h. The
    second 3x3 runs Winograd with h as Z, whose buffer it may take over (h dies there)."""
    nodes = [helper.make_node("Conv", ["x", "w0"], ["h"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["h", "w1", "b1"], ["a"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["a_r"]),
             helper.make_node("Conv", ["a_r", "w2", "b2"], ["c"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "h"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    model = graph_model(nodes, [("x", FLOAT, [batch, 8, size, size])], [("y", FLOAT, None)],
                        {"w0": w(16, 8, 1, 1), "w1": w(16, 16, 3, 3), "b1": w(16),
                         "w2": w(16, 16, 3, 3), "b2": w(16)})
    feeds = {"x": rand((batch, 8, size, size), rng=RNG)}
    (plain, ext), opt, fired = levels(model, feeds)
    assert fired.get("nhwc_layout") == 3
    choices = session(model, 99)._sess.kernel_choices()
    assert sum("Winograd" in what for _, _, _, _, _, what in choices) == 2
    for a, b in ((opt[0], plain[0]), (opt[0], ext[0])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(b).max())))


def test_first_winograd_conv_reads_a_reorder():
    """A chain's first conv on few channels reads NCHW itself, unless it is a Winograd-sized 3x3
    (channels-last input only): that one reads a Transpose of x."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["b"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["b", "w3"], ["y"], kernel_shape=[1, 1])]
    model = graph_model(nodes, [("x", FLOAT, [2, 8, 17, 18])], [("y", FLOAT, None)],
                        {"w1": w(16, 8, 3, 3), "w2": w(8, 16, 1, 1), "w3": w(5, 8, 1, 1)})
    feeds = {"x": rand((2, 8, 17, 18), rng=RNG)}
    (plain, _), opt, fired = levels(model, feeds)
    assert fired.get("nhwc_layout") == 3
    choices = session(model, 99)._sess.kernel_choices()
    assert [op for _, op, _, _, _, _ in choices].count("Transpose") == 2
    assert any("Winograd" in what for _, _, _, _, _, what in choices)
    np.testing.assert_allclose(opt[0], plain[0], rtol=1e-3,
                               atol=1e-3 * float(np.abs(plain[0]).max()))


def test_runtime_weights_and_grouped_convs_stay_nchw():
    """A conv whose weights are fed, or whose groups are neither 1 nor depthwise, is no member;
    the depthwise conv left alone stays NCHW too (reorders on both sides would cost more)."""
    nodes = [helper.make_node("Conv", ["x", "wd"], ["d"], group=4, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["d", "wg"], ["g"], group=2, kernel_shape=[1, 1]),
             helper.make_node("Conv", ["g", "wf"], ["y"], kernel_shape=[1, 1])]
    model = graph_model(nodes, [("x", FLOAT, [1, 4, 6, 6]), ("wf", FLOAT, [3, 6, 1, 1])],
                        [("y", FLOAT, None)], {"wd": w(4, 1, 3, 3), "wg": w(6, 2, 1, 1)})
    feeds = {"x": rand((1, 4, 6, 6), rng=RNG), "wf": w(3, 6, 1, 1)}
    (plain, _), opt, fired = levels(model, feeds)
    assert "nhwc_layout" not in fired
    close(opt[0], plain[0])


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet50"])
@pytest.mark.parametrize("batch", [1, 3])
def test_zoo_tiny_models(name, batch):
    """Every conv of MobileNetV2 joins the chain. ResNet-50's join too but for three: the stem
    (MaxPool follows it), layer1.0.conv2 (3x3 stride 1 on 4 channels, not whole vectors: NCHW
    Winograd) and layer1.0.conv1, which only that conv reads."""
    path = os.path.join(MODELS, f"{name}_tiny.onnx")
    n_conv = sum(n.op_type == "Conv" for n in onnx.load(path).graph.node)
    feeds = zoo.sample_inputs(name, batch=batch, scale="tiny", seed=5)
    (plain, ext), opt, fired = levels(path, feeds)
    assert fired.get("nhwc_layout", 0) == (n_conv if name == "mobilenetv2" else n_conv - 3)
    for a, b, c in zip(opt, plain, ext):
        close(a, b)
        close(a, c)


def pooled_head(opset=17, flatten_axis=1, pooled_output=False, batch=2, size=5):
    """depthwise -> 1x1 (a chain) -> GlobalAveragePool -> Flatten -> Gemm, MobileNetV2's head."""
    nodes = [helper.make_node("Conv", ["x", "wd"], ["d"], group=4, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["d", "wp", "bp"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"], axis=flatten_axis),
             helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1)]
    k = 11 if flatten_axis == 1 else 1
    outputs = [("y", FLOAT, None)] + ([("g", FLOAT, None)] if pooled_output else [])
    return graph_model(nodes, [("x", FLOAT, [batch, 4, size, size + 2])], outputs,
                       {"wd": w(4, 1, 3, 3), "wp": w(11, 4, 1, 1), "bp": w(11), "wf": w(3, k)},
                       opset=opset)


def kernel_ops(model, level=99):
    return [op for _, op, _, _, _, _ in session(model, level)._sess.kernel_choices()]


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("batch,size", [(2, 5), (1, 1), (3, 4)])
def test_pooled_head_averages_nhwc(opset, batch, size):
    """The chain's output read only by GlobalAveragePool -> Flatten is averaged in NHWC by
    ReduceMean (axes an attribute before opset 18, an input from 18): no reorder back."""
    model = pooled_head(opset, batch=batch, size=size)
    feeds = {"x": rand((batch, 4, size, size + 2), rng=RNG)}
    (plain, ext), opt, fired = levels(model, feeds)
    assert fired.get("nhwc_layout") == 2
    close(opt[0], plain[0])
    close(opt[0], ext[0])
    ops = kernel_ops(model)
    # (one Transpose: into the chain, whose first conv is depthwise)
    assert "ReduceMean" in ops and ops.count("Transpose") == 1 and "GlobalAveragePool" not in ops


@pytest.mark.parametrize("flatten_axis,pooled_output", [(2, False), (1, True)])
def test_pooled_head_kept_when_layout_shows(flatten_axis, pooled_output):
    """Flatten at another axis, or the pooled value read elsewhere, sees the NCHW layout: the
    reorder back stays."""
    model = pooled_head(flatten_axis=flatten_axis, pooled_output=pooled_output)
    feeds = {"x": rand((2, 4, 5, 7), rng=RNG)}
    (plain, _), opt, fired = levels(model, feeds)
    assert fired.get("nhwc_layout") == 2
    for a, b in zip(opt, plain):
        close(a, b)
    ops = kernel_ops(model)
    assert ops.count("Transpose") == 2 and "GlobalAveragePool" in ops and "ReduceMean" not in ops


def test_mobilenetv2_head_has_no_reorder():
    path = os.path.join(MODELS, "mobilenetv2_tiny.onnx")
    ops = kernel_ops(path)
    assert "Transpose" not in ops and ops.count("ReduceMean") == 1
