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
