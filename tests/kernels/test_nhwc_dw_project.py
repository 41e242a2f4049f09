"""NhwcDwProject (com.runnx; made by nhwc_dw_project_fusion): depthwise conv + activation, then a
1x1 projection with bias and residual, computed per band of output rows, against the float64
numpy convolutions. Awkward shapes: channels that are no multiple of 8 (tails of the vectors),
images 1x1, one row, widths below 4 and odd, stride 2 on odd sizes, asymmetric pads, batch 1 and
3, one and two threads; planes big enough for several row bands per image; a residual of the
output's shape and one that broadcasts; no biases. With the block's 1x1 expansion folded in
(inputs 6 and 7): expand ratios 1 and 6, input channels no multiple of 8, the residual being X
itself, bands spanning images and bands inside an image that reuse the halo rows, each through
both expansion paths (banded and whole, RUNNX_BLOCK_EXPANSION) and the automatic choice; the
expansion through the small-K pointwise kernel (input channels <= 96, channels a multiple of 8,
ReLU/Clip/none) and through the sgemm (the rest, and every expansion on the portable path); a
model's stem (k x k on <= 4 channels, NCHW or NHWC input) folded in as the expansion.
test_portable_paths reruns the file with RUNNX_DISABLE_AVX2=1.
"""

import os
import threading

import numpy as np
import pytest
import runnx
from helpers import rand, threads
from kernels.test_conv_algos import ACT_PARAMS, ACTS, check, np_conv, rerun_portable
from kernels.test_conv_nhwc import one_node_model, to_nhwc
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(20261201)


def fused_model(x_shape, wp, bp, wd, bd, z=False, activation="", we=None, be=None, **attrs):
    """One NhwcDwProject: X (and Z, or X again when z == "x") graph inputs, the weights and biases
    constants; with `we`, the expansion folded in (attrs then carry expand_activation)."""
    names = ["x", "wp", "", "", "wd", "", "", ""]
    inits = []
    for slot, name, value in ((1, "wp", wp), (4, "wd", wd), (6, "we", we), (7, "be", be),
                              (2, "bp", bp), (5, "bd", bd)):
        if value is not None:
            inits.append(numpy_helper.from_array(value, name))
            names[slot] = name
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
    if z == "x":
        names[3] = "x"
    elif z:
        inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
        names[3] = "z"
    return one_node_model("NhwcDwProject", names, inputs, inits, activation, group=wd.shape[0],
                          kernel_shape=list(wd.shape[2:]), **attrs)


def fused_case(n, c, m, h, w, k=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), act="Clip",
               residual=None, bias=True, n_threads=2, monkeypatch=None):
    x = rand((n, c, h, w), rng=RNG)
    wd = rand((c, 1, *k), rng=RNG, low=-0.5, high=0.5)
    wp = rand((m, c, 1, 1), rng=RNG, low=-0.5, high=0.5)
    bd = rand((c,), rng=RNG) if bias else None
    bp = rand((m,), rng=RNG) if bias else None
    d = ACTS[act](np_conv(x, wd, bd, stride, pads, (1, 1), c))
    ref = to_nhwc(np_conv(d, wp, bp))
    feeds = {"x": to_nhwc(x)}
    if residual is not None:
        feeds["z"] = rand(ref.shape if residual == "full" else residual, rng=RNG)
        ref = ref + feeds["z"]
    model = fused_model(feeds["x"].shape, wp, bp, wd, bd, z=residual is not None, activation=act,
                        strides=list(stride), pads=list(pads))
    monkeypatch.setenv("RUNNX_CHECK_INFERENCE", "1")
    sess = runnx.InferenceSession(model.SerializeToString(), threads(n_threads))
    for _ in range(2):  # the second run works in the session's memory plan
        y = sess.run(None, feeds)[0]
        check(y, ref, 9 + c)


CASES = [
    # (N, C, M, H, W, stride, pads)
    (1, 8, 5, 7, 7, (1, 1), (1, 1, 1, 1)),
    (1, 13, 24, 5, 9, (1, 1), (1, 1, 1, 1)),  # a vector and a 5-channel tail
    (3, 5, 7, 11, 13, (2, 2), (1, 1, 1, 1)),  # stride 2 on odd sizes, batch 3
    (1, 17, 3, 1, 1, (1, 1), (1, 1, 1, 1)),  # a 1x1 image
    (2, 9, 16, 1, 9, (1, 1), (1, 1, 1, 1)),  # one row
    (1, 24, 33, 6, 3, (1, 1), (1, 1, 1, 1)),  # width below 4
    (1, 16, 8, 9, 2, (2, 2), (0, 1, 1, 0)),  # TF-style asymmetric pads
    (1, 12, 6, 8, 8, (1, 1), (0, 0, 0, 0)),  # no pads
    (2, 96, 24, 40, 41, (1, 1), (1, 1, 1, 1)),  # several row bands per image
    (1, 144, 40, 29, 29, (2, 2), (1, 1, 1, 1)),
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_shapes(case, n_threads, monkeypatch):
    n, c, m, h, w, s, p = case
    fused_case(n, c, m, h, w, stride=s, pads=p, n_threads=n_threads, monkeypatch=monkeypatch)


@pytest.mark.parametrize("residual", [None, "full"])
@pytest.mark.parametrize("act", list(ACTS))
def test_epilogues(act, residual, monkeypatch):
    """Every depthwise activation, with and without the projection's residual."""
    fused_case(2, 11, 9, 6, 7, act=act, residual=residual, monkeypatch=monkeypatch)


def test_without_biases_and_other_kernels(monkeypatch):
    fused_case(1, 10, 6, 7, 6, bias=False, residual="full", monkeypatch=monkeypatch)
    fused_case(1, 10, 6, 9, 8, k=(5, 5), pads=(2, 2, 2, 2), act="Relu", monkeypatch=monkeypatch)
    fused_case(1, 7, 4, 8, 9, k=(1, 3), stride=(1, 2), pads=(0, 1, 0, 1), monkeypatch=monkeypatch)


@pytest.mark.parametrize("z_shape", [(1, 1, 6), (1, 5, 1, 6), (3, 5, 4, 6)])
def test_broadcast_residual(z_shape, monkeypatch):
    """A residual of another shape broadcasts over the channels-last dims, as the Add did."""
    fused_case(1 if z_shape[0] != 3 else 3, 9, 6, 5, 4, residual=z_shape, monkeypatch=monkeypatch)


def test_errors():
    wd = rand((4, 1, 3, 3), rng=RNG)
    wp = rand((5, 4, 1, 1), rng=RNG)
    x = rand((1, 6, 6, 4), rng=RNG)
    bad_group = fused_model(x.shape, wp, None, rand((4, 2, 3, 3), rng=RNG), None)
    with pytest.raises(runnx.InvalidModel, match="depthwise"):
        runnx.InferenceSession(bad_group.SerializeToString())
    sess = runnx.InferenceSession(fused_model(x.shape[:3] + (None,), wp, None, wd, None)
                                  .SerializeToString())
    with pytest.raises(runnx.InvalidArgument, match="X must be"):
        sess.run(None, {"x": rand((1, 6, 6, 3), rng=RNG)})


def expanded_case(n, cin, c, m, h, w, stride=1, residual=None, expand_act="Clip", act="Clip",
                  bias=True, n_threads=2, mode="", monkeypatch=None):
    """The whole inverted residual block in one node: x [n, cin] -> 1x1 expansion to c channels
    + expand_act -> depthwise 3x3 + act -> 1x1 projection to m (+ residual: "x" adds X itself,
    "full" a separate Z). mode: RUNNX_BLOCK_EXPANSION ("" = the kernel's choice)."""
    model, feeds, ref = expanded_block(n, cin, c, m, h, w, stride, residual, expand_act, act, bias)
    monkeypatch.setenv("RUNNX_CHECK_INFERENCE", "1")
    monkeypatch.setenv("RUNNX_BLOCK_EXPANSION", mode)
    sess = runnx.InferenceSession(model.SerializeToString(), threads(n_threads))
    assert "expansion" in sess._sess.kernel_choices()[0][-1]
    for _ in range(2):
        check(sess.run(None, feeds)[0], ref, 9 + c + cin)


def expanded_block(n, cin, c, m, h, w, stride=1, residual=None, expand_act="Clip", act="Clip",
                   bias=True):
    """expanded_case's model, feeds and numpy reference."""
    x = rand((n, cin, h, w), rng=RNG)
    we = rand((c, cin, 1, 1), rng=RNG, low=-0.5, high=0.5)
    wd = rand((c, 1, 3, 3), rng=RNG, low=-0.5, high=0.5)
    wp = rand((m, c, 1, 1), rng=RNG, low=-0.5, high=0.5)
    be, bd, bp = ((rand((k,), rng=RNG) if bias else None) for k in (c, c, m))
    e = ACTS[expand_act](np_conv(x, we, be))
    d = ACTS[act](np_conv(e, wd, bd, (stride, stride), (1, 1, 1, 1), (1, 1), c))
    ref = to_nhwc(np_conv(d, wp, bp))
    feeds = {"x": to_nhwc(x)}
    if residual == "x":
        ref = ref + feeds["x"]
    elif residual == "full":
        feeds["z"] = rand(ref.shape, rng=RNG)
        ref = ref + feeds["z"]
    attrs = {"expand_activation": expand_act} if expand_act else {}
    if expand_act in ACT_PARAMS:
        attrs["expand_activation_params"] = ACT_PARAMS[expand_act]
    model = fused_model(feeds["x"].shape, wp, bp, wd, bd, z=residual, activation=act, we=we,
                        be=be, strides=[stride, stride], pads=[1, 1, 1, 1], **attrs)
    return model, feeds, ref


EXPANDED = [
    # (N, Cin, C, M, H, W, stride, residual)
    (1, 16, 96, 24, 12, 14, 2, None),  # MobileNetV2-like, ratio 6, stride 2
    (1, 8, 48, 8, 9, 7, 1, "x"),  # residual = X, odd sizes
    (3, 5, 30, 5, 7, 9, 1, "x"),  # channels no multiple of 8, bands spanning images
    (3, 13, 13, 11, 5, 6, 2, "full"),  # ratio 1, stride 2, a separate Z
    (1, 6, 36, 7, 1, 1, 1, None),  # a 1x1 image
    (2, 7, 42, 9, 1, 5, 2, None),  # one row
    (1, 24, 144, 24, 40, 37, 1, "x"),  # several bands per image: the halo rows reused
    (2, 32, 192, 40, 29, 29, 2, None),  # several bands, stride 2 on odd sizes
    (1, 20, 120, 20, 7, 7, 1, "x"),  # a small plane at batch 1 (expanded whole by default)
    (1, 3, 8, 4, 5, 5, 1, None),  # one 8-channel panel of the pointwise kernel
    (2, 11, 24, 6, 6, 7, 2, None),  # a 16- and an 8-channel panel, pixel groups of 1-5
    (1, 64, 384, 64, 9, 9, 1, "x"),
    (1, 96, 192, 24, 9, 8, 1, None),  # the largest input count the pointwise kernel takes
    (1, 104, 144, 16, 9, 8, 1, None),  # more input channels: the sgemm
    (1, 16, 40, 8, 7, 7, 2, None),  # 7x7 expanded whole on 2-3 threads, pixel cuts at 6s
]


@pytest.mark.parametrize("mode", ["", "banded", "whole"])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("case", EXPANDED)
def test_expanded_shapes(case, n_threads, mode, monkeypatch):
    n, cin, c, m, h, w, s, res = case
    expanded_case(n, cin, c, m, h, w, s, res, n_threads=n_threads, mode=mode,
                  monkeypatch=monkeypatch)


@pytest.mark.parametrize("mode", ["banded", "whole"])
@pytest.mark.parametrize("expand_act,act", [("", ""), ("Relu", "Clip"), ("HardSwish", "Relu"),
                                            ("LeakyRelu", "Sigmoid")])
def test_expanded_epilogues(expand_act, act, mode, monkeypatch):
    """The expansion's activation is its own (expand_activation), apart from the depthwise one."""
    expanded_case(2, 6, 20, 7, 6, 5, 1, "full", expand_act, act, mode=mode,
                  monkeypatch=monkeypatch)


def test_expanded_without_biases(monkeypatch):
    expanded_case(1, 9, 27, 6, 8, 7, 2, "full", bias=False, monkeypatch=monkeypatch)


@pytest.mark.parametrize("mode", ["banded", "whole"])
@pytest.mark.parametrize("expand_act,act,bias", [("", "", True), ("Relu", "Clip", True),
                                                 ("Clip", "", False), ("", "Relu", False)])
def test_pointwise_expansion_epilogues(expand_act, act, bias, mode, monkeypatch):
    """24 channels (a 16- and an 8-channel panel): the small-K pointwise kernel serves the
    expansion, with and without its activation and bias."""
    expanded_case(2, 6, 24, 7, 6, 5, 1, "full", expand_act, act, bias=bias, mode=mode,
                  monkeypatch=monkeypatch)


@pytest.mark.parametrize("cin,pointwise", [(96, True), (104, False)])
def test_pointwise_expansion_serves_up_to_96_input_channels(cin, pointwise):
    """The expansion's kernel at the pointwise kernel's limit (kPointwiseMaxK) and past it."""
    c, m = 48, 8
    model = fused_model((1, 5, 5, cin), rand((m, c, 1, 1), rng=RNG), None,
                        rand((c, 1, 3, 3), rng=RNG), None, activation="Relu",
                        we=rand((c, cin, 1, 1), rng=RNG), be=None, strides=[1, 1],
                        pads=[1, 1, 1, 1], expand_activation="Relu")
    sess = runnx.InferenceSession(model.SerializeToString(), threads(2))
    if os.environ.get("RUNNX_DISABLE_AVX2") == "1":  # the portable path has the sgemm only
        pointwise = False
    assert ("pointwise kernel" in sess._sess.kernel_choices()[0][-1]) == pointwise


@pytest.mark.parametrize("mode", ["banded", "whole"])
def test_pointwise_expansion_keeps_nan_without_activation(mode, monkeypatch):
    """No activation anywhere: a NaN pixel stays NaN through the expansion (a clamp to
    [-inf, inf] made it -inf), so with weights all positive the outputs it reaches are NaN."""
    n, cin, c, m, h, w = 1, 5, 24, 4, 6, 7
    x = rand((n, cin, h, w), rng=RNG)
    x[0, 2, 3, 4] = np.nan
    we = rand((c, cin, 1, 1), rng=RNG, low=0.1, high=0.5)
    wd = rand((c, 1, 3, 3), rng=RNG, low=0.1, high=0.5)
    wp = rand((m, c, 1, 1), rng=RNG, low=0.1, high=0.5)
    be, bd, bp = (rand((k,), rng=RNG) for k in (c, c, m))
    d = np_conv(np_conv(x, we, be), wd, bd, (1, 1), (1, 1, 1, 1), (1, 1), c)
    ref = to_nhwc(np_conv(d, wp, bp))
    assert np.isnan(ref).sum() == 9 * m
    model = fused_model((n, h, w, cin), wp, bp, wd, bd, activation="", we=we, be=be,
                        strides=[1, 1], pads=[1, 1, 1, 1])
    monkeypatch.setenv("RUNNX_BLOCK_EXPANSION", mode)
    sess = runnx.InferenceSession(model.SerializeToString(), threads(2))
    if os.environ.get("RUNNX_DISABLE_AVX2") != "1":  # the portable path has the sgemm only
        assert "pointwise kernel" in sess._sess.kernel_choices()[0][-1]
    check(sess.run(None, {"x": to_nhwc(x)})[0], ref, 9 + c + cin)


STEMS = [
    # (N, Cin, C, M, H, W, stem kernel, stem stride, stem pads, depthwise stride, NCHW input)
    (1, 3, 32, 16, 37, 29, 3, 2, (1, 1, 1, 1), 1, True),  # MobileNetV2's stem and first block
    (3, 3, 16, 8, 11, 13, 3, 2, (0, 1, 1, 0), 2, True),  # asymmetric pads, both strided
    (2, 2, 12, 5, 9, 8, 3, 1, (1, 1, 1, 1), 1, False),  # NHWC input, 12 channels (a tail)
    (1, 4, 40, 9, 6, 7, 2, 1, (0, 0, 1, 1), 2, True),  # a 2x2 stem
    (2, 1, 8, 3, 1, 5, 3, 1, (1, 1, 1, 1), 1, False),  # one row
]


@pytest.mark.parametrize("mode", ["", "banded", "whole"])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", STEMS)
def test_stem_expansion(case, n_threads, mode, monkeypatch):
    """A model's stem (k x k on <= 4 input channels, the direct kernel) folded in as the
    expansion: its output rows are made per band, the depthwise conv reads them from scratch."""
    n, cin, c, m, h, w, k, ss, sp, sd, nchw = case
    x = rand((n, cin, h, w), rng=RNG)
    we = rand((c, cin, k, k), rng=RNG, low=-0.5, high=0.5)
    wd = rand((c, 1, 3, 3), rng=RNG, low=-0.5, high=0.5)
    wp = rand((m, c, 1, 1), rng=RNG, low=-0.5, high=0.5)
    be, bd, bp = (rand((j,), rng=RNG) for j in (c, c, m))
    e = ACTS["Clip"](np_conv(x, we, be, (ss, ss), sp))
    d = ACTS["Relu"](np_conv(e, wd, bd, (sd, sd), (1, 1, 1, 1), (1, 1), c))
    ref = to_nhwc(np_conv(d, wp, bp))
    feeds = {"x": x if nchw else to_nhwc(x)}
    model = fused_model(feeds["x"].shape, wp, bp, wd, bd, activation="Relu", we=we, be=be,
                        strides=[sd, sd], pads=[1, 1, 1, 1], expand_activation="Clip",
                        expand_activation_params=ACT_PARAMS["Clip"], expand_strides=[ss, ss],
                        expand_pads=list(sp), expand_nchw_input=int(nchw))
    monkeypatch.setenv("RUNNX_CHECK_INFERENCE", "1")
    monkeypatch.setenv("RUNNX_BLOCK_EXPANSION", mode)
    sess = runnx.InferenceSession(model.SerializeToString(), threads(n_threads))
    assert "stem" in sess._sess.kernel_choices()[0][-1]
    for _ in range(2):
        check(sess.run(None, feeds)[0], ref, 9 * cin + c)


@pytest.mark.parametrize("n_threads", [2, 3])
@pytest.mark.parametrize("case", [
    (1, 32, 192, 32, 28, 28, 1, "x"),  # MobileNetV2's 28x28 block: 5 bands evened out to 6
    (3, 16, 96, 24, 23, 29, 1, None),  # 8 evened-out bands, one across two images on 2 threads
    (2, 16, 96, 24, 34, 29, 1, None),  # ... and on 3 threads
    (1, 24, 144, 24, 67, 37, 1, "x"),  # 12 bands, more than are evened out: the uniform cut
    (1, 104, 144, 16, 22, 32, 1, None),  # the sgemm expansion, 4 bands (6 on 3 threads)
])
def test_bands_taken_from_the_back_reuse_the_halo(case, n_threads, monkeypatch):
    """The pool's workers join every job late, so the caller runs all the bands: its own share
    front to back, then the others' from the back, each band reusing the halo rows the band after
    it expanded. Same results as the normal split, bit for bit, and as the reference."""
    n, cin, c, m, h, w, s, res = case
    model, feeds, ref = expanded_block(n, cin, c, m, h, w, s, res)
    monkeypatch.setenv("RUNNX_BLOCK_EXPANSION", "banded")
    sess = runnx.InferenceSession(model.SerializeToString(), threads(n_threads))
    split = sess.run(None, feeds)[0]
    runnx._C._testing.session_pool_delay_joins(sess._sess, 0.02)
    try:
        caller_only = sess.run(None, feeds)[0]
    finally:
        runnx._C._testing.session_pool_delay_joins(sess._sess, 0)
    check(caller_only, ref, 9 + c + cin)
    np.testing.assert_array_equal(caller_only, split)


def test_stem_bands_taken_from_the_back_reuse_the_halo(monkeypatch):
    """As above with a stem expansion (the direct kernel's rows): a 56x57 plane of 32 channels,
    4 bands."""
    x = rand((1, 3, 111, 113), rng=RNG)
    we = rand((32, 3, 3, 3), rng=RNG, low=-0.5, high=0.5)
    wd = rand((32, 1, 3, 3), rng=RNG, low=-0.5, high=0.5)
    wp = rand((8, 32, 1, 1), rng=RNG, low=-0.5, high=0.5)
    be, bd, bp = (rand((j,), rng=RNG) for j in (32, 32, 8))
    ref = to_nhwc(np_conv(ACTS["Relu"](np_conv(ACTS["Clip"](np_conv(x, we, be, (2, 2), (1, 1, 1, 1))),
                                               wd, bd, (1, 1), (1, 1, 1, 1), (1, 1), 32)), wp, bp))
    model = fused_model(x.shape, wp, bp, wd, bd, activation="Relu", we=we, be=be, strides=[1, 1],
                        pads=[1, 1, 1, 1], expand_activation="Clip",
                        expand_activation_params=ACT_PARAMS["Clip"], expand_strides=[2, 2],
                        expand_pads=[1, 1, 1, 1], expand_nchw_input=1)
    monkeypatch.setenv("RUNNX_BLOCK_EXPANSION", "banded")
    sess = runnx.InferenceSession(model.SerializeToString(), threads(2))
    split = sess.run(None, {"x": x})[0]
    runnx._C._testing.session_pool_delay_joins(sess._sess, 0.02)
    try:
        caller_only = sess.run(None, {"x": x})[0]
    finally:
        runnx._C._testing.session_pool_delay_joins(sess._sess, 0)
    check(caller_only, ref, 9 * 3 + 32)
    np.testing.assert_array_equal(caller_only, split)


def test_expanded_results_do_not_depend_on_the_threads_split(monkeypatch):
    """Runs from several Python threads at once (one drives the pool, the others run every band
    inline, so the halo rows are reused in other places) give bit-identical outputs."""
    n, cin, c, m, h, w = 2, 24, 144, 24, 23, 37
    model = fused_model((n, h, w, cin), rand((m, c, 1, 1), rng=RNG), rand((m,), rng=RNG),
                        rand((c, 1, 3, 3), rng=RNG), rand((c,), rng=RNG), z="x",
                        activation="Clip", we=rand((c, cin, 1, 1), rng=RNG, low=-0.5, high=0.5),
                        be=rand((c,), rng=RNG), strides=[1, 1], pads=[1, 1, 1, 1],
                        expand_activation="Relu")
    monkeypatch.setenv("RUNNX_BLOCK_EXPANSION", "banded")
    sess = runnx.InferenceSession(model.SerializeToString(), threads(2))
    feeds = {"x": rand((n, h, w, cin), rng=RNG)}
    expected = sess.run(None, feeds)[0]
    results = []

    def worker():
        for _ in range(6):
            results.append(sess.run(None, feeds)[0])

    ts = [threading.Thread(target=worker) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(results) == 18
    for r in results:
        np.testing.assert_array_equal(r, expected)


@pytest.mark.parametrize("stem", [False, True])
def test_expanded_errors(stem):
    """A W_e that does not make the depthwise channels, a stem on more than 4 channels, or a 1x1
    expansion with a stride or pads is refused at load; X of the wrong channel count at run time
    (NCHW for a stem)."""
    k, cin = (3, 3) if stem else (1, 4)
    wd = rand((12, 1, 3, 3), rng=RNG)
    wp = rand((5, 12, 1, 1), rng=RNG)
    bad = fused_model((1, 6, 6, 4), wp, None, wd, None, we=rand((10, 4, k, k), rng=RNG))
    with pytest.raises(runnx.InvalidModel, match="expansion"):
        runnx.InferenceSession(bad.SerializeToString())
    if stem:
        wide = fused_model((1, 6, 6, 5), wp, None, wd, None, we=rand((12, 5, 3, 3), rng=RNG))
        with pytest.raises(runnx.InvalidModel, match="at most 4 input channels"):
            runnx.InferenceSession(wide.SerializeToString())
    else:  # a hand-built 1x1 expansion with a window the kernel has no path for
        for attrs in ({"expand_strides": [2, 2]}, {"expand_pads": [1, 1, 1, 1]}):
            odd = fused_model((1, 6, 6, 4), wp, None, wd, None, we=rand((12, 4, 1, 1), rng=RNG),
                              **attrs)
            with pytest.raises(runnx.InvalidModel, match="takes no expand_strides"):
                runnx.InferenceSession(odd.SerializeToString())
    sess = runnx.InferenceSession(fused_model((1, None, 6, None), wp, None, wd, None,
                                              we=rand((12, cin, k, k), rng=RNG),
                                              expand_nchw_input=int(stem)).SerializeToString())
    with pytest.raises(runnx.InvalidArgument, match="X must be"):
        sess.run(None, {"x": rand((1, 6, 6, 12), rng=RNG)})


@pytest.mark.skipif(os.environ.get("RUNNX_DISABLE_AVX2") == "1", reason="already portable")
def test_portable_paths():
    """This whole file again with the AVX2 routines disabled."""
    rerun_portable(__file__)
