"""Feeds in every layout numpy allows give the contiguous feed's result: transposed and strided
views, Fortran order and ndarray subclasses (the lean path hands plain arrays to C++ as
they are; C++ makes them contiguous)."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import runnx
from helpers import make_model


class _Sub(np.ndarray):
    pass


def _session():
    w = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    model = make_model("MatMul", {"x": np.zeros((4, 5), np.float32)}, initializers={"w": w}, dynamic=True)
    return runnx.InferenceSession(model.SerializeToString()), w


def test_non_contiguous_and_foreign_feeds_match_contiguous():
    sess, w = _session()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    expected = x.astype(np.float64) @ w
    big = np.zeros((8, 11), np.float32)
    big[::2, 1:11:2] = x
    variants = {
        "contiguous": x,
        "transposed view": np.ascontiguousarray(x.T).T,
        "strided view": big[::2, 1:11:2],
        "fortran": np.asfortranarray(x),
        "subclass": x.view(_Sub),
        "subclass, transposed view": np.ascontiguousarray(x.T).T.view(_Sub),
    }
    for name, feed in variants.items():
        (y,) = sess.run(None, {"x": feed})
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5, err_msg=name)
    assert not variants["strided view"].flags.c_contiguous and not variants["fortran"].flags.c_contiguous


def test_wrong_dtype_feed_is_rejected_on_the_lean_path():
    sess, _ = _session()
    try:
        sess.run(None, {"x": np.zeros((4, 5), np.complex64)})
    except runnx.InvalidArgument as e:
        assert "x" in str(e)
    else:
        raise AssertionError("complex64 feed was accepted")
