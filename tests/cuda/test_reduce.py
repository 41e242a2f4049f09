"""CUDA reductions and pooling (reduce.h, pool.h): reductions against numpy in float64, pooling
against the CPU runnx kernels (the same divisor and ceil_mode rules)."""

import os
import sys

import numpy as np
import pytest
import runnx

sys.path.insert(0, os.path.dirname(__file__))
import helpers
from helpers import rand
from kernel_ref import (
    T,
    assert_matches,
    kernel_path,  # noqa: F401  (the fixture)
)

FLOATS = [np.float32, np.float16]

NUMPY_REDUCE = {
    "sum": lambda x, a: x.sum(axis=a, keepdims=True),
    "mean": lambda x, a: x.mean(axis=a, keepdims=True),
    "max": lambda x, a: x.max(axis=a, keepdims=True, initial=-np.inf),
    "min": lambda x, a: x.min(axis=a, keepdims=True, initial=np.inf),
    "prod": lambda x, a: x.prod(axis=a, keepdims=True),
    "sum_square": lambda x, a: (x * x).sum(axis=a, keepdims=True),
    "l1": lambda x, a: np.abs(x).sum(axis=a, keepdims=True),
    "l2": lambda x, a: np.sqrt((x * x).sum(axis=a, keepdims=True)),
    "log_sum": lambda x, a: np.log(x.sum(axis=a, keepdims=True)),
}

# (shape, axes): last axis (warp rows, long block rows), middle (columns), first, several
# non-adjacent axes (general kernel), all, none, size-1 and empty dims.
REDUCE_CASES = [
    ((4, 9), [1]), ((3, 5000), [-1]), ((2, 7, 5), [1]), ((6, 3), [0]), ((2, 3, 4, 5), [0, 2]),
    ((3, 4, 5), [0, 1, 2]), ((3, 4), []), ((1, 17, 1), [1]), ((5, 1, 6), [1]), ((2, 0, 3), [1]),
    ((0, 4), [1]), ((2, 3, 4, 5, 6), [1, 3]), ((8, 49), [1]), ((2, 49, 64), [1]),
]


@pytest.mark.parametrize("shape,axes", REDUCE_CASES, ids=str)
@pytest.mark.parametrize("op", sorted(NUMPY_REDUCE))
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.usefixtures("kernel_path")
@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # numpy's NaN for an empty mean is the reference
def test_reduce(shape, axes, op, dtype):
    rng = np.random.default_rng(len(shape) * 31 + len(axes))
    low, high = (0.9, 1.1) if op == "prod" else ((0.1, 2) if op == "log_sum" else (-2, 2))
    x = rand(shape, dtype, low, high, rng=rng)
    got = T.reduce(op, x, axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = NUMPY_REDUCE[op](x.astype(np.float64), tuple(axes))
    # Long fp32 sums: float32 accumulation error grows with the count (5000 terms here).
    assert_matches(got, want, dtype, rtol=1e-4 if dtype == np.float32 else 2e-2,
                 atol=1e-4 if dtype == np.float32 else 5e-2)


@pytest.mark.usefixtures("kernel_path")
def test_reduce_max_propagates_nan():
    x = np.array([[1, np.nan, 3], [4, 5, 6]], np.float32)
    got = T.reduce("max", x, [1])
    assert np.isnan(got[0, 0]) and got[1, 0] == 6


def test_reduce_rejects_bad_axes():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(Exception, match="out of range"):
        T.reduce("sum", x, [2])
    with pytest.raises(Exception, match="repeated"):
        T.reduce("sum", x, [1, -1])


def cpu_pool(kind, x, kernel, strides, dilations, pads, ceil_mode, count_include_pad):
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads, "ceil_mode": int(ceil_mode)}
    if kind == "avg":
        attrs["count_include_pad"] = int(count_include_pad)
    if dilations != [1, 1]:
        attrs["dilations"] = dilations
    op = "MaxPool" if kind == "max" else "AveragePool"
    model = helpers.make_model(op, {"x": x}, attrs=attrs, opset=19)
    return runnx.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


# kernel, strides, dilations, pads (top, left, bottom, right), ceil_mode, count_include_pad
POOL_CASES = [
    ([3, 3], [2, 2], [1, 1], [1, 1, 1, 1], False, False),  # ResNet's stem MaxPool
    ([2, 2], [2, 2], [1, 1], [0, 0, 0, 0], False, False),
    ([3, 3], [2, 2], [1, 1], [0, 0, 0, 0], True, False),
    ([3, 2], [2, 1], [1, 1], [1, 0, 2, 1], True, True),
    ([3, 3], [1, 1], [1, 1], [1, 1, 1, 1], False, True),
    ([1, 1], [1, 1], [1, 1], [0, 0, 0, 0], False, False),
    ([2, 3], [3, 2], [2, 1], [1, 1, 0, 1], False, False),
    ([7, 7], [1, 1], [1, 1], [0, 0, 0, 0], False, False),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.usefixtures("kernel_path")
def test_pool2d(case, kind, layout, dtype):
    kernel, strides, dilations, pads, ceil_mode, include = case
    rng = np.random.default_rng(3)
    x = rand((2, 3, 9, 7), dtype, rng=rng)  # NCHW: odd sizes, 3 channels
    want = cpu_pool(kind, x.astype(np.float32), kernel, strides, dilations, pads, ceil_mode, include)
    xin = x.transpose(0, 2, 3, 1).copy() if layout == "nhwc" else x
    got = T.pool2d(kind, xin, layout, kernel, strides, dilations, pads, ceil_mode, include)
    if layout == "nhwc":
        got = got.transpose(0, 3, 1, 2)
    assert_matches(got, want, dtype)


@pytest.mark.usefixtures("kernel_path")
def test_global_average_pool_is_a_spatial_mean():
    rng = np.random.default_rng(8)
    x = rand((2, 5, 7, 7), np.float32, rng=rng)
    assert_matches(T.reduce("mean", x, [2, 3]), x.astype(np.float64).mean(axis=(2, 3), keepdims=True), np.float32)
    nhwc = x.transpose(0, 2, 3, 1).copy()
    got = T.reduce("mean", nhwc, [1, 2])
    assert_matches(got, nhwc.astype(np.float64).mean(axis=(1, 2), keepdims=True), np.float32)
