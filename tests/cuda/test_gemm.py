"""CUDA GEMM launchers (fp32 SIMT, fp16 tensor cores + SIMT fallback) against float64 numpy.

Operands travel as flat buffers with explicit leading dimensions and batch strides, so each case
also checks the launcher's indexing: padded rows (lda > K), a padded output whose gap elements
must stay untouched, B given as B^T, and broadcast batch operands (stride 0).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from runnx import _C

sys.path.insert(0, os.path.dirname(__file__))
from gemm_reference import ACT, assert_close_scaled, epilogue, simple, spec_for

T = _C.cuda._testing if hasattr(_C, "cuda") and hasattr(_C.cuda, "_testing") else None
SENTINEL = 7.0


def padded(n, pad):
    """Leading dimension n + pad; pad = "align8" rounds up to a multiple of 8 first (16-byte fp16 rows)."""
    return -(-n // 8) * 8 + 8 if pad == "align8" else n + pad


def layout_case(rng, M, N, K, dtype, *, trans_b=False, pad=0, batch=(1, 1), b_broadcast=False):
    """Random operands laid out as the launcher reads them; returns (a_buf, b_buf, c_buf, spec, A, B)."""
    bo, bi = batch
    nb = bo * bi
    lda, ldc = padded(K, pad), padded(N, pad)
    ldb = padded(K if trans_b else N, pad)
    A = rng.uniform(-1, 1, (nb, M, K)).astype(dtype)
    nbb = 1 if b_broadcast else nb
    B = rng.uniform(-1, 1, (nbb, K, N)).astype(dtype)
    a_buf = np.zeros((nb, M, lda), dtype)
    a_buf[:, :, :K] = A
    if trans_b:
        b_buf = np.zeros((nbb, N, ldb), dtype)
        b_buf[:, :, :K] = B.transpose(0, 2, 1)
    else:
        b_buf = np.zeros((nbb, K, ldb), dtype)
        b_buf[:, :, :N] = B
    spec = {
        "M": M,
        "N": N,
        "K": K,
        "lda": lda,
        "ldb": ldb,
        "ldc": ldc,
        "trans_b": trans_b,
        "batch_outer": bo,
        "batch_inner": bi,
    }
    a_mat, b_mat, c_mat = M * lda, b_buf[0].size, M * ldc
    spec.update(a_outer=bi * a_mat, a_inner=a_mat, c_outer=bi * c_mat, c_inner=c_mat)
    if not b_broadcast:
        spec.update(b_outer=bi * b_mat, b_inner=b_mat)
    c_buf = np.full((nb, M, ldc), SENTINEL, np.float32)
    return a_buf.reshape(-1), b_buf.reshape(-1), c_buf, spec, A, B


def reference(A, B):
    return np.matmul(A.astype(np.float64), B.astype(np.float64))


def abs_scale(A, B):
    return np.matmul(np.abs(A.astype(np.float64)), np.abs(B.astype(np.float64)))


def check_output(c, spec, expected, scale, rtol, atol_rel, what):
    N = spec["N"]
    assert_close_scaled(c[:, :, :N], expected, scale, rtol, atol_rel, what)
    assert np.all(c[:, :, N:].astype(np.float32) == SENTINEL), (
        f"{what}: wrote outside the output columns"
    )


SHAPES = [
    (1, 1, 1),
    (1, 7, 3),
    (5, 1, 9),
    (3, 5, 0),  # K = 0: the epilogue of zero
    (17, 33, 65),
    (64, 64, 16),
    (129, 130, 31),
    (70, 200, 257),
    (200, 3, 1000),
]


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_f32_matches_numpy(M, N, K, trans_b):
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    a, b, c, spec, A, B = layout_case(rng, M, N, K, np.float32, trans_b=trans_b, pad=3)
    out = T.gemm("f32", a, b, c, spec)
    # fp32 sums of up to 1000 terms: the rounding error grows with the summed magnitudes
    # (|A| @ |B|), about sqrt(K) * 6e-8 of them typically; 1e-5 leaves room for the worst element.
    check_output(out, spec, reference(A, B), abs_scale(A, B), 1e-5, 1e-5, f"f32 {M}x{N}x{K}")


@pytest.mark.parametrize("kind", ["f16", "f16_f32out", "f16_simt", "f16_simt_f32out"])
@pytest.mark.parametrize("M,N,K", SHAPES + [(256, 384, 512), (130, 250, 72)])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_f16_matches_numpy(kind, M, N, K, trans_b):
    rng = np.random.default_rng(M * 1000 + N * 10 + K + 7)
    # Rows padded to 16-byte multiples: "f16" takes the tensor-core path with tails in M, N and K
    # (K = 65 leaves one valid element in the last 16-byte chunk).
    a, b, c, spec, A, B = layout_case(rng, M, N, K, np.float16, trans_b=trans_b, pad="align8")
    assert T.gemm_f16_uses_tensor_cores(spec) == (not simple())
    out_dtype = np.float32 if kind.endswith("f32out") else np.float16
    c = c.astype(out_dtype)
    out = T.gemm(kind, a, b, c, spec)
    assert out.dtype == out_dtype
    # fp16 inputs are exact in the reference; fp32 accumulation; fp16 output rounds at 2^-11.
    check_output(
        out,
        spec,
        reference(A, B),
        abs_scale(A, B),
        1e-2 if out_dtype == np.float16 else 1e-5,
        2e-5 if out_dtype == np.float32 else 1e-3,
        f"{kind} {M}x{N}x{K} trans_b={trans_b}",
    )


# Row strides K + 1 that are not a multiple of 8 halves (16 bytes): 66 and 10.
@pytest.mark.parametrize("M,N,K", [(17, 33, 65), (130, 129, 9)])
def test_gemm_f16_unaligned_rows_fall_back(M, N, K):
    rng = np.random.default_rng(M + N + K)
    a, b, c, spec, A, B = layout_case(rng, M, N, K, np.float16, trans_b=True, pad=1)
    assert not T.gemm_f16_uses_tensor_cores(spec)
    out = T.gemm("f16_f32out", a, b, c, spec)
    check_output(out, spec, reference(A, B), abs_scale(A, B), 1e-5, 2e-5, "unaligned f16")


def test_f16_tensor_core_path_is_taken_when_aligned():
    aligned = {"M": 128, "N": 128, "K": 64, "lda": 64, "ldb": 128, "ldc": 128}
    assert T.gemm_f16_uses_tensor_cores(aligned) == (not simple())
    assert not T.gemm_f16_uses_tensor_cores(dict(aligned, lda=63))
    assert not T.gemm_f16_uses_tensor_cores(dict(aligned, ldb=100))
    assert not T.gemm_f16_uses_tensor_cores(aligned, a_offset_bytes=2)
    assert not T.gemm_f16_uses_tensor_cores(dict(aligned, batch_outer=2, a_outer=8 * 64 + 2))


@pytest.mark.parametrize("kind", ["f32", "f16", "f16_f32out"])
@pytest.mark.parametrize("act", list(ACT))
def test_gemm_epilogue(kind, act):
    rng = np.random.default_rng(ACT[act])
    M, N, K = 67, 45, 40
    dtype = np.float32 if kind == "f32" else np.float16
    out_dtype = np.float16 if kind == "f16" else np.float32
    a, b, c, spec, A, B = layout_case(rng, M, N, K, dtype, pad="align8", batch=(1, 2))
    c = c.astype(out_dtype)
    bias = rng.uniform(-1, 1, N).astype(out_dtype)
    residual = rng.uniform(-1, 1, (2, M, N)).astype(out_dtype)
    spec.update(
        spec_for(act),
        alpha=0.5,
        beta=-1.5,
        bias=bias,
        residual=residual.reshape(-1),
        ldr=N,
        residual_batch_stride=M * N,
    )
    out = T.gemm(kind, a, b, c, spec)
    expected = epilogue(reference(A, B), act, bias, residual, alpha=0.5, beta=-1.5)
    loose = out_dtype == np.float16
    check_output(
        out,
        spec,
        expected,
        0.5 * abs_scale(A, B) + 2.5,
        1e-2 if loose else 1e-5,
        1e-3 if loose else 1e-5,
        f"{kind} {act}",
    )


@pytest.mark.parametrize("kind", ["f32", "f16", "f16_simt"])
def test_gemm_batched_with_broadcast_b(kind):
    rng = np.random.default_rng(3)
    dtype = np.float32 if kind == "f32" else np.float16
    M, N, K = 40, 72, 24
    a, b, c, spec, A, B = layout_case(
        rng, M, N, K, dtype, pad="align8", batch=(3, 5), b_broadcast=True
    )
    c = c.astype(np.float32 if kind == "f32" else np.float16)
    out = T.gemm(kind, a, b, c, spec)
    expected = reference(A, np.broadcast_to(B, (15, K, N)))
    check_output(
        out, spec, expected, abs_scale(A, np.broadcast_to(B, (15, K, N))), 1e-2, 1e-3, kind
    )


def test_gemm_batch_beyond_grid_limit():
    # 70000 batch entries: more than gridDim.y allows, so the kernel must loop over them.
    rng = np.random.default_rng(4)
    a, b, c, spec, A, B = layout_case(rng, 1, 2, 3, np.float32, batch=(70000, 1))
    out = T.gemm("f32", a, b, c, spec)
    check_output(out, spec, reference(A, B), abs_scale(A, B), 1e-5, 2e-6, "batch 70000")


def test_gemm_empty_launches_nothing():
    rng = np.random.default_rng(5)
    for M, N in [(0, 5), (4, 0)]:
        a, b, c, spec, _A, _B = layout_case(rng, max(M, 1), max(N, 1), 3, np.float16)
        spec.update(M=M, N=N)
        out = T.gemm("f16", a, b, c.astype(np.float16), spec)
        assert np.all(out == SENTINEL)


def test_simple_and_tensor_core_f16_agree():
    rng = np.random.default_rng(6)
    a, b, c, spec, A, B = layout_case(rng, 300, 260, 200, np.float16, trans_b=True)
    assert T.gemm_f16_uses_tensor_cores(spec) == (not simple())
    fast = T.gemm("f16_f32out", a, b, c, spec)
    plain = T.gemm("f16_simt_f32out", a, b, c, spec)
    # Same fp16 products, fp32 sums in a different order.
    assert_close_scaled(fast, plain, abs_scale(A, B), 1e-5, 1e-6, "fast vs simple")


def test_timing_hooks_report_positive_times():
    assert T.time_gemm_f16(256, 256, 256, 2) > 0
    assert T.time_gemm("f32", 64, 64, 64, 2) > 0
    assert T.time_gemm("int8", 128, 128, 128, 2) > 0
    assert T.peak_mma("f16", 64) > 0
    assert T.peak_mma("int8", 64) > 0


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K,splits", [(100, 200, 1000, 3), (130, 70, 40, 5), (1, 768, 3072, 8)])
def test_gemm_f16_split_k(trans_b, M, N, K, splits):
    # (130, 70, 40, 5): K has 2 stages, so three of the five splits are empty and add zeros.
    if simple():
        pytest.skip("split-K is a tensor-core path")
    rng = np.random.default_rng(M + N + K + splits)
    a, b, c, spec, A, B = layout_case(rng, M, N, K, np.float16, trans_b=trans_b, pad="align8")
    bias = rng.uniform(-1, 1, N).astype(np.float16)
    spec.update(spec_for("gelu"), bias=bias, split_k=splits)
    out = T.gemm("f16", a, b, c.astype(np.float16), spec)
    expected = epilogue(reference(A, B), "gelu", bias)
    check_output(out, spec, expected, abs_scale(A, B) + 1, 1e-2, 1e-3, f"split-K {splits}")
