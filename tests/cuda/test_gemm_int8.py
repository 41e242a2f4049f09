"""CUDA int8 GEMM (MatMulInteger / QLinearMatMul semantics) against exact numpy integer math.

The requantized outputs follow the launcher's documented float32 formula
rint(float32(acc) * float32(a_scale * b_scale / y_scale)) + y_zero, saturated, which numpy
reproduces bit for bit, so every comparison here is exact.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from runnx import _C

sys.path.insert(0, os.path.dirname(__file__))
from gemm_reference import epilogue, simple, spec_for
from kernel_ref import kernel_path  # noqa: F401

T = _C.cuda._testing if hasattr(_C, "cuda") and hasattr(_C.cuda, "_testing") else None


def operands(rng, M, N, K, a_unsigned, b_unsigned, pad=0, batch=1):
    a_dt = np.uint8 if a_unsigned else np.int8
    b_dt = np.uint8 if b_unsigned else np.int8
    info_a, info_b = np.iinfo(a_dt), np.iinfo(b_dt)
    A = rng.integers(info_a.min, info_a.max + 1, (batch, M, K)).astype(a_dt)
    Bt = rng.integers(info_b.min, info_b.max + 1, (batch, N, K)).astype(b_dt)  # B^T [N][K]
    a_buf = np.zeros((batch, M, K + pad), a_dt)
    a_buf[:, :, :K] = A
    b_buf = np.zeros((batch, N, K + pad), b_dt)
    b_buf[:, :, :K] = Bt
    spec = {
        "M": M,
        "N": N,
        "K": K,
        "lda": K + pad,
        "ldb": K + pad,
        "ldc": N,
        "a_unsigned": a_unsigned,
        "b_unsigned": b_unsigned,
        "batch_outer": batch,
        "a_outer": M * (K + pad),
        "b_outer": N * (K + pad),
        "c_outer": M * N,
    }
    return a_buf.reshape(-1), b_buf.reshape(-1), spec, A, Bt


def exact_acc(A, Bt, a_zero, b_zero):
    a = A.astype(np.int64) - np.int64(a_zero)
    b = Bt.astype(np.int64) - np.asarray(b_zero, np.int64).reshape(-1, 1)
    return np.matmul(a, b.transpose(0, 2, 1))


SHAPES = [(1, 1, 1), (3, 5, 7), (17, 33, 65), (128, 128, 64), (130, 129, 100), (64, 200, 300)]
SIGNS = [(False, False), (True, False), (True, True), (False, True)]


@pytest.mark.usefixtures("kernel_path")  # fast and simple kernels
@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("a_unsigned,b_unsigned", SIGNS)
@pytest.mark.parametrize("pad", [0, 16])
def test_int32_output_with_zero_points_is_exact(M, N, K, a_unsigned, b_unsigned, pad):
    rng = np.random.default_rng(M + 7 * N + 13 * K + 2 * a_unsigned + b_unsigned + pad)
    a, b, spec, A, Bt = operands(rng, M, N, K, a_unsigned, b_unsigned, pad, batch=2)
    a_dt, b_dt = A.dtype, Bt.dtype
    a_zero = np.array([rng.integers(np.iinfo(a_dt).min, np.iinfo(a_dt).max + 1)], a_dt)
    b_zero = rng.integers(np.iinfo(b_dt).min, np.iinfo(b_dt).max + 1, N).astype(b_dt)  # per column
    spec.update(a_zero=a_zero, b_zero=b_zero, b_zero_stride=1, out="int32")
    # pad 16 keeps every row 16-byte aligned: the tensor-core path must be the one taken then.
    spec["expect_tensor_cores"] = (K + pad) % 16 == 0 and not simple()
    c = np.zeros((2, M, N), np.int32)
    out = T.gemm_int8(a, b, c, spec)
    np.testing.assert_array_equal(out, exact_acc(A, Bt, a_zero[0], b_zero).astype(np.int32))


@pytest.mark.parametrize("a_unsigned,b_unsigned", SIGNS)
def test_no_zero_points(a_unsigned, b_unsigned):
    rng = np.random.default_rng(11)
    a, b, spec, A, Bt = operands(rng, 70, 90, 200, a_unsigned, b_unsigned, pad=8)
    c = np.zeros((1, 70, 90), np.int32)
    out = T.gemm_int8(a, b, c, spec)
    np.testing.assert_array_equal(out, exact_acc(A, Bt, 0, np.zeros(90)).astype(np.int32))


def requantize(acc, multiplier, y_zero, out_dtype):
    info = np.iinfo(out_dtype)
    v = np.rint(acc.astype(np.float32) * np.float32(multiplier)) + np.float32(y_zero)
    return np.clip(v, info.min, info.max).astype(out_dtype)


@pytest.mark.usefixtures("kernel_path")  # fast and simple kernels
@pytest.mark.parametrize("out", ["int8", "uint8"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("M,N,K", [(5, 7, 9), (129, 130, 128), (33, 64, 1000)])
def test_requantized_output_matches_qlinearmatmul(out, per_channel, M, N, K):
    rng = np.random.default_rng(M * N + K + per_channel)
    a, b, spec, A, Bt = operands(rng, M, N, K, True, False, pad=0)
    a_zero = np.array([rng.integers(0, 256)], np.uint8)
    b_zero = np.zeros(N if per_channel else 1, np.int8)
    a_scale = np.array([0.02], np.float32)
    b_scale = rng.uniform(0.001, 0.01, N if per_channel else 1).astype(np.float32)
    acc = exact_acc(A, Bt, a_zero[0], b_zero if per_channel else np.repeat(b_zero, N))
    # Outputs spread over about +-150 (so some saturate) whatever the random sizes.
    y_scale = np.array([a_scale[0] * b_scale.max() * max(np.abs(acc).max(), 1) / 150], np.float32)
    out_dtype = np.dtype(out)
    y_zero = np.array([3 if out == "int8" else 128], out_dtype)
    spec.update(
        a_zero=a_zero,
        b_zero=b_zero,
        b_zero_stride=int(per_channel),
        a_scale=a_scale,
        b_scale=b_scale,
        b_scale_stride=int(per_channel),
        y_scale=y_scale,
        y_zero=y_zero,
        out=out,
    )
    c = np.zeros((1, M, N), out_dtype)
    got = T.gemm_int8(a, b, c, spec)
    # float32, in the launcher's order: (a_scale * b_scale) / y_scale
    multiplier = (a_scale[0] * np.broadcast_to(b_scale, (N,))) / y_scale[0]
    expected = requantize(acc, multiplier.astype(np.float32), y_zero[0], out_dtype)
    np.testing.assert_array_equal(got, expected)
    assert len(np.unique(got)) > 10, "the scales should spread the outputs over many values"


@pytest.mark.parametrize("act", ["none", "relu", "gelu"])
def test_float_output_dequantizes_with_bias_and_activation(act):
    rng = np.random.default_rng(21)
    M, N, K = 50, 72, 96
    a, b, spec, A, Bt = operands(rng, M, N, K, False, False, pad=0)
    a_zero = np.array([-5], np.int8)
    a_scale = np.array([0.05], np.float32)
    b_scale = rng.uniform(0.01, 0.02, N).astype(np.float32)
    bias = rng.uniform(-1, 1, N).astype(np.float32)
    spec.update(
        a_zero=a_zero,
        a_scale=a_scale,
        b_scale=b_scale,
        b_scale_stride=1,
        bias=bias,
        out="float",
        **spec_for(act),
    )
    c = np.zeros((1, M, N), np.float32)
    got = T.gemm_int8(a, b, c, spec)
    acc = exact_acc(A, Bt, -5, np.zeros(N))
    pre = acc.astype(np.float32) * (a_scale[0] * b_scale) + bias
    np.testing.assert_allclose(got, epilogue(pre, act), rtol=1e-5, atol=1e-5)


def test_both_uint8_with_k_tail_on_tensor_cores():
    # K = 40 is not a multiple of the 64-byte K stage: the zero-filled tail turns into -128 on
    # both operands and the launcher must take its products back out.
    rng = np.random.default_rng(31)
    a, b, spec, A, Bt = operands(rng, 40, 48, 40, True, True, pad=8)
    spec.update(
        a_zero=np.array([200], np.uint8),
        b_zero=np.array([17], np.uint8),
        expect_tensor_cores=not simple(),
    )
    c = np.zeros((1, 40, 48), np.int32)
    out = T.gemm_int8(a, b, c, spec)
    np.testing.assert_array_equal(out, exact_acc(A, Bt, 200, np.full(48, 17)).astype(np.int32))
