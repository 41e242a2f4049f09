"""GEMM kernels against numpy (float64 reference) at awkward sizes: tails of the 6x16 tile,
size 1, K = 0, strided leading dimensions, beta 0 / 1 / other, 1 and several threads."""

import numpy as np
import pytest

from runnx._C import _testing as T

IMPLS = ["dispatch"] + (["avx2"] if T.has_avx2() else [])
SHAPES = [
    (1, 1, 1), (1, 37, 19), (3, 5, 7), (5, 16, 9), (6, 16, 256), (7, 17, 257), (13, 33, 300),
    (64, 64, 64), (97, 130, 515), (200, 300, 70), (4, 1000, 3), (10, 10, 0), (0, 5, 5),
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
