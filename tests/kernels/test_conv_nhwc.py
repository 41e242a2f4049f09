"""NhwcConv (com.runnx, channels-last activations; made by the nhwc_layout pass) against the float64
numpy convolution of test_conv_algos on awkward shapes: channel counts 1, 3, 5, 9, 17 (tails of the
8-channel vectors), images 1x1, 2x2, 7x7 and odd rectangles, strides 1 and 2, asymmetric pads,
dilation, batch 1 and 3, one and two threads; group 1 (1x1 GEMM, channels-last im2col, the NCHW
input read, the direct kernel for few input channels, Winograd F(4x4, 3x3) on whole vectors of
channels) and depthwise; bias, residual and every activation. test_portable_paths reruns the
file with RUNNX_DISABLE_AVX2=1.
"""

import os

import numpy as np
import pytest
import runnx
from helpers import rand, threads
from kernels.test_conv_algos import ACT_PARAMS, ACTS, check, np_conv, rerun_portable
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(20261130)


def nhwc_model(x_shape, w, b=None, z=False, activation="", nchw_input=False, **attrs):
    """One NhwcConv with constant W (and B); X (and Z) are graph inputs."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
    inits = [numpy_helper.from_array(w, "w")]
    names = ["x", "w", ""]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "b"))
        names[2] = "b"
    if z:
        inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
        names.append("z")
    if nchw_input:
        attrs["nchw_input"] = 1
    return one_node_model("NhwcConv", names, inputs, inits, activation, **attrs)


def one_node_model(op, names, inputs, inits, activation="", **attrs):
    """A model of one com.runnx node `op` reading `names` ("" = absent) with output y."""
    names = list(names)
    while names[-1] == "":
        names.pop()
    if activation:
        attrs["activation"] = activation
    if activation in ACT_PARAMS:
        attrs["activation_params"] = ACT_PARAMS[activation]
    node = helper.make_node(op, names, ["y"], domain="com.runnx", **attrs)
    graph = helper.make_graph(
        [node], "nhwc", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits
    )
    m = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.runnx", 1)]
    )
    m.ir_version = 8
    return m


def run(model, feeds, monkeypatch, n_threads):
    # Static shape inference must agree with what the kernel produced.
    monkeypatch.setenv("RUNNX_CHECK_INFERENCE", "1")
    sess = runnx.InferenceSession(model.SerializeToString(), threads(n_threads))
    return sess.run(None, feeds)[0]


def to_nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def conv_case(n, c, m, h, w, k, stride, pads, dilation, depthwise, nchw_input=False,
              act="", residual=False, bias=True, n_threads=2, monkeypatch=None):
    x = rand((n, c, h, w), rng=RNG)
    group = c if depthwise else 1
    wt = rand((m, c // group, k[0], k[1]), rng=RNG, low=-0.5, high=0.5)
    b = rand((m,), rng=RNG) if bias else None
    ref = np_conv(x, wt, b, stride, pads, dilation, group)
    feeds = {"x": x if nchw_input else to_nhwc(x)}
    if residual:
        z = rand(ref.shape, rng=RNG)
        feeds["z"] = to_nhwc(z)
        ref = ref + z
    model = nhwc_model(feeds["x"].shape, wt, b, z=residual, activation=act, nchw_input=nchw_input,
                       kernel_shape=list(k), strides=list(stride), pads=list(pads),
                       dilations=list(dilation), group=group)
    y = run(model, feeds, monkeypatch, n_threads)
    winograd = not depthwise and tuple(k) == (3, 3) and tuple(stride) == (1, 1) and c % 8 == 0
    check(y, to_nhwc(ACTS[act](ref)), int(np.prod(wt.shape[1:])), winograd=winograd)


DEPTHWISE_CASES = [
    # (N, C, H, W, kernel, stride, pads (top, left, bottom, right), dilation)
    (1, 8, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 1, 5, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (3, 5, 13, 11, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (1, 17, 2, 2, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 9, 1, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (2, 16, 12, 19, (3, 3), (2, 2), (0, 1, 1, 0), (1, 1)),  # asymmetric pads, TF-style
    (1, 24, 16, 15, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1)),  # no pads: every pixel inside
    (1, 3, 11, 10, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1)),
    (1, 10, 9, 9, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),  # dilation
    (1, 12, 8, 6, (1, 3), (1, 2), (0, 1, 0, 1), (1, 1)),
    (1, 32, 29, 29, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (2, 11, 9, 13, (3, 3), (2, 1), (1, 1, 1, 1), (1, 1)),  # strides differing per axis
    (1, 20, 8, 9, (3, 3), (1, 2), (1, 0, 1, 1), (1, 1)),
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", DEPTHWISE_CASES)
def test_depthwise(case, n_threads, monkeypatch):
    n, c, h, w, k, s, p, d = case
    conv_case(n, c, c, h, w, k, s, p, d, True, n_threads=n_threads, monkeypatch=monkeypatch)


# The 3x3 row kernel cuts each output row into an edge pixel per padded side and steps of 8, 4, 2
# and 1 pixels: every width from 1 to 21 covers each mix of steps, with and without the left /
# right padding column (pads (0, 0) and (1, 0): no right padding at even widths, stride 2), and
# C = 13 (one 8-channel vector and a tail of 5), 16 and 48 (one and three 16-channel blocks in
# 512-bit registers where AVX-512F is).
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 0, 0, 0), (1, 1, 0, 0), (0, 0, 1, 1)])
@pytest.mark.parametrize("c", [13, 16, 48])
def test_depthwise_3x3_row_steps(stride, pads, c, monkeypatch):
    for w in range(1, 22):
        if w + pads[1] + pads[3] < 3:
            continue
        conv_case(2, c, c, 3, w, (3, 3), (stride, stride), pads, (1, 1), True, act="Clip",
                  residual=w % 2 == 0, n_threads=1, monkeypatch=monkeypatch)


GEMM_CASES = [
    # (N, C, M, H, W, kernel, stride, pads, nchw_input)
    (1, 7, 9, 5, 13, (1, 1), (1, 1), (0, 0, 0, 0), False),  # pointwise: one GEMM on X
    (3, 16, 24, 7, 7, (1, 1), (1, 1), (0, 0, 0, 0), False),
    (1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), False),
    (2, 17, 5, 9, 8, (1, 1), (2, 2), (0, 0, 0, 0), False),  # strided 1x1 through im2col
    (1, 5, 6, 9, 7, (3, 3), (2, 2), (1, 1, 1, 1), False),
    (1, 3, 32, 23, 21, (3, 3), (2, 2), (1, 1, 1, 1), True),  # a stem reading NCHW
    (3, 3, 8, 10, 9, (3, 3), (2, 2), (0, 1, 1, 0), True),
    (1, 3, 16, 19, 19, (7, 7), (2, 2), (3, 3, 3, 3), True),
    (1, 9, 4, 2, 2, (3, 3), (1, 1), (1, 1, 1, 1), False),
    (1, 4, 11, 8, 8, (1, 1), (1, 1), (0, 0, 0, 0), True),  # a 1x1 reading NCHW
    # C <= 4 and a kernel larger than 1x1 run direct: M tails, more than 32 channels, NHWC input
    (2, 2, 13, 6, 9, (3, 3), (1, 1), (0, 2, 1, 0), False),
    (1, 3, 40, 9, 9, (3, 3), (2, 2), (1, 1, 1, 1), True),
    (1, 1, 7, 1, 1, (3, 3), (1, 1), (1, 1, 1, 1), False),
    (1, 4, 70, 5, 12, (2, 3), (1, 2), (1, 0, 0, 2), False),
    (1, 3, 30, 9, 13, (3, 3), (2, 2), (1, 1, 1, 1), True),  # 30 of 32 lanes: the 512-bit step's tail
    # enough work for the pool and at most 1M floats of im2col: gathered whole, then one GEMM
    (1, 32, 40, 14, 14, (3, 3), (2, 2), (1, 1, 1, 1), False),
    (2, 24, 16, 9, 9, (1, 1), (2, 2), (0, 0, 0, 0), False),
    # more than 1M floats of im2col: chunks of rows, a GEMM each
    (1, 12, 8, 100, 100, (3, 3), (1, 1), (1, 1, 1, 1), False),
    # K = 130 * 9 = 1170: two K-blocks of the GEMM with AVX-512 (blocks of up to 1024)
    (1, 130, 20, 6, 7, (3, 3), (1, 1), (1, 1, 1, 1), False),
]

WINO_CASES = [
    # (N, C, M, H, W, pads): 3x3, stride 1, C and M multiples of 8 (channels-last Winograd)
    (1, 8, 8, 16, 16, (1, 1, 1, 1)),  # 16 tiles, the fewest it takes
    (1, 16, 24, 13, 17, (1, 1, 1, 1)),  # partial tiles at the bottom and the right
    (3, 8, 16, 15, 14, (0, 2, 1, 0)),  # asymmetric pads; 3 images, each split over the pool
    (4, 24, 8, 18, 18, (1, 1, 1, 1)),  # one image per task at 2 threads
    (1, 264, 16, 17, 16, (1, 1, 1, 1)),  # C past one K-block of the packed U^T (256 deep)
    (1, 1040, 16, 17, 16, (1, 1, 1, 1)),  # C past one K-block with AVX-512 (up to 1024 deep)
    (1, 8, 32, 20, 21, (0, 0, 0, 0)),  # no pads: every window inside the image
    (2, 8, 8, 6, 6, (1, 1, 1, 1)),  # 4 tiles: im2col with weights packed from the kept W
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", WINO_CASES)
def test_winograd(case, n_threads, monkeypatch):
    n, c, m, h, w, p = case
    x = rand((n, c, h, w), rng=RNG)
    wt = rand((m, c, 3, 3), rng=RNG, low=-0.5, high=0.5)
    b = rand((m,), rng=RNG)
    model = nhwc_model(to_nhwc(x).shape, wt, b, kernel_shape=[3, 3], pads=list(p))
    y = run(model, {"x": to_nhwc(x)}, monkeypatch, n_threads)
    check(y, to_nhwc(np_conv(x, wt, b, pads=p)), c * 9, winograd=True)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", GEMM_CASES)
def test_group1(case, n_threads, monkeypatch):
    n, c, m, h, w, k, s, p, nchw = case
    conv_case(n, c, m, h, w, k, s, p, (1, 1), False, nchw_input=nchw, n_threads=n_threads,
              monkeypatch=monkeypatch)


@pytest.mark.parametrize("c", [3, 6])  # direct, im2col
def test_group1_dilation(c, monkeypatch):
    conv_case(1, c, 10, 11, 9, (3, 3), (1, 2), (2, 1, 2, 2), (2, 2), False, monkeypatch=monkeypatch)


FUSED_SHAPES = {
    # name: (N, C, M, H, W, kernel, stride, pads, depthwise, nchw_input)
    "pointwise": (2, 9, 13, 5, 7, (1, 1), (1, 1), (0, 0, 0, 0), False, False),
    "im2col": (1, 5, 6, 9, 7, (3, 3), (2, 2), (1, 1, 1, 1), False, True),
    "direct": (2, 3, 19, 9, 7, (3, 3), (2, 2), (1, 1, 1, 1), False, True),
    # 40 channels: 32 in 512-bit registers where AVX-512F is (4-pixel steps), then a tail of 8
    "direct_wide": (2, 3, 40, 9, 13, (3, 3), (2, 2), (1, 1, 1, 1), False, True),
    "winograd": (1, 16, 8, 17, 16, (3, 3), (1, 1), (1, 1, 1, 1), False, False),
    # 32 output channels: the output transform in 512-bit registers where AVX-512F is
    "winograd_wide": (1, 16, 32, 17, 16, (3, 3), (1, 1), (1, 1, 1, 1), False, False),
    "im2col_whole": (1, 16, 24, 14, 14, (3, 3), (2, 2), (1, 1, 1, 1), False, False),
    "depthwise": (1, 19, 19, 11, 13, (3, 3), (1, 1), (1, 1, 1, 1), True, False),
    "depthwise_s2": (3, 9, 9, 9, 10, (3, 3), (2, 2), (1, 1, 1, 1), True, False),
    # 32 channels: two 16-channel blocks in 512-bit registers where AVX-512F is
    "depthwise_wide": (1, 32, 32, 11, 13, (3, 3), (1, 1), (1, 1, 1, 1), True, False),
    "depthwise_wide_s2": (2, 32, 32, 9, 10, (3, 3), (2, 2), (1, 1, 1, 1), True, False),
}


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("path", list(FUSED_SHAPES))
def test_epilogue(path, act, residual, monkeypatch):
    n, c, m, h, w, k, s, p, dw, nchw = FUSED_SHAPES[path]
    conv_case(n, c, m, h, w, k, s, p, (1, 1), dw, nchw_input=nchw, act=act, residual=residual,
              monkeypatch=monkeypatch)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("c,depthwise", [(3, False), (6, False), (6, True)])
def test_auto_pad(auto_pad, c, depthwise, monkeypatch):
    """auto_pad resolves as Conv's (SAME_*: the odd pad at the end / the start)."""
    x = rand((2, c, 8, 7), rng=RNG)
    w = rand((c if depthwise else 5, 1 if depthwise else c, 3, 3), rng=RNG)
    total_h, total_w = 1, 2  # stride 2: out 4 x 4 from 8 x 7 needs 1 and 2 pad rows / columns
    pads = {"SAME_UPPER": (0, 1, total_h - 0, total_w - 1), "SAME_LOWER": (1, 1, 0, 1),
            "VALID": (0, 0, 0, 0)}[auto_pad]
    ref = np_conv(x, w, None, (2, 2), pads, (1, 1), c if depthwise else 1)
    model = nhwc_model(to_nhwc(x).shape, w, auto_pad=auto_pad, strides=[2, 2],
                       group=c if depthwise else 1)
    check(run(model, {"x": to_nhwc(x)}, monkeypatch, 2), to_nhwc(ref), 9 * c)


@pytest.mark.parametrize("depthwise", [False, True])
def test_without_bias(depthwise, monkeypatch):
    conv_case(1, 6, 6, 5, 5, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), depthwise, act="Relu",
              residual=True, bias=False, monkeypatch=monkeypatch)


@pytest.mark.parametrize("z_shape", [(1, 1, 4), (1, 6, 1, 4), (3, 6, 6, 4)])
def test_broadcast_residual(z_shape, monkeypatch):
    """A residual of another shape broadcasts in the channels-last dims, as the Add it came from."""
    x = rand((1, 3, 6, 6), rng=RNG)
    w = rand((4, 3, 3, 3), rng=RNG)
    b = rand((4,), rng=RNG)
    z = rand(z_shape, rng=RNG)
    model = nhwc_model(x.shape, w, b, z=True, activation="LeakyRelu", nchw_input=True,
                       pads=[1, 1, 1, 1])
    y = run(model, {"x": x, "z": z}, monkeypatch, 2)
    check(y, ACTS["LeakyRelu"](to_nhwc(np_conv(x, w, b, pads=(1, 1, 1, 1))) + z), 27)


def test_errors(monkeypatch):
    x = to_nhwc(rand((1, 4, 6, 6), rng=RNG))
    with pytest.raises(runnx.InvalidModel, match="group 1 or depthwise"):
        run(nhwc_model(x.shape, rand((4, 2, 3, 3), rng=RNG), group=2), {"x": x}, monkeypatch, 1)
    with pytest.raises(runnx.InvalidModel, match="nchw_input"):
        run(nhwc_model(x.shape, rand((4, 1, 3, 3), rng=RNG), group=4, nchw_input=True),
            {"x": x}, monkeypatch, 1)
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="channels|C"):
        run(nhwc_model(x.shape, rand((4, 5, 1, 1), rng=RNG)), {"x": x}, monkeypatch, 1)
    model = nhwc_model(x.shape, rand((4, 4, 1, 1), rng=RNG), z=True)
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="broadcast"):
        run(model, {"x": x, "z": rand((1, 6, 5, 4), rng=RNG)}, monkeypatch, 1)


def np_depthwise_nhwc(x, wt, b, stride, pads):
    """Depthwise 3x3 on NHWC by nine shifted slices (float64; fast enough for big planes)."""
    n, h, w, c = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)))
    oh = (h + pads[0] + pads[2] - 3) // stride + 1
    ow = (w + pads[1] + pads[3] - 3) // stride + 1
    y = np.broadcast_to(b.astype(np.float64), (n, oh, ow, c)).copy()
    for kh in range(3):
        for kw in range(3):
            win = xp[:, kh : kh + stride * (oh - 1) + 1 : stride, kw : kw + stride * (ow - 1) + 1 : stride]
            y += win * wt[:, 0, kh, kw].astype(np.float64)
    return y


@pytest.mark.parametrize("c,size,stride", [(96, 150, 1), (104, 290, 2), (100, 150, 1)])
@pytest.mark.parametrize("residual", [False, True])
def test_depthwise_streamed_output(c, size, stride, residual, monkeypatch):
    # Outputs of >= 16 MiB are stored non-temporally when C % 8 == 0 (96, 104); C = 100 keeps the
    # plain stores. Two images, odd plane sizes (edge pixels take the checked path), one thread and
    # two.
    x = rand((2, size, size + 1, c), rng=RNG)
    wt = rand((c, 1, 3, 3), rng=RNG, low=-0.5, high=0.5)
    b = rand((c,), rng=RNG)
    ref = np_depthwise_nhwc(x, wt, b, stride, (1, 1, 1, 1))
    assert ref.nbytes // 2 >= 16 << 20
    feeds = {"x": x}
    if residual:
        feeds["z"] = rand(ref.shape, rng=RNG)
        ref = ref + feeds["z"]
    model = nhwc_model(x.shape, wt, b, z=residual, activation="Clip", kernel_shape=[3, 3],
                       strides=[stride, stride], pads=[1, 1, 1, 1], group=c)
    for n_threads in (1, 2):
        check(run(model, feeds, monkeypatch, n_threads), ACTS["Clip"](ref), 9)


@pytest.mark.skipif(os.environ.get("RUNNX_DISABLE_AVX2") == "1", reason="already portable")
def test_portable_paths():
    """This whole file again with the AVX2 routines disabled."""
    rerun_portable(__file__)
