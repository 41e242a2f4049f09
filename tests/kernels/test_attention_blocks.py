"""com.runnx ScaledDotProductAttention against numpy: query-row blocks of every height the block
chooser picks (short and long key sequences, one head or many, 1-3 threads), masks per key,
per row and full, and size-1 sequences."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import runnx
from helpers import make_model, threads

f32 = np.float32


def _reference(q, kt, v, mask, scale):
    s = (q.astype(np.float64) @ kt) * scale
    if mask is not None:
        s = s + mask
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v


CASES = [  # q, kt, v, mask
    ((1, 12, 128, 64), (1, 12, 64, 128), (1, 12, 128, 64), (1, 1, 1, 128)),  # BERT base, one item
    ((1, 2, 300, 16), (1, 2, 16, 700), (1, 2, 700, 8), (1, 1, 300, 700)),    # long keys: short blocks
    ((1, 1, 37, 5), (1, 1, 5, 3000), (1, 1, 3000, 3), (37, 1)),               # per-row mask, 1 head
    ((3, 1, 9), (3, 9, 1), (3, 1, 4), None),                                  # S = Sk = 1
    ((2, 3, 65, 8), (2, 3, 8, 65), (2, 3, 65, 8), None),                      # S just past a block
]


@pytest.mark.parametrize("q,kt,v,mask", CASES)
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_attention_blocks_match_numpy(q, kt, v, mask, n_threads):
    rng = np.random.default_rng(sum(q) + n_threads)
    feeds = {"q": rng.standard_normal(q).astype(f32), "kt": rng.standard_normal(kt).astype(f32),
             "v": rng.standard_normal(v).astype(f32)}
    if mask is not None:
        feeds["mask"] = np.where(rng.random(mask) < 0.2, -10000.0, 0.0).astype(f32)
    scale = 1 / np.sqrt(q[-1])
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1, attrs={"scale": float(scale)})
    sess = runnx.InferenceSession(model.SerializeToString(), threads(n_threads))
    (y,) = sess.run(None, feeds)
    ref = _reference(feeds["q"], feeds["kt"], feeds["v"], feeds.get("mask"), scale)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=5e-5)


def test_mask_of_another_dtype_is_refused():
    # The mask is added to the scores: a float16 mask beside float32 Q/K/V is a malformed model,
    # refused at load by inference (before any provider places the node), and by the kernel at
    # run time when types reach it unchecked.
    rng = np.random.default_rng(0)
    feeds = {"q": rng.standard_normal((1, 4, 8)).astype(f32), "kt": rng.standard_normal((1, 8, 4)).astype(f32),
             "v": rng.standard_normal((1, 4, 8)).astype(f32), "mask": np.zeros((1, 4), np.float16)}
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1)
    with pytest.raises(runnx.InvalidModel, match="input 0 is tensor\\(float\\) but input 3 is tensor\\(float16\\)"):
        runnx.InferenceSession(model.SerializeToString())


def _reference_bshd(q, k, v, mask, scale):
    """Layout "bshd": the default layout's reference on the head-major views."""
    y = _reference(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3), mask, scale)
    return y.transpose(0, 2, 1, 3)


BSHD_CASES = [  # q [B,S,H,D], k [B,Sk,H,D], v [B,Sk,H,Dv], mask (broadcast to [B,H,S,Sk])
    ((1, 128, 12, 64), (1, 128, 12, 64), (1, 128, 12, 64), (1, 1, 1, 128)),  # BERT base, one item
    ((3, 37, 2, 5), (3, 70, 2, 5), (3, 70, 2, 3), (3, 1, 37, 70)),            # odd S, Sk, D, Dv; batch 3
    ((2, 1, 3, 7), (2, 1, 3, 7), (2, 1, 3, 7), None),                        # seq 1
    ((1, 300, 1, 16), (1, 700, 1, 16), (1, 700, 1, 8), (1, 1, 300, 700)),    # one head, long keys: row blocks
    ((2, 9, 4, 5), (1, 11, 4, 5), (2, 11, 1, 6), (9, 1)),                    # K's batch and V's heads broadcast
]


@pytest.mark.parametrize("q,k,v,mask", BSHD_CASES)
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_attention_bshd_matches_numpy(q, k, v, mask, n_threads):
    rng = np.random.default_rng(sum(q) + 7 * n_threads)
    feeds = {"q": rng.standard_normal(q).astype(f32), "k": rng.standard_normal(k).astype(f32),
             "v": rng.standard_normal(v).astype(f32)}
    if mask is not None:
        # -10000 on a whole row (a per-row mask) would round the float32 scores to ~1e-3: there
        # a plain random mask.
        feeds["mask"] = (np.where(rng.random(mask) < 0.2, -10000.0, 0.0) if mask[-1] > 1
                         else rng.standard_normal(mask)).astype(f32)
    scale = 1 / np.sqrt(q[-1])
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1,
                       attrs={"scale": float(scale), "layout": "bshd"})
    sess = runnx.InferenceSession(model.SerializeToString(), threads(n_threads))
    (y,) = sess.run(None, feeds)
    ref = _reference_bshd(feeds["q"], feeds["k"], feeds["v"], feeds.get("mask"), scale)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=5e-5)


def test_attention_bshd_fully_masked_rows():
    # A row masked with -inf everywhere is NaN (as the unfused graph gives) and leaves the other
    # rows alone; a row with all keys but one masked by -10000 copies that key's V row.
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((2, 6, 3, 4)).astype(f32) for _ in range(3))
    mask = np.zeros((2, 1, 6, 6), f32)
    mask[0, 0, 1] = -np.inf
    mask[1, 0, 4, :] = -10000.0
    mask[1, 0, 4, 2] = 0.0
    feeds = {"q": q, "k": k, "v": v, "mask": mask}
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1, attrs={"layout": "bshd"})
    (y,) = runnx.InferenceSession(model.SerializeToString(), threads(2)).run(None, feeds)
    assert np.isnan(y[0, 1]).all() and not np.isnan(np.delete(y, 1, axis=1)).any()
    np.testing.assert_allclose(y[1, 4], v[1, 2], rtol=1e-5, atol=1e-6)
    with np.errstate(invalid="ignore"):
        ref = _reference_bshd(q, k, v, mask, 1.0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=5e-5)


def test_attention_inf_and_nan_rows_over_whole_vectors():
    # 37 keys (two 16-wide vectors and a tail in the AVX-512 softmax): a row masked -inf
    # everywhere, a row with +inf in its mask and one with NaN in its mask (in a vector, not the
    # tail) are NaN as the reference's; the others are untouched by them.
    rng = np.random.default_rng(9)
    q = rng.standard_normal((1, 1, 6, 4)).astype(f32)
    kt = rng.standard_normal((1, 1, 4, 37)).astype(f32)
    v = rng.standard_normal((1, 1, 37, 3)).astype(f32)
    mask = np.zeros((1, 1, 6, 37), f32)
    mask[0, 0, 1] = -np.inf
    mask[0, 0, 3, 20] = np.inf
    mask[0, 0, 4, 5] = np.nan
    feeds = {"q": q, "kt": kt, "v": v, "mask": mask}
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1, attrs={"scale": 0.5})
    (y,) = runnx.InferenceSession(model.SerializeToString(), threads(1)).run(None, feeds)
    with np.errstate(invalid="ignore"):
        ref = _reference(q, kt, v, mask, 0.5)
    assert np.isnan(y[0, 0, [1, 3, 4]]).all() and not np.isnan(y[0, 0, [0, 2, 5]]).any()
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=5e-5)


def test_attention_bshd_bad_shapes_and_layout():
    rng = np.random.default_rng(1)
    feeds = {"q": rng.standard_normal((1, 4, 2, 8)).astype(f32), "k": rng.standard_normal((1, 5, 2, 7)).astype(f32),
             "v": rng.standard_normal((1, 5, 2, 8)).astype(f32)}
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1, attrs={"layout": "bshd"})
    with pytest.raises(runnx.RunnxError, match="do not chain"):
        runnx.InferenceSession(model.SerializeToString()).run(None, feeds)
    feeds["k"] = feeds["k"][..., :1].reshape(1, 5, 2)
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1, attrs={"layout": "bshd"})
    with pytest.raises(runnx.RunnxError, match="rank 4"):
        runnx.InferenceSession(model.SerializeToString()).run(None, feeds)
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1, attrs={"layout": "bhsd"})
    with pytest.raises(runnx.InvalidModel, match="unknown layout"):
        runnx.InferenceSession(model.SerializeToString())


def test_attention_bshd_mask_with_extra_batch_dims_is_refused():
    # bshd output is [B, S, H, Dv]: a mask that broadcasts the batch to three dims has no place in it.
    rng = np.random.default_rng(2)
    feeds = {"q": rng.standard_normal((2, 4, 3, 8)).astype(f32), "k": rng.standard_normal((2, 5, 3, 8)).astype(f32),
             "v": rng.standard_normal((2, 5, 3, 8)).astype(f32), "mask": np.zeros((2, 2, 3, 4, 5), f32)}
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1, attrs={"layout": "bshd"})
    with pytest.raises(runnx.RunnxError, match=r"more batch dims than \[B, H\]"):  # shape inference or run
        runnx.InferenceSession(model.SerializeToString()).run(None, feeds)
    feeds["mask"] = np.zeros((2, 1, 4, 5), f32)  # [B, 1, S, Sk] broadcasts over the heads
    model = make_model("ScaledDotProductAttention", feeds, domain="com.runnx", opset=1, attrs={"layout": "bshd"})
    (y,) = runnx.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert y.shape == (2, 4, 3, 8)
