"""CUDA depthwise convolution (depthwise.h) with its fused epilogue, against numpy in float64."""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from helpers import rand
from kernel_ref import (
    T,
    assert_matches,
    kernel_path,  # noqa: F401  (the fixture)
)

_erf = np.vectorize(math.erf, otypes=[np.float64])  # otypes: size-0 inputs too
ACTS = {
    "none": lambda v, p0, p1: v,
    "relu": lambda v, p0, p1: np.maximum(v, 0),
    "clip": lambda v, p0, p1: np.clip(v, p0, p1),
    "sigmoid": lambda v, p0, p1: 1 / (1 + np.exp(-v)),
    "leaky_relu": lambda v, p0, p1: np.where(v >= 0, v, p0 * v),
    "hard_swish": lambda v, p0, p1: v * np.clip(p0 * v + p1, 0, 1),
    "gelu_erf": lambda v, p0, p1: 0.5 * v * (1 + _erf(v / math.sqrt(2))),
}


def depthwise_ref(x, w, strides, dilations, pads):
    """NCHW float64 reference: explicit loops over the kernel taps."""
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    m = oc // c
    xp = np.zeros((n, c, h + pads[0] + pads[2], wd + pads[1] + pads[3]))
    xp[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + wd] = x
    oh = (h + pads[0] + pads[2] - ((kh - 1) * dilations[0] + 1)) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - ((kw - 1) * dilations[1] + 1)) // strides[1] + 1
    y = np.zeros((n, oc, oh, ow))
    for o in range(oc):
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilations[0], j * dilations[1]
                patch = xp[:, o // m, r0:r0 + (oh - 1) * strides[0] + 1:strides[0],
                           c0:c0 + (ow - 1) * strides[1] + 1:strides[1]]
                y[:, o] += patch * w[o, 0, i, j]
    return y


# (n, c, h, w), multiplier, kernel, strides, dilations, pads (top, left, bottom, right)
CASES = [
    ((1, 32, 14, 14), 1, (3, 3), [1, 1], [1, 1], [1, 1, 1, 1]),  # MobileNetV2 stride 1
    ((2, 17, 15, 9), 1, (3, 3), [2, 2], [1, 1], [1, 1, 1, 1]),  # stride 2, odd sizes
    ((1, 3, 7, 7), 2, (3, 3), [1, 1], [1, 1], [0, 0, 0, 0]),  # multiplier 2
    ((1, 5, 9, 11), 1, (5, 3), [1, 2], [2, 1], [2, 1, 2, 1]),  # dilation, uneven kernel
    ((3, 1, 4, 4), 1, (1, 1), [1, 1], [1, 1], [0, 0, 0, 0]),
    ((1, 8, 6, 6), 1, (3, 3), [2, 2], [1, 1], [0, 0, 1, 1]),  # asymmetric pads (TF "SAME")
    ((0, 4, 5, 5), 1, (3, 3), [1, 1], [1, 1], [1, 1, 1, 1]),  # empty batch
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.usefixtures("kernel_path")
def test_depthwise(case, layout, dtype):
    shape, m, (kh, kw), strides, dilations, pads = case
    rng = np.random.default_rng(shape[1] + kh)
    x = rand(shape, dtype, rng=rng)
    w = rand((shape[1] * m, 1, kh, kw), dtype, rng=rng)
    want = depthwise_ref(x.astype(np.float64), w.astype(np.float64), strides, dilations, pads)
    xin = x.transpose(0, 2, 3, 1).copy() if layout == "nhwc" else x
    got = T.depthwise_conv2d(xin, w, layout, strides, dilations, pads)
    if layout == "nhwc":
        got = got.transpose(0, 3, 1, 2)
    assert_matches(got, want, dtype, rtol=1e-5 if dtype == np.float32 else 1e-2,
                   atol=1e-5 if dtype == np.float32 else 1e-2)


@pytest.mark.parametrize("act,p0,p1", [("relu", 0, 0), ("clip", 0, 6), ("hard_swish", 1 / 6, 0.5),
                                       ("leaky_relu", 0.1, 0), ("sigmoid", 0, 0), ("gelu_erf", 0, 0)])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.usefixtures("kernel_path")
def test_depthwise_epilogue(act, p0, p1, layout, dtype):
    rng = np.random.default_rng(9)
    shape, strides, pads = (2, 6, 8, 5), [1, 1], [1, 1, 1, 1]
    x = rand(shape, dtype, rng=rng)
    w = rand((6, 1, 3, 3), dtype, rng=rng)
    bias = rand((6,), dtype, rng=rng)
    residual = rand(shape, dtype, rng=rng)  # stride 1, same pads: the output has x's shape
    alpha, beta = 0.5, 2.0
    conv = depthwise_ref(x.astype(np.float64), w.astype(np.float64), strides, [1, 1], pads)
    v = alpha * conv + bias.astype(np.float64)[None, :, None, None] + beta * residual.astype(np.float64)
    want = ACTS[act](v, p0, p1)
    to_layout = (lambda a: a.transpose(0, 2, 3, 1).copy()) if layout == "nhwc" else (lambda a: a)
    got = T.depthwise_conv2d(to_layout(x), w, layout, strides, [1, 1], pads, bias, to_layout(residual),
                             act, p0, p1, alpha, beta)
    if layout == "nhwc":
        got = got.transpose(0, 3, 1, 2)
    assert_matches(got, want, dtype, rtol=1e-5 if dtype == np.float32 else 1e-2,
                   atol=1e-5 if dtype == np.float32 else 2e-2)
