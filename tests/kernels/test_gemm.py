"""GEMM kernels against numpy (float64 reference) at awkward sizes: tails of the 6x16 tile,
size 1, K = 0, strided leading dimensions, beta 0 / 1 / other, 1 and several threads."""

import numpy as np
import pytest
from runnx._C import _testing as T

IMPLS = ["dispatch"] + (["avx2"] if T.has_avx2() else [])
SHAPES = [
    (1, 1, 1), (1, 37, 19), (3, 5, 7), (5, 16, 9), (6, 16, 256), (7, 17, 257), (13, 33, 300),
    (64, 64, 64), (97, 130, 515), (200, 300, 70), (4, 1000, 3), (10, 10, 0), (0, 5, 5), (9, 20, 255),
    (33, 47, 513), (19, 50, 1100),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_gemm_matches_numpy(impl, m, n, k, beta):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    if beta == 0.0:
        c0[...] = np.nan  # beta == 0 must ignore C's old contents, NaN included
    c = c0.copy()
    T.gemm_f32(a, b, c, beta, 2, impl)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    if beta != 0.0:
        expected += beta * c0.astype(np.float64)
    np.testing.assert_allclose(c, expected, rtol=1e-4, atol=1e-4 * max(1, np.sqrt(k)))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("threads", [1, 3])
def test_gemm_strided_views(impl, threads):
    rng = np.random.default_rng(7)
    big_a = rng.standard_normal((40, 90)).astype(np.float32)
    big_b = rng.standard_normal((70, 60)).astype(np.float32)
    big_c = np.zeros((40, 80), np.float32)
    a, b, c = big_a[:, 5:70], big_b[3:68, 7:50], big_c[:, 10:53]
    T.gemm_f32(a, b, c, 0.0, threads, impl)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    assert not big_c[:, :10].any() and not big_c[:, 53:].any()  # nothing written outside C


# ---- prepacked B and the fused epilogue ------------------------------------------------------

def _erf(x):
    from math import erf
    return np.vectorize(erf)(x)


ACTS = {
    "": lambda v: v,
    "relu": lambda v: np.maximum(v, 0),
    "clip": lambda v: np.clip(v, -0.5, 1.5),
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "tanh": np.tanh,
    "gelu": lambda v: 0.5 * v * (1 + _erf(v / np.sqrt(2))),
    "gelu_tanh": lambda v: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3))),
}
# (130, 400, 300): on 2 threads one row tile with a 4-row tail group, split by columns only.
# K = 1100 and 2100: two and three K-blocks where AVX-512 cuts K in blocks of up to 1024.
EPI_SHAPES = [(1, 1, 1), (1, 37, 19), (1, 768, 300), (2, 17, 5), (5, 16, 9), (6, 33, 256), (7, 17, 257),
              (13, 100, 300), (97, 130, 515), (128, 64, 768), (130, 400, 300), (130, 400, 1100), (97, 130, 2100),
              (10, 10, 0)]


@pytest.mark.parametrize("m,n,k", EPI_SHAPES)
@pytest.mark.parametrize("packed,transposed", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_packed_and_epilogue_bias_residual(m, n, k, packed, transposed, threads):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    for beta in (0.0, 0.5):
        c = c0.copy()
        T.gemm_f32_ex(a, np.ascontiguousarray(b.T) if transposed else b, c, beta, threads, packed, transposed,
                      bias, False, res, "relu")
        ref = a.astype(np.float64) @ b + beta * c0 + bias + res
        np.testing.assert_allclose(c, np.maximum(ref, 0), rtol=1e-4, atol=1e-4 * max(1, np.sqrt(k)))


# Narrow tiles: exactly two panels (32 columns) wide, N = 32 on one thread and the MLP's 256 columns
# cut into 32-column tiles on two threads (the 6x32 kernel under AVX-512), 24 columns (the 24-column
# kernel: 4-row steps, 6 under AVX-512) and one panel; rows with 1-5 tail rows, K over one and two
# K-blocks (partial sums in C), bias, residual and ReLU at the store.
@pytest.mark.parametrize("m", [4, 5, 7, 13, 32, 64])
@pytest.mark.parametrize("n,threads", [(32, 1), (32, 2), (256, 2), (48, 1), (24, 1), (24, 2), (16, 1), (16, 2)])
@pytest.mark.parametrize("k", [5, 256, 1100])
@pytest.mark.parametrize("packed", [False, True])
def test_gemm_narrow_tiles(m, n, threads, k, packed):
    rng = np.random.default_rng(m * 31 + n + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32)
    c = np.zeros((m, n), np.float32)
    T.gemm_f32_ex(a, b, c, 0.0, threads, packed, False, bias, False, res, "relu")
    ref = np.maximum(a.astype(np.float64) @ b + bias + res, 0)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 23, 40), (3, 45, 17), (50, 70, 33)])
def test_gemm_epilogue_activations(act, packed, m, n, k):
    # Inputs scaled so pre-activations span the interesting range (tails of erf/tanh/exp).
    rng = np.random.default_rng(len(act) + m)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = (rng.standard_normal((k, n)) * (4 / np.sqrt(k))).astype(np.float32)
    bias = rng.standard_normal(m).astype(np.float32)  # per row, as NCHW convolutions use it
    c = np.full((m, n), np.nan, np.float32)
    T.gemm_f32_ex(a, b, c, 0.0, 2, packed, False, bias, True, None, act, -0.5, 1.5)
    pre = a.astype(np.float64) @ b + bias[:, None]
    np.testing.assert_allclose(c, ACTS[act](pre), rtol=2e-5, atol=2e-5)


def test_gemm_epilogue_activation_extremes():
    # Large magnitudes, zeros and tiny values through the vector exp/erf/tanh (no NaN, right limits).
    vals = np.array([-100, -30, -9, -3, -1e-3, -1e-6, 0, 1e-6, 1e-3, 0.29, 0.31, 3, 9, 30, 100], np.float32)
    a = vals[:, None].astype(np.float32)
    b = np.ones((1, 1), np.float32)
    for act, f in ACTS.items():
        if act == "clip":
            continue
        c = np.zeros((len(vals), 1), np.float32)
        T.gemm_f32_ex(a, b, c, 0.0, 1, True, False, None, False, None, act)
        np.testing.assert_allclose(c[:, 0], f(vals.astype(np.float64)), rtol=1e-5, atol=3e-7, err_msg=act)


@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_epilogue_activation_extremes_along_rows(threads):
    # The same values along rows of 37 columns (two 16-column vectors and a tail, where AVX-512's
    # GELU sweep takes 16 at a time), 7 rows, with a column bias.
    vals = np.array([-100, -30, -9, -3, -1e-3, -1e-6, 0, 1e-6, 1e-3, 0.29, 0.31, 3, 9, 30, 100], np.float32)
    row = np.resize(vals, 37).astype(np.float32)
    bias = np.linspace(-0.5, 0.5, 37).astype(np.float32)
    a = np.ones((7, 1), np.float32)
    for act, f in ACTS.items():
        if act == "clip":
            continue
        c = np.zeros((7, 37), np.float32)
        T.gemm_f32_ex(a, row[None, :], c, 0.0, threads, True, False, bias, False, None, act)
        ref = f((row + bias).astype(np.float64))
        np.testing.assert_allclose(c, np.broadcast_to(ref, c.shape), rtol=1e-5, atol=3e-7, err_msg=act)


def test_gemm_ex_rejects_bad_arguments():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError):
        T.gemm_f32_ex(a, np.ones((4, 5), np.float32), np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="activation"):
        T.gemm_f32_ex(a, np.ones((3, 5), np.float32), np.zeros((2, 5), np.float32), act="swish")


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 7, 13])
@pytest.mark.parametrize("k", [1, 3, 4, 5, 255, 257, 515, 1024, 2100])
@pytest.mark.parametrize("n", [17, 41, 100, 300])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemm_packed_few_rows_strided_a(m, k, n, threads):
    # Few rows of A read in place (a view with row stride > K) against a packed B, K not a multiple
    # of the kernel's interleaved accumulator sets nor of the K-block. From 128K multiply-adds the
    # GEMV's columns are split across the threads: one range a thread while B fits the L2s (m = 3,
    # n = 100 or 300, k = 515 or 257), four beyond (n = 300 with k = 515; n = 100 with k = 2100: 7
    # panels, fewer than the ranges wanted).
    rng = np.random.default_rng(m * 31 + k)
    big_a = rng.standard_normal((m, k + 9)).astype(np.float32)
    a = big_a[:, 4:4 + k]
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    T.gemm_f32_ex(a, b, c, 0.0, threads, True, False, bias, False, None, "")
    np.testing.assert_allclose(c, a.astype(np.float64) @ b + bias, rtol=1e-4, atol=1e-4 * max(1, np.sqrt(k)))


# B given as B^T and packed once: full 16-column panels go through 8x8 transposes, the K tail and a
# partial last panel element by element; K over one K-block (256 rows, up to 1024 with AVX-512) and
# N tails 1..15 included.
@pytest.mark.parametrize("k,n", [(1, 16), (7, 17), (8, 16), (9, 33), (15, 5), (16, 31), (17, 100), (255, 16),
                                 (256, 47), (257, 1000), (300, 15), (1280, 33)])
def test_gemm_packed_transposed_b_shapes(k, n):
    rng = np.random.default_rng(k * 31 + n)
    a = rng.standard_normal((7, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.zeros((7, n), np.float32)
    T.gemm_f32_ex(a, np.ascontiguousarray(b.T), c, 0.0, 1, True, True, None, False, None, "")
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4 * max(1, np.sqrt(k)))


@pytest.mark.skipif(not T.uses_avx512(), reason="the AVX-512 kernels are not in use here")
def test_paths_without_the_avx512_kernel():
    """On an AVX-512 CPU the sgemm, the pointwise expansion, the channels-last depthwise and the
    direct stems run in 512-bit registers; the GEMM and conv kernel tests again with
    RUNNX_DISABLE_AVX512=1 cover the 256-bit kernels they replace (what CPUs without AVX-512 run).
    cpuid and the switch are read once per process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    files = [str(here / f) for f in ("test_gemm.py", "test_gemm_fused.py", "test_pointwise_conv_epilogue.py",
                                     "test_conv_algos.py", "test_conv_nhwc.py", "test_nhwc_dw_project.py")]
    r = subprocess.run(
        [sys.executable, "-m", "pytest", *files, "-q", "-x", "-p", "no:cacheprovider", "-k", "not portable_paths"],
        env=dict(os.environ, RUNNX_DISABLE_AVX512="1"), capture_output=True, text=True, timeout=900, check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout.splitlines()[-1]
