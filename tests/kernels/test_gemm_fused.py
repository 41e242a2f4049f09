"""The float32 GEMM entry points with a fused epilogue against numpy (float64 reference):
B packed on the fly, B prepacked, and A prepacked (constant weights on the left, as convolutions
use it), on strided views of A, B, C and the residual, at sizes around the 6x16 register tile
and the K-block (256 deep; with AVX-512, K in equal blocks of up to 1024), beta 0 / 1, each
activation with bias per row and per column, 1-3 threads. test_portable_paths reruns the file
with RUNNX_DISABLE_AVX2=1."""

import os
import subprocess
import sys
from math import erf

import numpy as np
import pytest
from runnx._C import _testing as T

MODES = ["epilogue", "packed_b", "packed_a"]
SIZES = [1, 5, 6, 7, 15, 16, 17, 33, 100]
# 27 triples (s[i], s[i+j], s[i+2j]) for j < 3 (indices mod 9): every size in every position with
# varied partners, so the tails of the 6x16 tile meet each other without all 729 products.
SHAPES = [(m, SIZES[(i + j) % 9], SIZES[(i + 2 * j) % 9])
          for i, m in enumerate(SIZES) for j in range(3)]
# Deeper K: several K-blocks (256; 1100 and 2100 for the blocks of up to 1024 that AVX-512 runs),
# so partial sums accumulate in C before the epilogue.
# N = 8, 24, 40: a right-edge panel of exactly 8 columns (the half-width kernel).
DEEP = [(7, 17, 300), (13, 33, 515), (100, 40, 257), (1, 100, 600), (33, 5, 513), (50, 24, 300), (7, 8, 40),
        (9, 40, 255), (20, 50, 256), (14, 40, 301), (7, 17, 1100), (13, 33, 2100)]
# Tall and narrow (a 1x1 convolution to a few channels: M = pixels, K = input channels): tiles of
# one or two panels run row groups outer with A prefetched ahead; M tails off the 6-row group,
# N one panel, a panel plus a half-width (8) or odd edge, K in one block and across two. A packed
# B of N <= 4 (an MLP's last layer) takes dot products: K tails off 8 and 16, rows off 4; one
# column of more than 4 rows puts each 64-row task's results in one row for the epilogue (2001
# rows: tasks on the pool, the last of 17 rows).
# N = 24 exactly runs a 4-row x 24-column kernel: rows off 4, K = 1. K = 1030 and 1100: two K-blocks
# where AVX-512 cuts K in blocks of up to 1024.
NARROW = [(200, 1, 96), (301, 8, 144), (233, 9, 33), (250, 16, 192), (197, 24, 144), (400, 31, 257),
          (121, 32, 96), (67, 24, 520), (1000, 24, 20), (130, 4, 300), (77, 2, 17), (5, 3, 7), (32, 1, 256),
          (2, 24, 50), (31, 24, 1), (45, 24, 96), (67, 3, 41), (9, 4, 16), (70, 4, 515), (67, 24, 1100),
          (121, 32, 1030), (2001, 1, 300)]

ACTS = {
    "": lambda v: v,
    "relu": lambda v: np.maximum(v, 0),
    "clip": lambda v: np.clip(v, -0.5, 1.5),
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "tanh": np.tanh,
    "gelu": lambda v: 0.5 * v * (1 + np.vectorize(erf)(v / np.sqrt(2))),
    "gelu_tanh": lambda v: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3))),
    # with the binding's alpha = 0.1 / shift = 0.5 and HardSwish's slope given as 1/6 below
    "leaky_relu": lambda v: np.where(v < 0, 0.1 * v, v),
    "hard_swish": lambda v: v * np.clip(v / 6 + 0.5, 0, 1),
}
ALPHA = {"hard_swish": 1 / 6}


def strided(rng, rows, cols, pad=5):
    """A [rows, cols] view with row stride cols + pad, starting 3 floats into its buffer."""
    big = rng.standard_normal((rows, cols + pad)).astype(np.float32)
    return big, big[:, 3:3 + cols]


def run_case(mode, m, n, k, beta, threads, bias_per_row, act, rng, scale=1.0):
    _, a = strided(rng, m, k)
    _, b = strided(rng, k, n, pad=7)
    b *= np.float32(scale / np.sqrt(max(k, 1)))
    c_big, c = strided(rng, m, n, pad=9)
    c0 = c.copy()
    if beta == 0.0:
        c[...] = np.nan  # beta == 0 ignores C's old contents, NaN included
    _, res = strided(rng, m, n, pad=4)
    bias = rng.standard_normal(m if bias_per_row else n).astype(np.float32)
    outside = c_big.copy()
    T.gemm_f32_fused(a, b, c, beta, threads, mode, bias, bias_per_row, res, act, -0.5, 1.5, ALPHA.get(act, 0.1))
    pre = a.astype(np.float64) @ b.astype(np.float64) + res + (bias[:, None] if bias_per_row else bias)
    if beta != 0.0:
        pre += beta * c0.astype(np.float64)
    tol = 2e-5 + 1e-5 * np.sqrt(k)
    np.testing.assert_allclose(c, ACTS[act](pre), rtol=tol, atol=tol, err_msg=f"{mode} {act}")
    # Nothing written outside C's columns (the row padding around the view).
    np.testing.assert_array_equal(c_big[:, :3], outside[:, :3])
    np.testing.assert_array_equal(c_big[:, 3 + n:], outside[:, 3 + n:])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m,n,k", SHAPES + DEEP)
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_bias_residual_relu(mode, m, n, k, beta):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    for threads, per_row in ((1, False), (2, True), (3, False)):
        run_case(mode, m, n, k, beta, threads, per_row, "relu", rng)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m,n,k", NARROW)
def test_tall_narrow(mode, m, n, k):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    for threads, per_row, act, beta in ((1, False, "relu", 0.0), (2, True, "sigmoid", 1.0), (3, False, "clip", 0.0),
                                        (2, False, "leaky_relu", 0.0)):
        run_case(mode, m, n, k, beta, threads, per_row, act, rng)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("bias_per_row", [False, True])
def test_each_activation(mode, act, bias_per_row):
    # Pre-activations spread over about +-4: the tails of exp/erf/tanh and both clip bounds.
    rng = np.random.default_rng(len(act) * 3 + bias_per_row)
    for (m, n, k), threads in zip([(17, 33, 15), (100, 16, 7), (6, 100, 300), (5, 1, 33)], (1, 2, 3, 2)):
        run_case(mode, m, n, k, 1.0 if m == 6 else 0.0, threads, bias_per_row, act, rng, scale=3.0)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "gelu", "gelu_tanh"])
def test_vector_math_error_bound(act):
    # The exp/tanh/erf polynomials (2e-7 absolute of float64, as sgemm_epilogue_avx2.cc states)
    # on a dense grid: K = 1 and B = 1 make C's pre-activations exactly the grid's values, so
    # the activation alone is measured, every lane of every vector, through 2 threads.
    x = np.concatenate([np.linspace(-12, 12, 24001), [-1e-6, 0.0, 1e-6, 0.3, -0.3]]).astype(np.float32)
    a = x[:, None].copy()
    b = np.ones((1, 40), np.float32)
    c = np.zeros((x.size, 40), np.float32)
    T.gemm_f32_fused(a, b, c, 0.0, 2, "packed_b", None, False, None, act)
    ref = ACTS[act](x.astype(np.float64))[:, None]
    # The bound, scaled by |x| where the activation multiplies by x (GELU), plus float32 rounding.
    bound = 2e-7 * np.maximum(1.0, np.abs(x.astype(np.float64)))[:, None] + 1.2e-7 * np.abs(ref)
    err = np.abs(c - ref)
    worst = int(np.argmax(err - bound)) // c.shape[1]
    assert np.all(err <= bound), f"{act}: error {err.max():.3g} at x = {x[worst]}"


@pytest.mark.parametrize("mode", MODES)
def test_no_epilogue_and_empty(mode):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((7, 5)).astype(np.float32), rng.standard_normal((5, 17)).astype(np.float32)
    c = np.full((7, 17), np.nan, np.float32)
    T.gemm_f32_fused(a, b, c, 0.0, 2, mode)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    # K = 0: C = act(beta * C + bias); M = 0 / N = 0: nothing happens.
    c = np.ones((4, 3), np.float32)
    bias = np.array([1, -3, 2], np.float32)
    T.gemm_f32_fused(np.zeros((4, 0), np.float32), np.zeros((0, 3), np.float32), c, 0.5, 1, mode, bias,
                     False, None, "relu")
    np.testing.assert_array_equal(c, np.tile([1.5, 0, 2.5], (4, 1)).astype(np.float32))
    for shape_a, shape_b in (((0, 4), (4, 3)), ((3, 4), (4, 0))):
        c = np.zeros((shape_a[0], shape_b[1]), np.float32)
        T.gemm_f32_fused(np.ones(shape_a, np.float32), np.ones(shape_b, np.float32), c, 0.0, 2, mode)


@pytest.mark.parametrize("mode", MODES)
def test_large_tiles_split_over_threads(mode):
    # Big enough to run on the pool (several row and column tiles, B chunks of packed_a).
    rng = np.random.default_rng(11)
    # Row groups and panels that do not split evenly (tiles of 66 and 72 rows), and rows that fit
    # one tile (columns split down to single panels).
    for m, n, k in ((130, 1100, 70), (260, 90, 1030), (500, 700, 40), (50, 600, 40)):
        for threads in (2, 3):
            run_case(mode, m, n, k, 0.0, threads, mode == "packed_a", "gelu", rng)


def test_wide_unpacked_b_packs_in_bounded_chunks():
    # B packed on the fly goes one K-block of one column chunk (at most 4 MB) at a time: correct
    # across chunks and K-blocks (under AVX-512, 2100 columns by 1100 are two chunks of two
    # 552-deep blocks; without, 4200 by 512 are two chunks of two 256-deep blocks), and the
    # calling thread's buffer stays within the bound where a whole 300-deep block of 30000
    # columns would be 9M floats.
    rng = np.random.default_rng(21)
    for m, n, k in ((9, 2100, 1100), (7, 4200, 512)):
        for threads, per_row, act in ((1, False, "gelu"), (2, True, "relu")):
            run_case("epilogue", m, n, k, 0.0, threads, per_row, act, rng)
    a = rng.standard_normal((5, 300)).astype(np.float32)
    b = rng.standard_normal((300, 30000)).astype(np.float32)
    c = np.zeros((5, 30000), np.float32)
    T.gemm_f32_fused(a, b, c, 0.0, 1, "epilogue")
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    assert T.gemm_pack_scratch_floats() <= 1 << 20


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [0, 7, 100, 255, 256, 257, 300, 513, 600, 1100])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_residual_sharing_c(mode, k, beta):
    # An op whose output takes over its residual's buffer (in place): C and the residual are one
    # array, over one K-block (used in place: every path must read it before its store, few-row
    # and right-edge tiles included) and several (C holds partial sums before the epilogue reads
    # it: each tile keeps a copy of its block), on one thread and split over several.
    rng = np.random.default_rng(k)
    for m, n, threads in ((1, 33, 1), (3, 40, 2), (4, 17, 1), (7, 9, 1), (50, 40, 1), (130, 200, 2), (197, 24, 2),
                         (121, 8, 1), (9, 1, 1), (70, 3, 2), (300, 700, 3)):
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        # in the store (relu, hard_swish) and swept over the stored tile (sigmoid)
        for act in ("relu", "sigmoid", "hard_swish"):
            c = rng.standard_normal((m, n)).astype(np.float32)
            ref = ACTS[act](a.astype(np.float64) @ b + (1 + beta) * c + bias)
            T.gemm_f32_fused(a, b, c, beta, threads, mode, bias, False, c, act, -0.5, 1.5, ALPHA.get(act, 0.1))
            np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4 * max(1, np.sqrt(k)), err_msg=f"{mode} {act} m={m}")


def test_residual_overlapping_c_shifted():
    # A residual that overlaps C but is not C itself (one row further on): copied before any store.
    rng = np.random.default_rng(5)
    for mode in MODES:
        for m, n, k in ((40, 50, 30), (130, 200, 600), (2, 30, 9)):
            buf = rng.standard_normal((m + 1, n)).astype(np.float32)
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((k, n)).astype(np.float32)
            c, res = buf[:m], buf[1:]
            ref = a.astype(np.float64) @ b + res
            T.gemm_f32_fused(a, b, c, 0.0, 2, mode, None, False, res, "")
            np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4 * np.sqrt(k), err_msg=f"{mode} m={m}")


def test_rejects_bad_mode():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="mode"):
        T.gemm_f32_fused(a, np.ones((3, 4), np.float32), np.zeros((2, 4), np.float32), mode="packed_c")


def test_shapes_cover_every_size_in_every_position():
    for pos in range(3):
        assert {s[pos] for s in SHAPES} == set(SIZES)


@pytest.mark.skipif(os.environ.get("RUNNX_DISABLE_AVX2") == "1", reason="already portable")
def test_portable_paths():
    """This file and test_gemm.py again with the AVX2 routines disabled (cpuid is read once per process)."""
    env = dict(os.environ, RUNNX_DISABLE_AVX2="1")
    plain = os.path.join(os.path.dirname(__file__), "test_gemm.py")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, plain, "-q", "-x", "-p", "no:cacheprovider"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
