"""CUDA implicit-GEMM convolution (NHWC x KRSC -> NHWC) against a float64 numpy convolution."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from runnx import _C

sys.path.insert(0, os.path.dirname(__file__))
from gemm_reference import assert_close_scaled, epilogue, simple, spec_for
from kernel_ref import kernel_path  # noqa: F401

T = _C.cuda._testing if hasattr(_C, "cuda") and hasattr(_C.cuda, "_testing") else None


def conv_nhwc(x, w, stride, pads, dil):
    """float64 reference; pads = (top, left, bottom, right); also returns sum |x||w| per output."""
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = stride, pads, dil
    N, H, W, C = x.shape
    K, R, S, _ = w.shape
    P = (H + pt + pb - dh * (R - 1) - 1) // sh + 1
    Q = (W + pl + pr - dw * (S - 1) - 1) // sw + 1
    xp = np.zeros((N, H + pt + pb, W + pl + pr, C))
    xp[:, pt : pt + H, pl : pl + W] = x
    y = np.zeros((N, P, Q, K))
    mag = np.zeros((N, P, Q, K))
    for r in range(R):
        for s in range(S):
            patch = xp[
                :, r * dh : r * dh + (P - 1) * sh + 1 : sh, s * dw : s * dw + (Q - 1) * sw + 1 : sw
            ]
            y += patch @ w[:, r, s, :].astype(np.float64).T
            mag += np.abs(patch) @ np.abs(w[:, r, s, :].astype(np.float64)).T
    return y, mag


CASES = [
    # N, H, W, C, K, R, S, stride, pads (t, l, b, r), dilation
    (1, 1, 1, 8, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)),
    (2, 5, 7, 8, 16, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)),
    (1, 7, 7, 16, 24, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (2, 9, 8, 8, 5, 3, 3, (2, 2), (1, 1, 0, 0), (1, 1)),
    (1, 10, 11, 24, 33, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2)),
    (1, 17, 15, 3, 8, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1)),  # C = 3: the stem; SIMT for fp16
    (3, 6, 6, 5, 7, 2, 3, (1, 2), (0, 1, 1, 0), (1, 1)),
    (1, 14, 14, 64, 130, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),  # N tile tail (130 = 128 + 2)
]


def run_case(rng, kind, case, act="none", with_bias=False, with_residual=False, split_k=0):
    N, H, W, C, K, R, S, stride, pads, dil = case
    dtype = np.float32 if kind == "f32" else np.float16
    x = rng.uniform(-1, 1, (N, H, W, C)).astype(dtype)
    w = rng.uniform(-1, 1, (K, R, S, C)).astype(dtype)
    expected, mag = conv_nhwc(x.astype(np.float64), w, stride, pads, dil)
    spec = {
        "stride_h": stride[0],
        "stride_w": stride[1],
        "pad_h": pads[0],
        "pad_w": pads[1],
        "dil_h": dil[0],
        "dil_w": dil[1],
    }
    spec.update(spec_for(act))
    bias = residual = None
    if with_bias:
        bias = rng.uniform(-1, 1, K).astype(dtype)
        spec["bias"] = bias
    if with_residual:
        residual = rng.uniform(-1, 1, expected.shape).astype(dtype)
        spec["residual"] = residual
    if split_k:
        spec["split_k"] = split_k
    if kind == "f16":
        spec["expect_tensor_cores"] = C % 8 == 0 and not simple()
    y = np.full(expected.shape, 7.0, dtype)
    out = T.conv(kind, x, w, y, spec)
    assert out.dtype == dtype
    ref = epilogue(expected, act, bias, residual)
    loose = dtype == np.float16
    assert_close_scaled(
        out, ref, mag + 2, 1e-2 if loose else 1e-5, 1e-3 if loose else 1e-5, f"{kind} {case} {act}"
    )


@pytest.mark.usefixtures("kernel_path")  # fast and simple kernels
@pytest.mark.parametrize("kind", ["f32", "f16"])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_conv_matches_numpy(kind, case):
    run_case(np.random.default_rng(hash(case) % 2**32), kind, case)


@pytest.mark.usefixtures("kernel_path")  # fast and simple kernels
@pytest.mark.parametrize("kind", ["f32", "f16"])
@pytest.mark.parametrize("act", ["relu", "clip", "hardswish", "leaky_relu", "sigmoid"])
def test_conv_fused_epilogue(kind, act):
    run_case(np.random.default_rng(5), kind, CASES[3], act=act, with_bias=True, with_residual=True)


def test_conv_f16_split_k():
    # A deep layer at batch 1: few output tiles, long K = 3*3*64; split three ways, epilogue after.
    if simple():
        pytest.skip("split-K is a tensor-core path")
    case = (1, 7, 7, 64, 40, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1))
    run_case(
        np.random.default_rng(8),
        "f16",
        case,
        act="relu",
        with_bias=True,
        with_residual=True,
        split_k=3,
    )
