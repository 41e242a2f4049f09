"""CUDA fused attention (online softmax) against float64 numpy softmax(scale*QK^T + mask) V."""

from __future__ import annotations

import numpy as np
import pytest
from runnx import _C

T = _C.cuda._testing if hasattr(_C, "cuda") and hasattr(_C.cuda, "_testing") else None


def reference(q, k, v, mask, scale):
    s = scale * np.einsum("bhid,bhjd->bhij", q.astype(np.float64), k.astype(np.float64))
    if mask is not None:
        s = s + mask.astype(np.float64)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bhij,bhje->bhie", p, v.astype(np.float64))


def contiguous_strides(shape):
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= n
    return list(reversed(st))


def run(
    kind, q, k, v, mask=None, mask_st=None, scale=0.3, *, k_transposed=False, merged_output=False
):
    """q, k, v as [B, heads, S, D] arrays; passes K as K^T storage or O as [B, S, heads*Dv] on request."""
    B, H, S, D = q.shape
    Sk, Dv = k.shape[2], v.shape[3]
    dtype = q.dtype
    spec = {
        "B": B,
        "heads": H,
        "S": S,
        "Sk": Sk,
        "D": D,
        "Dv": Dv,
        "scale": scale,
        "q_st": contiguous_strides(q.shape),
        "v_st": contiguous_strides(v.shape),
    }
    if k_transposed:
        kt = np.ascontiguousarray(k.transpose(0, 1, 3, 2))  # [B, H, D, Sk]
        b, h, d, s = contiguous_strides(kt.shape)
        spec["k_st"], k_buf = [b, h, s, d], kt
    else:
        spec["k_st"], k_buf = contiguous_strides(k.shape), k
    if merged_output:
        o = np.full((B, S, H * Dv), 7.0, dtype)
        spec["o_st"] = [S * H * Dv, Dv, H * Dv, 1]
    else:
        o = np.full((B, H, S, Dv), 7.0, dtype)
        spec["o_st"] = contiguous_strides(o.shape)
    if mask is not None:
        spec["mask"], spec["mask_st"] = mask.reshape(-1), mask_st
    out = T.attention(kind, q.reshape(-1), k_buf.reshape(-1), v.reshape(-1), o, spec)
    if merged_output:
        out = out.reshape(B, S, H, Dv).transpose(0, 2, 1, 3)
    return out


def tol(dtype):
    # fp32 math throughout; fp16 adds input/output rounding (outputs are averages of |v| <= 1).
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-2, "atol": 2e-3}


SHAPES = [  # B, heads, S, Sk, D, Dv
    (1, 1, 1, 1, 1, 1),
    (2, 3, 5, 7, 8, 8),
    (1, 2, 33, 31, 64, 64),
    (2, 12, 128, 128, 64, 64),
    (1, 1, 70, 300, 128, 96),
    (1, 2, 17, 40, 20, 128),
]


@pytest.mark.parametrize("kind", ["f32", "f16"])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_attention_matches_numpy(kind, shape):
    B, H, S, Sk, D, Dv = shape
    rng = np.random.default_rng(sum(shape))
    dtype = np.float32 if kind == "f32" else np.float16
    q = rng.uniform(-1, 1, (B, H, S, D)).astype(dtype)
    k = rng.uniform(-1, 1, (B, H, Sk, D)).astype(dtype)
    v = rng.uniform(-1, 1, (B, H, Sk, Dv)).astype(dtype)
    scale = 1 / np.sqrt(max(D, 1)) * 3  # sharper than usual: exercises the running-max rescale
    out = run(kind, q, k, v, scale=scale)
    np.testing.assert_allclose(
        out.astype(np.float64), reference(q, k, v, None, scale), **tol(dtype)
    )


@pytest.mark.parametrize("kind", ["f32", "f16"])
def test_padding_mask_broadcast_over_heads_and_strided_layouts(kind):
    B, H, S, Sk, D = 2, 4, 45, 45, 32
    rng = np.random.default_rng(9)
    dtype = np.float32 if kind == "f32" else np.float16
    q = rng.uniform(-1, 1, (B, H, S, D)).astype(dtype)
    k = rng.uniform(-1, 1, (B, H, Sk, D)).astype(dtype)
    v = rng.uniform(-1, 1, (B, H, Sk, D)).astype(dtype)
    # BERT's additive padding mask [B, 1, 1, Sk]: the last keys of batch 1 are masked out,
    # one with -inf (exp(-inf) = 0 must not become NaN) and the rest with -10000.
    mask = np.zeros((B, 1, 1, Sk), dtype)
    mask[1, ..., 30:] = -10000
    mask[1, ..., 44] = -np.inf
    mask_st = [Sk, 0, 0, 1]
    out = run(kind, q, k, v, mask, mask_st, 0.25, k_transposed=True, merged_output=True)
    np.testing.assert_allclose(out.astype(np.float64), reference(q, k, v, mask, 0.25), **tol(dtype))


def test_full_mask_per_head_and_a_leading_all_masked_tile():
    # A [1, H, S, Sk] mask that hides the whole first key tile (32 keys) from every query: the online
    # softmax starts from a tile with no live key.
    B, H, S, Sk, D = 1, 2, 9, 70, 16
    rng = np.random.default_rng(10)
    q = rng.uniform(-1, 1, (B, H, S, D)).astype(np.float32)
    k = rng.uniform(-1, 1, (B, H, Sk, D)).astype(np.float32)
    v = rng.uniform(-1, 1, (B, H, Sk, D)).astype(np.float32)
    mask = rng.uniform(-2, 2, (1, H, S, Sk)).astype(np.float32)
    mask[..., :32] = -np.inf
    out = run("f32", q, k, v, mask, [0, S * Sk, Sk, 1], 0.5)
    np.testing.assert_allclose(out, reference(q, k, v, mask, 0.5), rtol=1e-4, atol=1e-5)


def test_head_size_over_the_limit_is_refused():
    q = np.zeros((1, 1, 2, 130), np.float32)
    with pytest.raises(NotImplementedError, match="exceed"):
        run("f32", q, q, q)
