"""CUDA Softmax and LayerNorm launchers (softmax.h, layernorm.h) against numpy in float64."""

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

FLOATS = [np.float32, np.float16]


def softmax_ref(x, axis, log):
    x = x.astype(np.float64)
    z = x - x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=axis, keepdims=True))
    return z - lse if log else np.exp(z - lse)


# Last axis: short rows (warp per row; 1 and 31/33 straddle a warp), 1024 (the register limit),
# 1025 and 5000 (block per row); other axes: the strided kernel.
SOFTMAX_CASES = [
    ((3, 1), -1), ((5, 7), -1), ((2, 3, 33), -1), ((4, 31), -1), ((3, 1024), -1), ((2, 1025), -1),
    ((1, 5000), -1), ((0, 8), -1), ((6, 5, 4), 1), ((3, 7, 2), 0), ((1, 9, 1), 1), ((130, 64), -1),
]


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.usefixtures("kernel_path")
def test_softmax(shape, axis, dtype, log):
    rng = np.random.default_rng(sum(shape))
    x = rand(shape, dtype, -8, 8, rng=rng)
    got = T.softmax(x, axis, log)
    assert got.dtype == dtype
    assert_matches(got, softmax_ref(x, axis, log), dtype, atol=1e-6 if dtype == np.float32 else 2e-3)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.usefixtures("kernel_path")
def test_softmax_large_values_do_not_overflow(dtype):
    x = np.array([[1000, 999, 998, -1000], [60000, 60000, 0, 1]], dtype)
    got = T.softmax(x)
    assert np.all(np.isfinite(got))
    assert_matches(got, softmax_ref(x, -1, False), dtype)


@pytest.mark.usefixtures("kernel_path")
def test_softmax_in_place():
    rng = np.random.default_rng(2)
    x = rand((9, 40), np.float32, rng=rng)
    assert_matches(T.softmax(x, -1, False, True), softmax_ref(x, -1, False), np.float32)


def layernorm_ref(x, residual, scale, bias, norm_dims, eps):
    s = x.astype(np.float64) + (0 if residual is None else residual.astype(np.float64))
    axes = tuple(range(x.ndim - norm_dims, x.ndim))
    mean = s.mean(axis=axes, keepdims=True)
    var = ((s - mean) ** 2).mean(axis=axes, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    y = (s - mean) * inv * scale.astype(np.float64) + (0 if bias is None else bias.astype(np.float64))
    return y, s, mean.reshape(-1), inv.reshape(-1)


LN_CASES = [((4, 8), 1), ((3, 1), 1), ((2, 5, 33), 1), ((7, 768), 1), ((2, 1024), 1), ((3, 1025), 1),
            ((2, 3000), 1), ((2, 3, 4, 5), 2), ((0, 16), 1), ((129, 96), 1)]


@pytest.mark.parametrize("shape,norm_dims", LN_CASES, ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("with_residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.usefixtures("kernel_path")
def test_layernorm(shape, norm_dims, dtype, with_residual, with_bias):
    rng = np.random.default_rng(len(shape) + sum(shape))
    x = rand(shape, dtype, -4, 4, rng=rng) + np.asarray(3, dtype)  # an offset: variance around the mean matters
    norm_shape = shape[len(shape) - norm_dims:]
    scale = rand(norm_shape, dtype, 0.5, 2, rng=rng)
    bias = rand(norm_shape, dtype, rng=rng) if with_bias else None
    residual = rand(shape, dtype, rng=rng) if with_residual else None
    y, s, mean, inv = T.layernorm(x, residual, scale, bias, norm_dims, 1e-5, with_residual)
    want_y, want_s, want_mean, want_inv = layernorm_ref(x, residual, scale, bias, norm_dims, 1e-5)
    assert_matches(y, want_y, dtype, rtol=1e-4 if dtype == np.float32 else None,
                 atol=1e-5 if dtype == np.float32 else 2e-2)
    if with_residual:
        assert_matches(s, want_s, dtype)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(inv, want_inv, rtol=1e-4)


@pytest.mark.usefixtures("kernel_path")
def test_layernorm_output_may_alias_input():
    rng = np.random.default_rng(4)
    x = rand((5, 300), np.float32, rng=rng)
    scale, bias = rand((300,), np.float32, rng=rng), rand((300,), np.float32, rng=rng)
    y, *_ = T.layernorm(x, None, scale, bias, 1, 1e-5, False, True)
    assert_matches(y, layernorm_ref(x, None, scale, bias, 1, 1e-5)[0], np.float32, rtol=1e-4, atol=1e-5)


@pytest.mark.usefixtures("kernel_path")
def test_layernorm_constant_row_is_bias():
    x = np.full((2, 50), 7.0, np.float32)
    bias = np.arange(50, dtype=np.float32)
    y, *_ = T.layernorm(x, None, np.ones(50, np.float32), bias, 1, 1e-5)
    np.testing.assert_allclose(y, np.broadcast_to(bias, (2, 50)), atol=1e-6)
