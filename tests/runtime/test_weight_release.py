"""Weights packed by every reader give their pages back at load; any other reader keeps them.

A kernel that packs a constant weight (MatMul, FusedGemm) releases the original; once all readers of
a weight have, the session drops its pages (for heap copies of misaligned weights and models parsed
from bytes they would read back as zeros). These tests make the cases where that must NOT happen
observable: a weight also read by a non-packing op, a graph output, an overridable initializer, a
folded view sharing the bytes of a weight still read.
"""

import numpy as np
import pytest
from helpers import rand, session_from
from onnx import TensorProto, helper, numpy_helper

K, N = 64, 96  # a 24 KiB weight: several whole pages


def _close(got, want):
    """float32 results against a float64 reference (sums of K products)."""
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _mm(a, b):
    return a.astype(np.float64) @ b.astype(np.float64)


def _serialize_with_offset(build, want_misaligned: bool, w: np.ndarray) -> bytes:
    """Serializes build(pad) for growing name paddings until W's raw bytes sit at an offset that is
    (or is not) a multiple of 4 in the file, so the loader must copy it (or can map it in place)."""
    needle = w.tobytes()[:64]
    for pad in range(8):
        data = build("W" + "_" * pad).SerializeToString()
        misaligned = data.find(needle) % 4 != 0
        if misaligned == want_misaligned:
            return data
    raise AssertionError("could not place the weight at the wanted alignment")


@pytest.mark.parametrize("level", [0, 99])
@pytest.mark.parametrize("how", ["file", "bytes"])
@pytest.mark.parametrize("misaligned", [True, False])
def test_weight_also_read_by_another_op_keeps_its_bytes(tmp_path, level, how, misaligned):
    rng = np.random.default_rng(1)
    w = rand((K, N), rng=rng)

    def build(wname):
        nodes = [
            helper.make_node("MatMul", ["x", wname], ["y"]),
            helper.make_node("Mul", ["x2", wname], ["z"]),  # reads W's bytes at run time
        ]
        g = helper.make_graph(
            nodes, "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", K]),
             helper.make_tensor_value_info("x2", TensorProto.FLOAT, [K, N])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", N]),
             helper.make_tensor_value_info("z", TensorProto.FLOAT, [K, N])],
            [numpy_helper.from_array(w, wname)],
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    sess = session_from(_serialize_with_offset(build, misaligned, w), how, tmp_path, level)
    for batch in (1, 5, 1):
        x, x2 = rand((batch, K), rng=rng), rand((K, N), rng=rng)
        y, z = sess.run(None, {"x": x, "x2": x2})
        _close(y, _mm(x, w))
        np.testing.assert_array_equal(z, x2 * w)


@pytest.mark.parametrize("how", ["file", "bytes"])
@pytest.mark.parametrize("misaligned", [True, False])
def test_weight_packed_by_two_readers_still_computes(tmp_path, how, misaligned):
    rng = np.random.default_rng(2)
    w = rand((K, N), rng=rng)

    def build(wname):
        nodes = [
            helper.make_node("MatMul", ["x", wname], ["a"]),
            helper.make_node("Relu", ["x"], ["rx"]),
            helper.make_node("MatMul", ["rx", wname], ["b"]),
            helper.make_node("Add", ["a", "b"], ["y"]),
        ]
        g = helper.make_graph(
            nodes, "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", K])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", N])],
            [numpy_helper.from_array(w, wname)],
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    sess = session_from(_serialize_with_offset(build, misaligned, w), how, tmp_path, 99)
    for batch in (3, 1, 3):
        x = rand((batch, K), rng=rng)
        (y,) = sess.run(None, {"x": x})
        _close(y, _mm(x, w) + _mm(np.maximum(x, 0), w))


@pytest.mark.parametrize("how", ["file", "bytes"])
def test_weight_that_is_a_graph_output_or_overridable_keeps_its_bytes(tmp_path, how):
    rng = np.random.default_rng(3)
    w, v = rand((K, N), rng=rng), rand((K, N), rng=rng)

    def build(wname):
        nodes = [
            helper.make_node("MatMul", ["x", wname], ["y"]),
            helper.make_node("MatMul", ["x", "V"], ["yv"]),
        ]
        g = helper.make_graph(
            nodes, "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", K]),
             helper.make_tensor_value_info("V", TensorProto.FLOAT, [K, N])],  # overridable
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", N]),
             helper.make_tensor_value_info("yv", TensorProto.FLOAT, ["b", N]),
             helper.make_tensor_value_info(wname, TensorProto.FLOAT, [K, N])],
            [numpy_helper.from_array(w, wname), numpy_helper.from_array(v, "V")],
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    sess = session_from(_serialize_with_offset(build, True, w), how, tmp_path, 99)
    x = rand((2, K), rng=rng)
    y, yv, w_out = sess.run(None, {"x": x})
    _close(y, _mm(x, w))
    _close(yv, _mm(x, v))
    np.testing.assert_array_equal(w_out, w)
    v2 = rand((K, N), rng=rng)
    y, yv, _ = sess.run(None, {"x": x, "V": v2})
    _close(yv, _mm(x, v2))
    y, yv, _ = sess.run(None, {"x": x})  # the default is intact after a feed replaced it
    _close(yv, _mm(x, v))


@pytest.mark.parametrize("how", ["file", "bytes"])
def test_folded_view_of_a_weight_still_read_keeps_the_shared_bytes(tmp_path, how):
    """Reshape of an initializer folds at load, possibly into a view of the same bytes: the
    MatMul packs (and releases) the view while Mul still reads the original."""
    rng = np.random.default_rng(4)
    w = rand((K * N,), rng=rng)

    def build(wname):
        shape = numpy_helper.from_array(np.array([K, N], np.int64), "shape")
        nodes = [
            helper.make_node("Reshape", [wname, "shape"], ["w2"]),
            helper.make_node("MatMul", ["x", "w2"], ["y"]),
            helper.make_node("Mul", ["x2", wname], ["z"]),
        ]
        g = helper.make_graph(
            nodes, "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", K]),
             helper.make_tensor_value_info("x2", TensorProto.FLOAT, [K * N])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", N]),
             helper.make_tensor_value_info("z", TensorProto.FLOAT, [K * N])],
            [numpy_helper.from_array(w, wname), shape],
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    for misaligned in (True, False):
        sess = session_from(_serialize_with_offset(build, misaligned, w), how, tmp_path, 99)
        x, x2 = rand((4, K), rng=rng), rand((K * N,), rng=rng)
        y, z = sess.run(None, {"x": x, "x2": x2})
        _close(y, _mm(x, w.reshape(K, N)))
        np.testing.assert_array_equal(z, x2 * w)
