"""CUDA element-wise launchers (csrc/cuda/kernels/elementwise.h) against numpy in float64."""

import math
import os
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from helpers import rand
from kernel_ref import (
    T,
    assert_matches,
    kernel_path,  # noqa: F401  (the fixture)
)

FLOATS = [np.float32, np.float16]

# (a shape, b shape): same shape (vector path and its tail), row and column broadcasts, scalars,
# size 1, empty, odd sizes, rank 6 with interleaved broadcast dims.
SHAPE_PAIRS = [
    ((7,), (7,)),
    ((1030,), (1030,)),
    ((6, 8), (6, 8)),
    ((3, 5), (5,)),
    ((4, 12), (12,)),
    ((5, 8), (5, 1)),
    ((2, 3, 17), (3, 1)),
    ((2, 3, 16), (2, 3, 1)),
    ((1,), (4, 1, 6)),
    ((), (2, 8)),
    ((9,), ()),
    ((0, 3), (3,)),
    ((2, 1, 4), (1, 3, 1)),
    ((2, 3, 4, 5, 6, 7), (1, 3, 1, 5, 1, 7)),
]

NUMPY_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
    "equal": np.equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
}
COMPARISONS = {"equal", "less", "less_equal", "greater", "greater_equal"}


@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("op", sorted(NUMPY_BINARY))
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "unaligned"])
@pytest.mark.usefixtures("kernel_path")
def test_binary_float(shapes, op, dtype, offset):
    rng = np.random.default_rng(zlib.crc32(str((shapes, op)).encode()))
    a, b = rand(shapes[0], dtype, rng=rng), rand(shapes[1], dtype, rng=rng)
    if op == "div":
        b = np.where(np.abs(b) < 0.5, 1.5, b).astype(dtype)
    if op in COMPARISONS and b.size and a.size:  # make some elements equal
        b.flat[0] = a.flat[0]
    got = T.binary(op, a, b, offset)
    want = NUMPY_BINARY[op](a.astype(np.float64), b.astype(np.float64))
    if op in COMPARISONS:
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)
    else:
        assert got.dtype == dtype
        assert_matches(got, want, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.usefixtures("kernel_path")
def test_pow_float(dtype):
    rng = np.random.default_rng(1)
    a = rand((3, 33), dtype, 0.1, 3.0, rng=rng)
    b = rand((33,), dtype, -2.0, 2.0, rng=rng)
    assert_matches(T.binary("pow", a, b), np.power(a.astype(np.float64), b.astype(np.float64)), dtype)


@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "max", "min", "less", "equal"])
@pytest.mark.usefixtures("kernel_path")
def test_binary_int(shapes, dtype, op):
    rng = np.random.default_rng(7)
    a, b = rand(shapes[0], dtype, -50, 50, rng=rng), rand(shapes[1], dtype, -9, 9, rng=rng)
    if op == "div":
        b = np.where(b == 0, 3, b).astype(dtype)
        want = np.trunc(a.astype(np.float64) / b).astype(dtype)  # truncation toward zero, like C
    else:
        want = NUMPY_BINARY[op](a, b)
    np.testing.assert_array_equal(T.binary(op, a, b), want)


def test_int_pow_and_division_by_zero():
    a = np.array([2, -3, 5, 7], np.int64)
    np.testing.assert_array_equal(T.binary("pow", a, np.array([3, 2, 0, 1], np.int64)), [8, 9, 1, 7])
    np.testing.assert_array_equal(T.binary("div", a, np.array([0, 2, 0, -2], np.int64)), [0, -1, 0, -3])


def test_int64_keeps_large_values():
    a = np.array([2**40 + 1, -(2**50) - 3], np.int64)
    np.testing.assert_array_equal(T.binary("add", a, np.array([1], np.int64)), a + 1)


@pytest.mark.usefixtures("kernel_path")
def test_max_min_propagate_nan():
    a = np.array([np.nan, 1.0, 2.0, np.nan, 5.0], np.float32)
    b = np.array([1.0, np.nan, 3.0, np.nan, -1.0], np.float32)
    np.testing.assert_array_equal(T.binary("max", a, b), np.maximum(a, b))
    np.testing.assert_array_equal(T.binary("min", a, b), np.minimum(a, b))


def test_binary_rejects_shapes_that_do_not_broadcast():
    with pytest.raises(Exception, match="broadcast"):
        T.binary("add", np.zeros((3, 4), np.float32), np.zeros((5,), np.float32))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


_erf = np.vectorize(math.erf, otypes=[np.float64])  # otypes: size-0 inputs too

# name -> (reference in float64, p0, p1, input range)
UNARY = {
    "relu": (lambda x: np.maximum(x, 0), 0, 0, (-3, 3)),
    "clip": (lambda x: np.clip(x, -0.5, 1.25), -0.5, 1.25, (-3, 3)),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), 0, 0, (-30, 30)),
    "tanh": (np.tanh, 0, 0, (-5, 5)),
    "gelu_erf": (lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), 0, 0, (-5, 5)),
    "gelu_tanh": (_gelu_tanh, 0, 0, (-5, 5)),
    "leaky_relu": (lambda x: np.where(x >= 0, x, 0.1 * x), 0.1, 0, (-3, 3)),
    "hard_swish": (lambda x: x * np.clip(x / 6 + 0.5, 0, 1), 1 / 6, 0.5, (-5, 5)),
    "exp": (np.exp, 0, 0, (-5, 5)),
    "log": (np.log, 0, 0, (0.01, 10)),
    "sqrt": (np.sqrt, 0, 0, (0, 10)),
    "rsqrt": (lambda x: 1 / np.sqrt(x), 0, 0, (0.1, 10)),
    "neg": (np.negative, 0, 0, (-3, 3)),
    "reciprocal": (np.reciprocal, 0, 0, (0.5, 4)),
    "abs": (np.abs, 0, 0, (-3, 3)),
    "erf": (_erf, 0, 0, (-3, 3)),
    "floor": (np.floor, 0, 0, (-3, 3)),
    "ceil": (np.ceil, 0, 0, (-3, 3)),
    "round": (np.round, 0, 0, (-3, 3)),
    "sin": (np.sin, 0, 0, (-3, 3)),
    "cos": (np.cos, 0, 0, (-3, 3)),
    "sign": (np.sign, 0, 0, (-3, 3)),
    "softplus": (lambda x: np.logaddexp(0, x), 0, 0, (-30, 30)),
    "elu": (lambda x: np.where(x >= 0, x, 0.7 * np.expm1(x)), 0.7, 0, (-3, 3)),
    "hard_sigmoid": (lambda x: np.clip(0.2 * x + 0.5, 0, 1), 0.2, 0.5, (-5, 5)),
    "identity": (lambda x: x, 0, 0, (-3, 3)),
}


@pytest.mark.parametrize("n", [0, 1, 7, 1029])
@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "unaligned"])
@pytest.mark.usefixtures("kernel_path")
def test_unary(n, op, dtype, offset):
    ref, p0, p1, (lo, hi) = UNARY[op]
    rng = np.random.default_rng(n)
    x = rand((n,), dtype, lo, hi, rng=rng)
    if op == "round" and n >= 7:
        x[:4] = [0.5, 1.5, 2.5, -0.5]  # half to even
    got = T.unary(op, x, p0, p1, offset)
    want = ref(x.astype(np.float64))
    # fp32 transcendental functions are a few ulp from float64; sign/floor-like ops are exact.
    assert_matches(got, want, dtype, rtol=2e-5 if dtype == np.float32 else None)


@pytest.mark.parametrize("dtype", FLOATS)
def test_unary_in_place_and_shaped(dtype):
    rng = np.random.default_rng(3)
    x = rand((3, 1, 5), dtype, rng=rng)
    got = T.unary("relu", x, in_place=True)
    assert got.shape == x.shape
    assert_matches(got, np.maximum(x.astype(np.float64), 0), dtype)


WHERE_SHAPES = [
    ((5,), (5,), (5,)),
    ((3, 1), (1, 4), ()),
    ((2, 1, 6), (6,), (2, 3, 1)),
    ((0, 4), (4,), (1,)),
    ((1,), (7,), (7,)),
]


@pytest.mark.parametrize("shapes", WHERE_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int32, np.int8, np.bool_])
@pytest.mark.usefixtures("kernel_path")
def test_where(shapes, dtype):
    rng = np.random.default_rng(5)
    cond = rng.integers(0, 2, size=shapes[0]).astype(np.bool_)
    x = rand(shapes[1], dtype, -100, 100, rng=rng)
    y = rand(shapes[2], dtype, -100, 100, rng=rng)
    got = T.where(cond, x, y)
    want = np.where(cond, x, y)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


CAST_TYPES = [np.float32, np.float16, np.float64, np.int64, np.int32, np.int8, np.uint8, np.bool_]


@pytest.mark.parametrize("src", CAST_TYPES)
@pytest.mark.parametrize("dst", CAST_TYPES)
def test_cast(src, dst):
    rng = np.random.default_rng(11)
    # In range of every destination (0..100 fits int8/uint8), with fractions and zeros for floats.
    x = rng.uniform(0, 100, size=(3, 37))
    x[0, :5] = [0, 0.5, 1.5, 99.9, 2.25]
    x = x.astype(src) if src != np.bool_ else x > 50
    got = T.cast(x, np.dtype(dst))
    want = x.astype(dst)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_cast_negative_and_wrapping():
    x = np.array([-3.7, -0.2, 2.9, 1e9], np.float32)
    np.testing.assert_array_equal(T.cast(x, np.dtype(np.int32)), x.astype(np.int32))
    big = np.array([300, -129, 2**40 + 5], np.int64)
    np.testing.assert_array_equal(T.cast(big, np.dtype(np.int8)), big.astype(np.int8))
    np.testing.assert_array_equal(T.cast(big, np.dtype(np.int32)), big.astype(np.int32))
    np.testing.assert_array_equal(T.cast(np.array([2049, 65519], np.int64), np.dtype(np.float16)),
                                  np.array([2049, 65519], np.int64).astype(np.float16))


def test_cast_empty():
    assert T.cast(np.zeros((0, 3), np.float32), np.dtype(np.float16)).shape == (0, 3)


def test_cast_rejects_unsupported_dtype():
    with pytest.raises(Exception, match="unsupported"):
        T.cast(np.zeros(3, np.float32), np.dtype(np.int16))
