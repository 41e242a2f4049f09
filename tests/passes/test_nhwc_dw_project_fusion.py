"""nhwc_dw_project_fusion: NhwcConv(depthwise) -> NhwcConv(1x1 projection [+ Z]) becomes one
NhwcDwProject when the depthwise output has no other reader and the projection no activation,
and a 1x1 expansion making the depthwise input, read by nothing else, is folded in too; the
outputs match the unoptimised graph (level 0). Awkward shapes: channels no multiple of 8,
one-row and tiny images, stride 2 on odd sizes, batch 1 and 3, residual or none, ReLU6 / ReLU /
no activation on the depthwise conv, expand ratios 1 and 6; MobileNetV2 (tiny) becomes one node
per block at every optimisation level's match."""

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
from test_nhwc_layout import MODELS, close, w

from bench.models import zoo

RNG = np.random.default_rng(23)


def kernel_ops(sess):
    return [op for _, op, _, _, _, _ in sess._sess.kernel_choices()]


def expanded(sess):
    """How many NhwcDwProject nodes run the block's expansion too."""
    return sum(op == "NhwcDwProject" and "expansion" in what
               for _, op, _, _, _, what in sess._sess.kernel_choices())


def block(c=6, expand=13, stride=1, residual=True, dw_act="Clip", proj_act=None,
          dw_output=False, batch=1, h=7, wd=9, expand_output=False, expand_stride=1):
    """1x1 s -> 1x1 expand + ReLU6 -> depthwise 3x3 [+ act] -> 1x1 project [+ act] [+ s] (the
    residual comes from a chain member, as in MobileNetV2)."""
    nodes = [helper.make_node("Conv", ["x", "ws"], ["s"], kernel_shape=[1, 1])]
    if expand:
        nodes += [helper.make_node("Conv", ["s", "we", "be"], ["e"], kernel_shape=[1, 1],
                                   strides=[expand_stride] * 2),
                  helper.make_node("Clip", ["e", "lo", "hi"], ["e_c"])]
    else:  # MobileNetV2's first block: the depthwise conv reads the value the residual adds
        expand = c
    nodes.append(helper.make_node("Conv", ["e_c" if expand != c else "s", "wd", "bd"], ["d"],
                                  group=expand, kernel_shape=[3, 3], strides=[stride, stride],
                                  pads=[1, 1, 1, 1]))
    d = "d"
    if dw_act == "Clip":
        nodes.append(helper.make_node("Clip", ["d", "lo", "hi"], ["d_a"]))
        d = "d_a"
    elif dw_act == "Relu":
        nodes.append(helper.make_node("Relu", ["d"], ["d_a"]))
        d = "d_a"
    nodes.append(helper.make_node("Conv", [d, "wp", "bp"], ["p"], kernel_shape=[1, 1]))
    y = "p"
    if proj_act:
        nodes.append(helper.make_node(proj_act, ["p"], ["p_a"]))
        y = "p_a"
    if residual:
        nodes.append(helper.make_node("Add", [y, "s"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [y], ["y"]))
    inits = {"ws": w(c, c, 1, 1), "we": w(expand, c, 1, 1), "be": w(expand), "lo": np.float32(0), "hi": np.float32(6),
             "wd": w(expand, 1, 3, 3), "bd": w(expand), "wp": w(c, expand, 1, 1), "bp": w(c)}
    outputs = [("y", FLOAT, None)] + ([(d, FLOAT, None)] if dw_output else [])
    outputs += [("e_c", FLOAT, None)] if expand_output else []
    return graph_model(nodes, [("x", FLOAT, [batch, c, h, wd])], outputs, inits)


def compare(model, feeds, threads=2, level=99, expanded_nodes=None):
    """Level 0 vs `level` (run three times: the later runs work in the memory plan, where y
    may take over the residual's buffer); returns the passes fired and the kernel ops there.
    expanded_nodes: how many NhwcDwProject nodes must run their block's expansion."""
    plain = session(model, 0).run(None, feeds)
    opt = session(model, level, threads)
    for _ in range(3):
        out = opt.run(None, feeds)
        for a, b in zip(out, plain):
            close(a, b)
    if expanded_nodes is not None:
        assert expanded(opt) == expanded_nodes
    return opt._passes_fired(), kernel_ops(opt)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "batch,h,wd,stride,residual",
    [(1, 7, 9, 1, True), (3, 5, 3, 1, True), (1, 1, 1, 1, True), (1, 1, 7, 1, False),
     (2, 9, 11, 2, False), (1, 2, 2, 2, False), (1, 30, 26, 1, True)],
)
def test_block_fuses_and_matches(batch, h, wd, stride, residual, threads):
    model = block(stride=stride, residual=residual, batch=batch, h=h, wd=wd)
    fired, ops = compare(model, {"x": rand((batch, 6, h, wd), rng=RNG)}, threads,
                         expanded_nodes=1)
    assert fired.get("nhwc_dw_project_fusion") == 1
    assert ops.count("NhwcDwProject") == 1 and ops.count("NhwcConv") == 1


@pytest.mark.parametrize("dw_act", ["Clip", "Relu", None])
@pytest.mark.parametrize("c,expand", [(16, 96), (5, 17), (24, 8)])
def test_activations_and_channels(dw_act, c, expand):
    model = block(c=c, expand=expand, dw_act=dw_act, batch=2, h=6, wd=5)
    fired, _ = compare(model, {"x": rand((2, c, 6, 5), rng=RNG)}, expanded_nodes=1)
    assert fired.get("nhwc_dw_project_fusion") == 1


def test_expansion_read_elsewhere_is_not_folded():
    """The expanded value is also a graph output: the depthwise conv and projection still fuse,
    the expansion stays its own NhwcConv."""
    model = block(expand_output=True)
    fired, ops = compare(model, {"x": rand((1, 6, 7, 9), rng=RNG)}, expanded_nodes=0)
    assert fired.get("nhwc_dw_project_fusion") == 1
    assert ops.count("NhwcDwProject") == 1 and ops.count("NhwcConv") == 2


def test_strided_expansion_is_not_folded():
    model = block(expand_stride=2, residual=False, h=9, wd=8)
    fired, ops = compare(model, {"x": rand((1, 6, 9, 8), rng=RNG)}, expanded_nodes=0)
    assert fired.get("nhwc_dw_project_fusion") == 1 and ops.count("NhwcConv") == 2


@pytest.mark.parametrize("batch,h,wd", [(1, 30, 26), (2, 9, 7)])
def test_residual_is_the_depthwise_input(batch, h, wd):
    """Z is X: y must not take over Z's buffer (other bands' depthwise rows still read X)."""
    model = block(c=16, expand=None, batch=batch, h=h, wd=wd)
    fired, ops = compare(model, {"x": rand((batch, 16, h, wd), rng=RNG)}, expanded_nodes=0)
    assert fired.get("nhwc_dw_project_fusion") == 1 and ops.count("NhwcDwProject") == 1


def test_projection_with_activation_is_left_alone():
    model = block(proj_act="Relu", residual=False)
    fired, ops = compare(model, {"x": rand((1, 6, 7, 9), rng=RNG)})
    assert fired.get("nhwc_layout") == 4 and "nhwc_dw_project_fusion" not in fired
    assert "NhwcDwProject" not in ops


def test_depthwise_output_read_elsewhere_is_left_alone():
    model = block(dw_output=True)
    fired, ops = compare(model, {"x": rand((1, 6, 7, 9), rng=RNG)})
    assert "nhwc_dw_project_fusion" not in fired and ops.count("NhwcConv") == 4


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_mobilenetv2_tiny(batch, threads):
    """Every inverted residual block (9 in the tiny model) is one NhwcDwProject; all but the
    first (which has no expansion) run their expansion in it."""
    path = os.path.join(MODELS, "mobilenetv2_tiny.onnx")
    n_dw = sum(n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
               for n in onnx.load(path).graph.node)
    feeds = zoo.sample_inputs("mobilenetv2", batch=batch, scale="tiny", seed=7)
    fired, ops = compare(path, feeds, threads, expanded_nodes=n_dw - 1)
    assert n_dw >= 9 and fired.get("nhwc_dw_project_fusion") == n_dw
    assert ops.count("NhwcDwProject") == n_dw and ops.count("NhwcConv") == 2


@pytest.mark.parametrize("level", [1, 2])
def test_mobilenetv2_tiny_other_levels(level):
    """Below level 99 nothing of this pass runs, and the outputs still match level 0."""
    path = os.path.join(MODELS, "mobilenetv2_tiny.onnx")
    feeds = zoo.sample_inputs("mobilenetv2", batch=3, scale="tiny", seed=9)
    fired, ops = compare(path, feeds, level=level, expanded_nodes=0)
    assert "nhwc_dw_project_fusion" not in fired and "NhwcDwProject" not in ops


@pytest.mark.parametrize("mode", ["banded", "whole"])
@pytest.mark.parametrize("threads", [1, 2])
def test_expanded_block_output_takes_over_another_residual(mode, threads, monkeypatch):
    """The block's residual is a chain value t other than its input s whose other reader (u) runs
    before the block: y takes over t's buffer in the memory plan while the bands still expand s
    (batch 3, bands inside the images and across them)."""
    c, e, batch, h, wd = 8, 48, 3, 23, 13
    nodes = [helper.make_node("Conv", ["x", "ws"], ["s"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["x", "wt"], ["t"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["t", "wu"], ["u"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["s", "we", "be"], ["e"], kernel_shape=[1, 1]),
             helper.make_node("Clip", ["e", "lo", "hi"], ["e_c"]),
             helper.make_node("Conv", ["e_c", "wd", "bd"], ["d"], group=e, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["d", "lo", "hi"], ["d_a"]),
             helper.make_node("Conv", ["d_a", "wp", "bp"], ["p"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["p", "t"], ["q"]),
             helper.make_node("Conv", ["q", "wq"], ["r"], kernel_shape=[1, 1]),
             helper.make_node("Mul", ["r", "u"], ["y"])]
    inits = {"ws": w(c, c, 1, 1), "wt": w(c, c, 1, 1), "wu": w(5, c, 1, 1), "we": w(e, c, 1, 1),
             "be": w(e), "lo": np.float32(0), "hi": np.float32(6), "wd": w(e, 1, 3, 3),
             "bd": w(e), "wp": w(c, e, 1, 1), "bp": w(c), "wq": w(5, c, 1, 1)}
    # r is an output too, so the Mul cannot take over its buffer: the block is the one in-place node
    model = graph_model(nodes, [("x", FLOAT, [batch, c, h, wd])],
                        [("y", FLOAT, None), ("r", FLOAT, None)], inits)
    monkeypatch.setenv("RUNNX_BLOCK_EXPANSION", mode)
    feeds = {"x": rand((batch, c, h, wd), rng=RNG)}
    plain = session(model, 0).run(None, feeds)
    opt = session(model, 99, threads)
    block = [(ins, what) for _, op, _, ins, _, what in opt._sess.kernel_choices()
             if op == "NhwcDwProject"]
    assert len(block) == 1 and "expansion" in block[0][1]
    assert block[0][0][3] and block[0][0][3] != block[0][0][0]  # Z is a value other than X
    for _ in range(3):
        for a, b in zip(opt.run(None, feeds), plain):
            close(a, b)
    assert opt.memory_stats()["inplace_nodes"] == 1


def stem_block(batch, h, wd, c_in=3, c=8, m=5, stride=2, residual_reader=False, k=3):
    """stem k x k/s2 on the NCHW input + ReLU6 -> depthwise 3x3 + ReLU6 -> 1x1 project: the
    stem folds into the block as its expansion when the block alone reads the stem's output."""
    p = k // 2
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["s"], kernel_shape=[k, k],
                              strides=[stride, stride], pads=[p, p, p, p]),
             helper.make_node("Clip", ["s", "lo", "hi"], ["s_c"]),
             helper.make_node("Conv", ["s_c", "wd", "bd"], ["d"], group=c, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["d", "lo", "hi"], ["d_c"]),
             helper.make_node("Conv", ["d_c", "wp", "bp"], ["y"], kernel_shape=[1, 1])]
    outputs = [("y", FLOAT, None)] + ([("s_c", FLOAT, None)] if residual_reader else [])
    inits = {"w0": w(c, c_in, k, k), "b0": w(c), "lo": np.float32(0), "hi": np.float32(6),
             "wd": w(c, 1, 3, 3), "bd": w(c), "wp": w(m, c, 1, 1), "bp": w(m)}
    return graph_model(nodes, [("x", FLOAT, [batch, c_in, h, wd])], outputs, inits)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch,h,wd,stride", [(1, 29, 23, 2), (3, 9, 10, 2), (2, 1, 7, 2)])
def test_stem_folds_into_the_first_block(batch, h, wd, stride, threads):
    model = stem_block(batch, h, wd, stride=stride)
    fired, ops = compare(model, {"x": rand((batch, 3, h, wd), rng=RNG)}, threads,
                         expanded_nodes=1)
    assert fired.get("nhwc_dw_project_fusion") == 1
    assert ops == ["NhwcDwProject", "Transpose"]  # the NCHW input read by the node itself


def test_stem_beyond_the_direct_kernels_taps_is_not_folded():
    """4 channels x 9x9 = 324 taps, over the direct kernel's 256: the stem stays an NhwcConv
    (im2col + sgemm) and the model loads and matches (a fold failed the load)."""
    model = stem_block(1, 19, 17, c_in=4, k=9)
    fired, ops = compare(model, {"x": rand((1, 4, 19, 17), rng=RNG)}, expanded_nodes=0)
    assert fired.get("nhwc_dw_project_fusion") == 1 and ops.count("NhwcConv") == 1


def test_stem_read_elsewhere_is_not_folded():
    model = stem_block(1, 9, 9, residual_reader=True)
    fired, ops = compare(model, {"x": rand((1, 3, 9, 9), rng=RNG)}, expanded_nodes=0)
    assert fired.get("nhwc_dw_project_fusion") == 1 and ops.count("NhwcConv") == 1
