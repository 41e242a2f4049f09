"""Every float32 convolution path (Winograd F(4x4,3x3), pointwise GEMM, im2col + GEMM, the
vectorised depthwise kernels, the generic loops) and the FusedConv epilogue, against a float64
numpy reference on awkward shapes: odd channel counts, spatial sizes 1/5/7/13, tails that are not
a multiple of 8 or of the 4x4 tile, strides, asymmetric pads, dilation, groups, batch 1 and 3,
one and two threads.

RUNNX_CONV_ALGO (read at session creation) forces a path where the automatic choice would pick
another one for small shapes. test_portable_paths reruns this file with RUNNX_DISABLE_AVX2=1.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import runnx
from helpers import make_model, rand, run_reference, threads
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(20261129)


def np_conv(x, w, b=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1):
    """Direct 2-D convolution in float64 (pads = top, left, bottom, right)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, _, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    y = np.zeros((n, m, oh, ow))
    mg = m // group
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dilations[0], j * dilations[1]
            patch = xp[:, :, r0 : r0 + strides[0] * (oh - 1) + 1 : strides[0],
                       c0 : c0 + strides[1] * (ow - 1) + 1 : strides[1]]
            for g in range(group):
                y[:, g * mg : (g + 1) * mg] += np.einsum(
                    "nchw,mc->nmhw", patch[:, g * cg : (g + 1) * cg], w[g * mg : (g + 1) * mg, :, i, j]
                )
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


ACTS = {
    "": lambda v: v,
    "Relu": lambda v: np.maximum(v, 0),
    "Clip": lambda v: np.clip(v, -0.5, 1.5),
    "Sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "LeakyRelu": lambda v: np.where(v >= 0, v, 0.2 * v),
    "HardSwish": lambda v: v * np.clip(v / 6 + 0.5, 0, 1),
}
ACT_PARAMS = {"Clip": [-0.5, 1.5], "LeakyRelu": [0.2]}


def conv_model(x_shape, w, b=None, z=False, op="Conv", activation="", **attrs):
    """Conv or FusedConv with constant W (and B); X (and Z) are graph inputs."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
    inits = [numpy_helper.from_array(w, "w")]
    names = ["x", "w"]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "b"))
    names.append("b" if b is not None else "")
    if z:
        inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
        names.append("z")
    while names and names[-1] == "":
        names.pop()
    domain = "com.runnx" if op == "FusedConv" else ""
    if op == "FusedConv":
        if activation:
            attrs["activation"] = activation
        if activation in ACT_PARAMS:
            attrs["activation_params"] = ACT_PARAMS[activation]
    node = helper.make_node(op, names, ["y"], domain=domain, **attrs)
    graph = helper.make_graph(
        [node], "conv", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.runnx", 1)] if domain else [])
    m = helper.make_model(graph, opset_imports=opsets)
    m.ir_version = 8
    return m


def run(model, feeds, algo, monkeypatch, n_threads):
    # Static shape inference (FusedConv's included) must agree with what the kernel produced.
    monkeypatch.setenv("RUNNX_CHECK_INFERENCE", "1")
    if algo:
        monkeypatch.setenv("RUNNX_CONV_ALGO", algo)
    else:
        monkeypatch.delenv("RUNNX_CONV_ALGO", raising=False)
    sess = runnx.InferenceSession(model.SerializeToString(), threads(n_threads))
    return sess.run(None, feeds)[0]


def check(y, ref, k, winograd=False):
    """Tolerance scaled by the output's magnitude and the reduction length k. Winograd F(4x4,3x3)
    multiplies inputs and weights by transform entries up to 4-8 (and 1/24..1/4), so its float32
    rounding error is roughly 10-50x direct convolution's: it gets a looser bound."""
    scale = max(1.0, float(np.abs(ref).max()))
    atol = (2e-4 if winograd else 2e-5) * scale * max(1.0, np.sqrt(k) / 4)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-3 if winograd else 1e-4, atol=atol)


def run_case(case, algo, n_threads, monkeypatch):
    """One (N, C, M, H, W, kernel, attrs) case with bias through `algo` ("" = the automatic
    choice), against the float64 reference."""
    n, c, m, h, w_, k, attrs = case
    group = attrs.get("group", 1)
    x = rand((n, c, h, w_), rng=RNG)
    w = rand((m, c // group, *k), rng=RNG, low=-0.5, high=0.5)
    b = rand((m,), rng=RNG)
    model = conv_model(x.shape, w, b, kernel_shape=list(k), **attrs)
    y = run(model, {"x": x}, algo, monkeypatch, n_threads)
    ref = np_conv(x, w, b, attrs.get("strides", (1, 1)), attrs.get("pads", (0, 0, 0, 0)),
                  attrs.get("dilations", (1, 1)), group)
    check(y, ref, (c // group) * k[0] * k[1])


# ---- Winograd: 3x3, stride 1 ------------------------------------------------------------------

WINO_CASES = [
    # (N, C, M, H, W, pads)
    (1, 3, 5, 5, 5, (1, 1, 1, 1)),
    (3, 17, 9, 13, 7, (1, 1, 1, 1)),
    (1, 8, 16, 7, 13, (0, 2, 1, 0)),  # asymmetric pads
    (2, 5, 3, 3, 3, (0, 0, 0, 0)),  # one output pixel
    (1, 1, 1, 1, 1, (1, 1, 1, 1)),  # 1x1 image
    (1, 16, 24, 29, 37, (1, 1, 1, 1)),  # more than 8 tiles per row: a vector of tiles + a tail
    (1, 33, 7, 4, 20, (2, 2, 2, 2)),
    # rows of 4 tiles go two tile rows per vector of 8: an odd number of tile rows, batch 2
    (2, 9, 11, 11, 14, (1, 1, 1, 1)),
    (1, 4, 8, 16, 16, (1, 1, 1, 1)),
    # C past one K-block of the packed U (256), M rows of two 12-row pairs and a tail of 6
    (1, 300, 30, 18, 18, (1, 1, 1, 1)),
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", WINO_CASES)
def test_winograd(case, n_threads, monkeypatch):
    n, c, m, h, w_, pads = case
    x = rand((n, c, h, w_), rng=RNG)
    w = rand((m, c, 3, 3), rng=RNG, low=-0.5, high=0.5)
    b = rand((m,), rng=RNG)
    model = conv_model(x.shape, w, b, kernel_shape=[3, 3], pads=list(pads))
    y = run(model, {"x": x}, "winograd", monkeypatch, n_threads)
    check(y, np_conv(x, w, b, pads=pads), c * 9, winograd=True)


def test_winograd_auto_choice_matches_reference(monkeypatch):
    """A shape big enough that the automatic choice is Winograd (>= 16 tiles)."""
    x = rand((2, 24, 20, 18), rng=RNG)
    w = rand((32, 24, 3, 3), rng=RNG, low=-0.5, high=0.5)
    model = conv_model(x.shape, w, None, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = run(model, {"x": x}, "", monkeypatch, 2)
    check(y, np_conv(x, w, pads=(1, 1, 1, 1)), 24 * 9, winograd=True)


# ---- GEMM paths: pointwise and im2col -----------------------------------------------------------

GEMM_CASES = [
    # (N, C, M, H, W, k, attrs)
    (1, 7, 9, 13, 13, (1, 1), {}),  # pointwise
    (3, 33, 300, 5, 7, (1, 1), {}),  # pointwise, M over one row tile
    (1, 5, 11, 7, 5, (1, 1), {"strides": [2, 2]}),  # 1x1 stride 2 (im2col)
    (1, 3, 8, 13, 13, (7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),  # stem-like
    (3, 9, 13, 13, 5, (3, 3), {"strides": [2, 1], "pads": [1, 0, 2, 1]}),
    (1, 4, 6, 13, 13, (3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    (2, 6, 9, 7, 7, (3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),  # grouped
    (1, 8, 600, 5, 5, (3, 3), {"pads": [1, 1, 1, 1]}),  # many output channels
    (1, 3, 5, 1, 1, (1, 1), {}),  # 1x1 image
    (2, 40, 29, 7, 7, (1, 1), {}),  # 7x7: 49 columns, three 16-wide panels and one
    (3, 16, 24, 14, 14, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # to 7x7
    # 1x1, <= 64 output pixels and >= 16 channels: the transposed GEMM (pixels as rows)
    (5, 5400, 16, 7, 7, (1, 1), {}),  # images in two GEMM groups
    (1, 6, 17, 11, 9, (1, 1), {"strides": [2, 2], "pads": [1, 0, 0, 1]}),  # subsampled, transposed
    (2, 11, 33, 8, 8, (1, 1), {}),  # exactly 64 pixels
    (1, 9, 16, 9, 9, (1, 1), {}),  # 81 pixels: the straight GEMM
    # im2col rows under stride 2 (16 floats in, 8 out by shuffles) and 3, long and odd widths
    (1, 6, 10, 9, 41, (3, 3), {"strides": [2, 2], "pads": [1, 1, 0, 0]}),
    (2, 5, 12, 12, 38, (1, 1), {"strides": [2, 2]}),
    (1, 4, 9, 10, 40, (3, 3), {"strides": [3, 3], "pads": [0, 2, 1, 1]}),
    # k > 1 at <= 64 output pixels: the transposed GEMM on rows gathered by im2row
    (3, 16, 24, 13, 13, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # odd size to 7x7
    (1, 13, 17, 8, 8, (3, 3), {"pads": [1, 0, 2, 1]}),  # asymmetric pads, 8x7
    (1, 5, 16, 7, 7, (3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    (2, 70, 130, 3, 5, (3, 2), {"pads": [1, 0, 1, 0]}),  # channels over one 64-channel step
    (1, 7, 20, 1, 1, (3, 3), {"pads": [1, 1, 1, 1]}),  # one pixel
    # im2row from zero-padded planes, 3-tap kernel rows copied 4 floats at a time
    (1, 5, 16, 5, 5, (3, 3), {"pads": [1, 1, 1, 1]}),  # the last channel's last row copied exactly
    (2, 6, 16, 6, 7, (1, 3), {"pads": [0, 1, 0, 1]}),  # one kernel row
    (3, 2400, 16, 7, 7, (3, 3), {"pads": [1, 1, 1, 1]}),  # one image per GEMM group
    # batch >= 2 per thread (2 threads): tasks of whole images, each on one thread
    (9, 16, 24, 7, 7, (1, 1), {}),  # tasks of 2 images, the last of 1
    (8, 6, 20, 7, 6, (3, 3), {"pads": [1, 1, 1, 1]}),  # 4 tasks of 2 images
    (5, 40, 24, 9, 9, (1, 1), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # 5 tasks of 1, subsampled
    (1, 20, 17, 9, 9, (1, 1), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # 1x1/s2, zero border
    (2, 18, 16, 6, 6, (1, 1), {"pads": [1, 0, 0, 1]}),  # 1x1 padded at stride 1
    (1, 9, 16, 9, 7, (3, 3), {"dilations": [2, 1], "pads": [2, 1, 2, 1]}),  # 4-float copies, dilated rows
    # im2row in pixel blocks (16384 / K pixels each) and a short last one, stride 2 with
    # dilation and uneven pads, a 1-D-like row
    (1, 150, 16, 6, 7, (3, 3), {"pads": [1, 1, 1, 1]}),  # 42 pixels: blocks of 12, 12, 12, 6
    (2, 61, 19, 11, 9, (3, 2), {"strides": [2, 2], "dilations": [2, 1], "pads": [2, 0, 1, 1]}),
    (1, 17, 16, 1, 40, (1, 3), {"strides": [1, 2], "pads": [0, 1, 0, 0]}),
    # stride-2 rows of exactly 9, 16 and 17 outputs (the overlapping last vector of copy_strided)
    (1, 3, 5, 5, 18, (1, 1), {"strides": [2, 2]}),
    (1, 3, 5, 4, 33, (1, 1), {"strides": [2, 2]}),
    (1, 4, 6, 5, 19, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    (1, 4, 6, 5, 32, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("algo", ["", "im2col"])
@pytest.mark.parametrize("case", GEMM_CASES)
def test_gemm_paths(case, algo, n_threads, monkeypatch):
    run_case(case, algo, n_threads, monkeypatch)


# ---- the split GEMM path: each thread on its own output columns, L2-sized slices ----------------
# An image is split over the threads when each gets >= 256 output columns (batch 1-3 at 2
# threads here); batch >= 2x threads runs whole images per thread, 1 thread slices serially.

SPLIT_CASES = [
    # (N, C, M, H, W, k, attrs)
    (1, 40, 21, 23, 25, (1, 1), {}),  # 575 columns: not a multiple of 16, odd M
    (1, 300, 13, 24, 24, (1, 1), {}),  # K over one GEMM K-block
    (3, 17, 70, 24, 23, (1, 1), {}),  # 3 images for 2 threads: split, each image cut in parts
    (5, 9, 33, 23, 23, (1, 1), {}),  # whole images per thread
    (1, 24, 40, 64, 64, (1, 1), {}),  # 4096 columns: several slices per part
    (1, 130, 20, 47, 49, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # 24x25 out, K = 1170
    (1, 8, 12, 48, 48, (1, 1), {"strides": [2, 2]}),  # 1x1/s2 through im2col, 576 columns
    (2, 12, 10, 50, 46, (3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),  # groups: 4 group images
    (1, 5, 7, 1, 1200, (1, 3), {"strides": [1, 2], "pads": [0, 1, 0, 1]}),  # one output row
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", SPLIT_CASES)
def test_gemm_split(case, n_threads, monkeypatch):
    run_case(case, "im2col", n_threads, monkeypatch)


@pytest.mark.parametrize("k_ch", [7, 300])
@pytest.mark.parametrize("act", ["Relu", "HardSwish"])
def test_gemm_split_fused_in_place(k_ch, act, monkeypatch):
    """FusedConv on the split path with Z's buffer taken over by the output (K within one GEMM
    K-block: read in place; over it: each slice's residual copied first), at batch 1 and 2."""
    monkeypatch.delenv("RUNNX_CONV_ALGO", raising=False)
    for n in (1, 2):
        x = rand((n, k_ch, 26, 27), rng=RNG)
        r = rand((n, 19, 26, 27), rng=RNG)
        w = rand((19, k_ch, 1, 1), rng=RNG, low=-0.2, high=0.2)
        w_in = rand((19, 19, 1, 1), rng=RNG, low=-0.5, high=0.5)
        w_out = rand((5, 19, 1, 1), rng=RNG, low=-0.5, high=0.5)
        b = rand((19,), rng=RNG)
        nodes = [
            helper.make_node("Conv", ["r", "w_in"], ["z"]),
            helper.make_node("FusedConv", ["x", "w", "b", "z"], ["f"], domain="com.runnx",
                             activation=act, kernel_shape=[1, 1]),
            helper.make_node("Conv", ["f", "w_out"], ["y"]),
        ]
        inits = [numpy_helper.from_array(a, nm) for a, nm in
                 [(w, "w"), (b, "b"), (w_in, "w_in"), (w_out, "w_out")]]
        graph = helper.make_graph(
            nodes, "split_inplace",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
             helper.make_tensor_value_info("r", TensorProto.FLOAT, r.shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("com.runnx", 1)])
        model.ir_version = 8
        sess = runnx.InferenceSession(model.SerializeToString(), threads(2))
        ref = np_conv(ACTS[act](np_conv(x, w, b) + np_conv(r, w_in)), w_out)
        for _ in range(2):
            check(sess.run(None, {"x": x, "r": r})[0], ref, k_ch + 19 * 2)
        assert sess.memory_stats()["inplace_nodes"] == 1


# im2col through column-stride phases (column stride >= 2, column dilation 1, >= 2 kernel columns)
PHASED_CASES = [
    # (N, C, M, H, W, k, attrs)
    (1, 3, 5, 11, 17, (2, 5), {"strides": [1, 2], "dilations": [2, 1], "pads": [1, 2, 0, 1]}),
    (2, 4, 6, 9, 20, (3, 4), {"strides": [2, 3], "pads": [0, 2, 2, 1]}),
    (1, 2, 3, 7, 7, (3, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),  # taps past both ends
    (1, 5, 4, 6, 5, (3, 3), {"strides": [2, 4], "pads": [1, 1, 1, 2]}),  # stride > kernel width
    (1, 3, 4, 1, 2, (1, 2), {"strides": [1, 2], "pads": [0, 1, 0, 1]}),  # 1x2 image
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", PHASED_CASES)
def test_im2col_stride_phases(case, n_threads, monkeypatch):
    """Forced through the GEMM path; its im2col takes the phases for these geometries."""
    assert (case[5][1] > 1 and case[6]["strides"][1] >= 2
            and case[6].get("dilations", (1, 1))[1] == 1)
    run_case(case, "im2col", n_threads, monkeypatch)


def test_im2col_stride_phases_1d(monkeypatch):
    x = rand((2, 3, 41), rng=RNG)
    w = rand((7, 3, 4), rng=RNG)
    model = conv_model(x.shape, w, None, kernel_shape=[4], strides=[3], pads=[2, 1])
    y = run(model, {"x": x}, "", monkeypatch, 2)
    ref = np_conv(x[:, :, None, :], w[:, :, None, :], None, (1, 3), (0, 2, 0, 1))
    check(y, ref[:, :, 0, :], 12)


@pytest.mark.parametrize("w_shape,attrs,expect", [
    ((8, 9, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, "im2col (column-stride phases)"),
    ((8, 9, 1, 1), {"strides": [2, 2]}, "im2col + GEMM"),
    ((8, 9, 1, 1), {}, "1x1 GEMM on the NCHW input"),
    ((20, 9, 3, 3), {"pads": [1, 1, 1, 1]}, "Winograd"),
])
def test_describe_names_the_path(w_shape, attrs, expect, monkeypatch):
    monkeypatch.delenv("RUNNX_CONV_ALGO", raising=False)
    x_shape = (1, 9, 30, 30)
    model = conv_model(x_shape, rand(w_shape, rng=RNG), None, kernel_shape=list(w_shape[2:]), **attrs)
    (choice,) = runnx.InferenceSession(model.SerializeToString())._sess.kernel_choices()
    assert expect in choice[-1]
    if expect != "Winograd":
        assert "W packed at load" in choice[-1]
        assert ("stride phases" in choice[-1]) == ("phases" in expect)


# ---- direct: group 1 on <= 4 input channels (stems), 4 channels x 24 pixels per step ------------

DIRECT_CASES = [
    # (N, C, M, H, W, k, attrs)
    (1, 3, 64, 29, 37, (7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),  # ResNet's stem, small
    (3, 1, 9, 13, 11, (3, 3), {"pads": [1, 1, 1, 1]}),  # batch 3, M not a multiple of 4
    (1, 4, 13, 9, 50, (5, 3), {"strides": [2, 3], "pads": [0, 2, 1, 0]}),  # asymmetric pads
    (2, 2, 8, 12, 12, (3, 3), {"dilations": [2, 3], "pads": [2, 3, 1, 0]}),
    (1, 3, 10, 1, 1, (3, 3), {"pads": [1, 1, 1, 1]}),  # one pixel: most taps in the padding
    (1, 3, 8, 1, 29, (1, 5), {"strides": [1, 2], "pads": [0, 2, 0, 2]}),  # one row
    (1, 2, 11, 19, 1, (4, 1), {"strides": [3, 1]}),  # one column
    (1, 3, 16, 7, 58, (7, 7), {"strides": [2, 2], "pads": [0, 0, 0, 0]}),  # no pads, 26 outputs
    (1, 3, 12, 9, 150, (7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),  # 75 outputs: three 24-pixel steps, then 3 pixels
    # Under AVX-512, 16-pixel vectors in blocks of up to 4: 112 columns (ResNet's stem) as 4 + 3,
    # 80 as 2 + 3, 33 as 3 with one pixel in the last, 17 as 2.
    (1, 3, 8, 5, 224, (7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    (1, 4, 6, 4, 80, (3, 3), {"pads": [1, 1, 1, 1]}),
    (2, 3, 5, 6, 33, (3, 3), {"pads": [1, 1, 1, 1]}),
    (1, 1, 7, 3, 17, (1, 1), {}),
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", DIRECT_CASES)
def test_direct(case, n_threads, monkeypatch):
    run_case(case, "", n_threads, monkeypatch)


def test_transposed_1d(monkeypatch):
    x = rand((2, 6, 20), rng=RNG)
    w = rand((16, 6, 3), rng=RNG)
    model = conv_model(x.shape, w, None, kernel_shape=[3], pads=[1, 0])
    y = run(model, {"x": x}, "", monkeypatch, 2)
    ref = np_conv(x[:, :, None, :], w[:, :, None, :], None, (1, 1), (0, 1, 0, 0))
    check(y, ref[:, :, 0, :], 18)


@pytest.mark.parametrize("shape,m,k,stride", [((2, 3, 40), 12, 5, 2), ((1, 1, 3001), 30, 9, 3)])
def test_direct_1d(shape, m, k, stride, monkeypatch):
    """1-D: one output row, so the channels are split over the threads too (30 = 7.5 blocks of 4)."""
    x = rand(shape, rng=RNG)
    w = rand((m, shape[1], k), rng=RNG)
    b = rand((m,), rng=RNG)
    model = conv_model(x.shape, w, b, kernel_shape=[k], strides=[stride], pads=[2, 1])
    y = run(model, {"x": x}, "", monkeypatch, 2)
    ref = np_conv(x[:, :, None, :], w[:, :, None, :], b, (1, stride), (0, 2, 0, 1))
    check(y, ref[:, :, 0, :], shape[1] * k)


# ---- depthwise ---------------------------------------------------------------------------------

DW_CASES = [
    # (N, C, mult, H, W, k, attrs)
    (1, 3, 1, 13, 13, (3, 3), {"pads": [1, 1, 1, 1]}),
    (3, 5, 1, 7, 7, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    (1, 9, 1, 13, 5, (3, 3), {"strides": [2, 2], "pads": [0, 1, 1, 0]}),
    (1, 4, 2, 5, 5, (3, 3), {"pads": [1, 1, 1, 1]}),  # channel multiplier 2
    (2, 3, 1, 13, 11, (5, 5), {"pads": [2, 2, 2, 2]}),
    (1, 6, 1, 13, 13, (3, 3), {"dilations": [2, 3], "pads": [2, 3, 1, 0]}),
    (1, 7, 1, 13, 17, (3, 5), {"strides": [3, 2], "pads": [1, 2, 1, 2]}),
    (1, 2, 1, 1, 1, (3, 3), {"pads": [1, 1, 1, 1]}),  # 1x1 image
    (1, 8, 1, 29, 31, (3, 3), {"pads": [1, 1, 1, 1]}),
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", DW_CASES)
def test_depthwise(case, n_threads, monkeypatch):
    n, c, mult, h, w_, k, attrs = case
    x = rand((n, c, h, w_), rng=RNG)
    w = rand((c * mult, 1, *k), rng=RNG)
    b = rand((c * mult,), rng=RNG)
    model = conv_model(x.shape, w, b, kernel_shape=list(k), group=c, **attrs)
    y = run(model, {"x": x}, "", monkeypatch, n_threads)
    ref = np_conv(x, w, b, attrs.get("strides", (1, 1)), attrs.get("pads", (0, 0, 0, 0)),
                  attrs.get("dilations", (1, 1)), c)
    check(y, ref, k[0] * k[1])


def test_depthwise_1d(monkeypatch):
    x = rand((2, 5, 13), rng=RNG)
    w = rand((5, 1, 3), rng=RNG)
    model = conv_model(x.shape, w, None, kernel_shape=[3], group=5, strides=[2], pads=[1, 0])
    y = run(model, {"x": x}, "", monkeypatch, 2)
    ref = np_conv(x[:, :, None, :], w[:, :, None, :], None, (1, 2), (0, 1, 0, 0), (1, 1), 5)
    check(y, ref[:, :, 0, :], 3)


DW3_CASES = [  # the 3x3 row kernel: chunks of 8 outputs crossing row and plane ends
    # (N, C, H, W, stride, pads)
    (1, 3, 7, 7, 1, (1, 1, 1, 1)),
    (3, 5, 8, 8, 1, (1, 1, 1, 1)),
    (1, 4, 9, 17, 1, (1, 1, 1, 1)),
    (1, 2, 13, 1, 1, (1, 1, 1, 1)),  # one column: each chunk spans eight rows
    (2, 3, 1, 15, 1, (1, 1, 1, 1)),  # one row
    (1, 3, 16, 16, 1, (0, 0, 0, 0)),
    (1, 5, 11, 13, 1, (2, 0, 1, 2)),  # asymmetric pads
    (1, 3, 7, 7, 2, (1, 1, 1, 1)),
    (3, 4, 14, 14, 2, (1, 1, 1, 1)),
    (1, 6, 17, 33, 2, (1, 1, 1, 1)),
    (1, 3, 16, 15, 2, (0, 0, 1, 1)),
    (1, 2, 3, 3, 2, (1, 1, 1, 1)),
    (1, 2, 1, 1, 2, (1, 1, 1, 1)),
    (1, 3, 12, 40, 2, (2, 1, 0, 2)),
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", DW3_CASES)
def test_depthwise_3x3(case, n_threads, monkeypatch):
    n, c, h, w_, s, pads = case
    x = rand((n, c, h, w_), rng=RNG)
    w = rand((c, 1, 3, 3), rng=RNG)
    b = rand((c,), rng=RNG)
    model = conv_model(x.shape, w, b, kernel_shape=[3, 3], group=c, strides=[s, s],
                       pads=list(pads))
    y = run(model, {"x": x}, "", monkeypatch, n_threads)
    check(y, np_conv(x, w, b, (s, s), pads, (1, 1), c), 9)


# The 3x3 row kernel (stride 1 or 2, dilation 1): widths around the 8-wide chunk, single columns
# and rows (a chunk that spans several rows), odd/even sizes under stride 2, asymmetric pads.
@pytest.mark.parametrize("act", ["Relu", "Clip", "HardSwish"])
@pytest.mark.parametrize("case", [(1, 5, 7, 7, 1), (3, 4, 9, 1, 1), (1, 3, 13, 11, 2),
                                  (2, 3, 5, 2, 2)])
def test_depthwise_3x3_fused(case, act, monkeypatch):
    n, c, h, w_, s = case
    x = rand((n, c, h, w_), rng=RNG)
    w = rand((c, 1, 3, 3), rng=RNG)
    b = rand((c,), rng=RNG)
    conv = np_conv(x, w, b, (s, s), (1, 1, 1, 1), (1, 1), c)
    z = rand(conv.shape, rng=RNG)
    model = conv_model(x.shape, w, b, z=True, op="FusedConv", activation=act,
                       kernel_shape=[3, 3], group=c, strides=[s, s], pads=[1, 1, 1, 1])
    y = run(model, {"x": x, "z": z}, "", monkeypatch, 2)
    check(y, ACTS[act](conv + z), 9)


# ---- FusedConv: bias, activation, residual on every path ---------------------------------------

FUSED_SHAPES = {
    # path: (x shape, w shape, attrs, forced algo)
    "pointwise": ((2, 7, 5, 13), (9, 7, 1, 1), {}, ""),
    "transposed": ((2, 6, 7, 7), (18, 6, 1, 1), {}, ""),
    "im2col": ((1, 5, 9, 7), (6, 5, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, ""),
    "transposed_im2col": ((1, 5, 13, 13), (20, 5, 1, 1), {"strides": [2, 2]}, ""),
    "transposed_3x3": ((2, 5, 7, 6), (20, 5, 3, 3), {"pads": [1, 1, 1, 1]}, ""),
    "transposed_per_thread": ((9, 6, 7, 7), (18, 6, 3, 3), {"pads": [1, 1, 1, 1]}, ""),
    "winograd": ((3, 6, 13, 7), (5, 6, 3, 3), {"pads": [1, 1, 1, 1]}, "winograd"),
    "winograd_4_tile_rows": ((1, 6, 9, 14), (5, 6, 3, 3), {"pads": [1, 1, 1, 1]}, "winograd"),
    "depthwise": ((1, 6, 13, 13), (6, 1, 3, 3), {"group": 6, "strides": [2, 2], "pads": [1, 1, 1, 1]}, ""),
    "generic": ((1, 4, 7, 5), (3, 4, 3, 3), {"pads": [1, 0, 1, 0]}, "generic"),
    "direct": ((2, 3, 13, 19), (10, 3, 5, 5), {"strides": [2, 2], "pads": [2, 1, 2, 2]}, ""),
}


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("path", list(FUSED_SHAPES))
def test_fused_conv(path, act, residual, monkeypatch):
    x_shape, w_shape, attrs, algo = FUSED_SHAPES[path]
    x = rand(x_shape, rng=RNG)
    w = rand(w_shape, rng=RNG, low=-0.5, high=0.5)
    b = rand((w_shape[0],), rng=RNG)
    group = attrs.get("group", 1)
    conv = np_conv(x, w, b, attrs.get("strides", (1, 1)), attrs.get("pads", (0, 0, 0, 0)),
                   (1, 1), group)
    feeds = {"x": x}
    if residual:
        feeds["z"] = rand(conv.shape, rng=RNG)
        conv = conv + feeds["z"]
    model = conv_model(x_shape, w, b, z=residual, op="FusedConv", activation=act,
                       kernel_shape=list(w_shape[2:]), **attrs)
    y = run(model, feeds, algo, monkeypatch, 2)
    check(y, ACTS[act](conv), int(np.prod(w_shape[1:])), winograd=path == "winograd")


INPLACE_CASES = {
    # path: (x shape, w shape, attrs); Z and the output are intermediate values of one size
    "pointwise": ((2, 7, 9, 10), (9, 7, 1, 1), {}),
    "pointwise_k_blocks": ((1, 300, 9, 9), (20, 300, 1, 1), {}),  # K over one GEMM K-block
    "im2col": ((1, 6, 19, 17), (10, 6, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "transposed": ((2, 40, 7, 7), (70, 40, 1, 1), {}),
    "transposed_3x3": ((1, 9, 6, 7), (18, 9, 3, 3), {"pads": [1, 1, 1, 1]}),
    "transposed_per_thread": ((5, 40, 7, 7), (70, 40, 1, 1), {}),  # tasks of 1 image
    "transposed_per_thread_pairs": ((9, 16, 7, 7), (24, 16, 1, 1), {}),  # tasks of 2, the last of 1
    "direct": ((2, 3, 15, 16), (10, 3, 5, 5), {"strides": [2, 2], "pads": [2, 2, 2, 2]}),
}


@pytest.mark.parametrize("path", list(INPLACE_CASES))
def test_fused_conv_output_takes_over_z(path, monkeypatch):
    """z = Conv(r), y = Conv(FusedConv(x, w, b, z)): the FusedConv's output may share Z's buffer
    (inplace_input), and must give the same result as with separate buffers."""
    monkeypatch.delenv("RUNNX_CONV_ALGO", raising=False)
    x_shape, w_shape, attrs = INPLACE_CASES[path]
    x = rand(x_shape, rng=RNG)
    w = rand(w_shape, rng=RNG, low=-0.5, high=0.5)
    b = rand((w_shape[0],), rng=RNG)
    conv = np_conv(x, w, b, attrs.get("strides", (1, 1)), attrs.get("pads", (0, 0, 0, 0)))
    m = w_shape[0]
    r = rand(conv.shape, rng=RNG)
    w_in = rand((m, m, 1, 1), rng=RNG, low=-0.5, high=0.5)
    w_out = rand((5, m, 1, 1), rng=RNG, low=-0.5, high=0.5)
    nodes = [
        helper.make_node("Conv", ["r", "w_in"], ["z"]),
        helper.make_node("FusedConv", ["x", "w", "b", "z"], ["f"], domain="com.runnx",
                         activation="Relu", kernel_shape=list(w_shape[2:]), **attrs),
        helper.make_node("Conv", ["f", "w_out"], ["y"]),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in [(w, "w"), (b, "b"), (w_in, "w_in"), (w_out, "w_out")]]
    graph = helper.make_graph(
        nodes, "inplace",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, r.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.runnx", 1)])
    model.ir_version = 8
    sess = runnx.InferenceSession(model.SerializeToString(), threads(2))
    z = np_conv(r, w_in)
    ref = np_conv(np.maximum(conv + z, 0), w_out)
    for _ in range(2):  # the second run is on the plan
        y = sess.run(None, {"x": x, "r": r})[0]
        check(y, ref, int(np.prod(w_shape[1:])) + m * 2)
    assert sess.memory_stats()["inplace_nodes"] == 1


def test_fused_conv_without_bias(monkeypatch):
    x = rand((1, 3, 6, 6), rng=RNG)
    w = rand((4, 3, 1, 1), rng=RNG)
    z = rand((1, 4, 6, 6), rng=RNG)
    model = conv_model(x.shape, w, None, z=True, op="FusedConv", activation="Relu")
    y = run(model, {"x": x, "z": z}, "", monkeypatch, 1)
    check(y, np.maximum(np_conv(x, w) + z, 0), 3)


def test_fused_conv_errors(monkeypatch):
    x = rand((1, 3, 6, 6), rng=RNG)
    w = rand((4, 3, 1, 1), rng=RNG)
    with pytest.raises(runnx.InvalidModel, match="activation 'Tanh'"):
        run(conv_model(x.shape, w, op="FusedConv", activation="Tanh"), {"x": x}, "", monkeypatch, 1)
    with pytest.raises(runnx.InvalidModel, match="activation_params"):
        bad = conv_model(x.shape, w, op="FusedConv", activation="Clip")
        bad.graph.node[0].attribute[-1].floats[:] = [1.0]
        run(bad, {"x": x}, "", monkeypatch, 1)
    model = conv_model(x.shape, w, z=True, op="FusedConv", activation="Relu")
    with pytest.raises(runnx.InvalidArgument, match="cannot broadcast"):
        run(model, {"x": x, "z": rand((1, 4, 6, 5), rng=RNG)}, "", monkeypatch, 1)
    with pytest.raises(runnx.InvalidArgument, match="float"):
        run(model, {"x": x, "z": rand((1, 4, 6, 6), np.float64, rng=RNG)}, "", monkeypatch, 1)


@pytest.mark.parametrize("z_shape", [(4, 1, 1), (1, 1, 6), (3, 1, 1, 1), (2, 3, 4, 6, 6)])
def test_fused_conv_broadcast_residual(z_shape, monkeypatch):
    """An Add that broadcast (Z smaller, or larger than the conv output) still gives Add's result."""
    x = rand((1, 3, 6, 6), rng=RNG)
    w = rand((4, 3, 3, 3), rng=RNG)
    b = rand((4,), rng=RNG)
    z = rand(z_shape, rng=RNG)
    model = conv_model(x.shape, w, b, z=True, op="FusedConv", activation="LeakyRelu",
                       pads=[1, 1, 1, 1])
    y = run(model, {"x": x, "z": z}, "", monkeypatch, 2)
    check(y, ACTS["LeakyRelu"](np_conv(x, w, b, pads=(1, 1, 1, 1)) + z), 27)


# ---- the portable copies -----------------------------------------------------------------------


def rerun_portable(test_file):
    """A whole test file again with the AVX2 routines disabled (cpuid is read once per process)."""
    env = dict(os.environ, RUNNX_DISABLE_AVX2="1")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", test_file, "-q", "-x", "-p", "no:cacheprovider"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


@pytest.mark.skipif(os.environ.get("RUNNX_DISABLE_AVX2") == "1", reason="already portable")
def test_portable_paths():
    rerun_portable(__file__)


@pytest.mark.parametrize("c_in,group,k,hw", [(3, 1, 3, 12), (8, 8, 3, 12), (32, 1, 3, 5)])
def test_conv_3d_with_one_depth_slice_and_depth_pads(c_in, group, k, hw):
    # Depth 1 with a 1-deep kernel but depth pads: every output slice but the middle one is bias
    # only, so the 2-D paths (direct stem, depthwise, transposed GEMM) must not take it.
    rng = np.random.default_rng(c_in)
    x = rng.standard_normal((1, c_in, 1, hw, hw)).astype(np.float32)
    w = rng.standard_normal((16 if group == 1 else c_in, c_in // group, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(w.shape[0]).astype(np.float32)
    model = make_model("Conv", {"x": x}, initializers={"w": w, "b": b},
                       attrs={"group": group, "pads": [1, 1, 1, 1, 1, 1]})
    (y,) = runnx.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    (ref,) = run_reference(model, {"x": x})
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
