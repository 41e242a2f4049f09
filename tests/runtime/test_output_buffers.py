"""Large graph outputs (>= 64 KB) come from a per-session cache of buffers the caller has dropped
(so a run faults in no fresh pages for them). A buffer must only be reused once nothing on the
Python side holds it: kept results, numpy views of them and results that outlive the session
must keep their values. An idle buffer serves an output of its size down to half of it, and one
that no output has matched for a while is freed (varying sizes must not pile up)."""

import concurrent.futures
import gc

import numpy as np
import runnx
from onnx import TensorProto, helper, numpy_helper

K, N = 48, 350  # a [rows, 350] float32 output is >= 64 KB from 47 rows


def _weights():
    rng = np.random.default_rng(7)
    return rng.standard_normal((K, N)).astype(np.float32), rng.standard_normal(N).astype(np.float32)


def _model():
    """y = x @ W + b and z = Tanh(y): two graph outputs of the same size; t = y's first row (small)."""
    w, b = _weights()
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
        helper.make_node("Tanh", ["y"], ["z"]),
        helper.make_node("Slice", ["y", "s0", "s1"], ["t"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", N]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["rows", N]),
         helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, N])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(np.array([0], np.int64), "s0"),
         numpy_helper.from_array(np.array([1], np.int64), "s1")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _session(threads=1):
    so = runnx.SessionOptions()
    so.intra_op_num_threads = threads
    return runnx.InferenceSession(_model(), so)


def _x(rows, seed):
    return np.random.default_rng(seed).standard_normal((rows, K)).astype(np.float32)


def _check(outs, x):
    w, b = _weights()
    y = x.astype(np.float64) @ w + b
    np.testing.assert_allclose(outs[0], y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outs[1], np.tanh(y), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outs[2], y[:1], rtol=1e-4, atol=1e-4)


def _reused(sess):
    return sess._sess.stats()["output_buffers_reused"]


def _idle(sess):
    return sess._sess.stats()["output_buffers_idle_bytes"]


def test_dropped_outputs_are_reused_with_fresh_values():
    sess = _session()
    for seed in range(6):
        x = _x(64, seed)
        _check(sess.run(None, {"x": x}), x)
        gc.collect()
    # y and z (64 x 350 floats = 89.6 KB each) come back from the cache on every run after the first.
    assert _reused(sess) == 10


def test_kept_outputs_and_their_views_keep_their_values():
    sess = _session()
    kept, views = [], []
    for seed in range(12):
        x = _x(100, seed)
        outs = sess.run(None, {"x": x})
        kept.append((x, [o.copy() for o in outs], outs if seed % 2 else None))
        views.append((outs[1][::3, 5:].copy(), outs[1][::3, 5:]))  # a view keeps z's buffer alive
        del outs
        gc.collect()
    for x, expected, held in kept:
        if held is not None:
            _check(held, x)
            for got, want in zip(held, expected):
                np.testing.assert_array_equal(got, want)
    for want, view in views:
        np.testing.assert_array_equal(view, want)
    # Every odd run's y/z were held, every z through a view: only the even runs' y came back.
    assert 0 < _reused(sess) <= 6


def test_outputs_never_share_memory_within_or_across_runs():
    sess = _session()
    held = []
    for seed in range(5):
        x = _x(80, seed)
        outs = sess.run(None, {"x": x})
        held.append(outs[0])  # keep y, drop z: the next run's y or z may take z's buffer
        for o in held[:-1]:
            for new in outs:
                assert not np.shares_memory(o, new)
        assert not np.shares_memory(outs[0], outs[1])
        _check(outs, x)
        del outs
        gc.collect()


def test_sizes_change_between_runs():
    sess = _session()
    for rows in (47, 200, 1, 200, 47, 0, 133, 200):
        x = _x(rows, rows)
        outs = sess.run(None, {"x": x})
        assert outs[0].shape == (rows, N)
        if rows:
            _check(outs, x)
        del outs
        gc.collect()
    assert _reused(sess) >= 2  # the second 200-row run at least


def test_outputs_outlive_the_session():
    sess = _session()
    x = _x(90, 3)
    first = sess.run(None, {"x": x})
    del first  # one idle buffer in the cache, freed with it
    gc.collect()
    outs = sess.run(None, {"x": x})
    del sess
    gc.collect()
    _check(outs, x)  # the buffers are freed by their last owner, after the cache is gone
    del outs
    gc.collect()


def test_concurrent_runs_at_two_threads():
    sess = _session(threads=2)

    def one(seed):
        x = _x(150 + seed % 3, seed)
        for _ in range(4):
            _check(sess.run(None, {"x": x}), x)
        return True

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        assert all(ex.map(one, range(12)))


def test_a_larger_idle_buffer_serves_a_smaller_output_up_to_twice_its_size():
    sess = _session()
    x = _x(200, 1)
    _check(sess.run(None, {"x": x}), x)
    gc.collect()
    assert _reused(sess) == 0 and _idle(sess) >= 2 * 200 * N * 4
    x = _x(150, 2)  # 210 KB outputs from the 280 KB buffers
    outs = sess.run(None, {"x": x})
    assert outs[0].shape == (150, N) and outs[1].shape == (150, N)
    _check(outs, x)
    assert _reused(sess) == 2
    del outs
    gc.collect()
    x = _x(60, 3)  # 84 KB: the 280 KB buffers are more than twice that
    _check(sess.run(None, {"x": x}), x)
    gc.collect()
    assert _reused(sess) == 2


def test_idle_buffers_no_output_matches_are_freed():
    sess = _session()
    x = _x(2000, 4)  # two 2.8 MB outputs, then only small ones
    _check(sess.run(None, {"x": x}), x)
    gc.collect()
    assert _idle(sess) >= 2 * 2000 * N * 4
    for seed in range(40):
        x = _x(50, seed)
        _check(sess.run(None, {"x": x}), x)
        gc.collect()
    # The two 50-row buffers (70 KB each) cycle; the big ones aged out.
    assert 0 < _idle(sess) <= 4 * 50 * N * 4
    assert _reused(sess) == 2 * 39


def test_many_distinct_sizes_keep_the_cache_bounded():
    sess = _session()
    sizes = list(range(60, 3000, 97))  # 31 growing sizes: a buffer serves at most the next few
    for rows in sizes:
        x = _x(rows, rows)
        outs = sess.run(None, {"x": x})
        assert outs[0].shape == (rows, N)
        _check(outs, x)
        del outs
        gc.collect()
    # At most 16 idle buffers: the last 8 runs' two outputs each.
    assert 0 < _idle(sess) <= sum(2 * r * N * 4 for r in sizes[-8:]) + 16 * 64
