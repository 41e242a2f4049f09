"""float64 references for the CUDA GEMM / convolution / attention launchers' tests."""

from __future__ import annotations

import math

import numpy as np
from runnx import _C


def simple() -> bool:
    """Whether the launchers take their simple kernels now (RUNNX_CUDA_SIMPLE=1, or cudaops'
    kernel_path fixture): tests that check the fast path was chosen expect the simple one then."""
    return bool(_C.cuda._testing.use_simple_kernels())


# csrc/cuda/kernels/epilogue.h Activation values.
ACT = {
    "none": 0,
    "relu": 1,
    "clip": 2,
    "sigmoid": 3,
    "tanh": 4,
    "gelu": 5,
    "gelu_tanh": 6,
    "leaky_relu": 7,
    "hardswish": 8,
}
# (p0, p1) each activation is tested with.
ACT_PARAMS = {"clip": (-0.5, 0.75), "leaky_relu": (0.1, 0.0), "hardswish": (1 / 6, 0.5)}

_erf = np.vectorize(math.erf, otypes=[np.float64])


def activation(v: np.ndarray, name: str, p0: float = 0.0, p1: float = 0.0) -> np.ndarray:
    v = v.astype(np.float64)
    if name == "none":
        return v
    if name == "relu":
        return np.maximum(v, 0)
    if name == "clip":
        return np.clip(v, p0, p1)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-v))
    if name == "tanh":
        return np.tanh(v)
    if name == "gelu":
        return 0.5 * v * (1 + _erf(v / math.sqrt(2)))
    if name == "gelu_tanh":
        return 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))
    if name == "leaky_relu":
        return np.where(v >= 0, v, p0 * v)
    if name == "hardswish":
        return v * np.clip(p0 * v + p1, 0, 1)
    raise ValueError(name)


def epilogue(acc, act="none", bias=None, residual=None, alpha=1.0, beta=1.0):
    """act(alpha * acc + bias + beta * residual) in float64 (bias broadcast along the last axis)."""
    v = alpha * np.asarray(acc, np.float64)
    if bias is not None:
        v = v + np.asarray(bias, np.float64)
    if residual is not None:
        v = v + beta * np.asarray(residual, np.float64)
    p0, p1 = ACT_PARAMS.get(act, (0.0, 0.0))
    return activation(v, act, p0, p1)


def spec_for(act: str) -> dict:
    """The launcher spec keys that select `act` (with its test parameters)."""
    p0, p1 = ACT_PARAMS.get(act, (0.0, 0.0))
    return {"act": ACT[act], "p0": p0, "p1": p1}


def assert_close_scaled(actual, expected, scale, rtol, atol_rel, what=""):
    """|actual - expected| <= rtol*|expected| + atol_rel*scale (+ a tiny floor), elementwise.

    `scale` is the size of the terms that were summed (e.g. |A| @ |B|): rounding error in a long
    sum grows with it, not with the (possibly cancelled) result.
    """
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    bound = rtol * np.abs(expected) + atol_rel * np.asarray(scale, np.float64) + 1e-6
    bad = ~(np.abs(actual - expected) <= bound)
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at {idx}: "
            f"got {actual[idx]!r}, expected {expected[idx]!r} (bound {bound[idx]!r})"
        )
