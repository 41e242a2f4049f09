"""Sessions reuse their per-run state (run contexts, arenas, plans keyed by shape signature) from call
to call: results must not depend on what an earlier call left behind, outputs must never share
memory with each other or with a later call's, and a failed call must leave the session usable."""

import concurrent.futures

import numpy as np
import pytest
import runnx
from onnx import TensorProto, helper, numpy_helper

K, H = 6, 5


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((K, H)).astype(np.float32), rng.standard_normal(H).astype(np.float32))


def _model():
    """y = Relu(x @ W + b) over [batch, seq, K]; r = Reshape(y, [-1]) (a view of y inside the run);
    s = Sigmoid(y) through an arena value."""
    w, b = _weights()
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["s0"]),
        helper.make_node("Relu", ["s0"], ["y"]),
        helper.make_node("Reshape", ["y", "flat"], ["r"]),
        helper.make_node("Neg", ["y"], ["ny"]),
        helper.make_node("Sigmoid", ["ny"], ["s"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", H]),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, [None]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch", "seq", H])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(np.array([-1], np.int64), "flat")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _expected(x):
    w, b = _weights()
    y = np.maximum(x.astype(np.float64) @ w + b, 0)
    return y, y.reshape(-1), 1 / (1 + np.exp(y))


def _check(outs, x):
    for got, want in zip(outs, _expected(x)):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _x(rng, batch, seq):
    return rng.standard_normal((batch, seq, K)).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
def test_changing_shapes_give_fresh_results_that_later_calls_leave_alone(threads):
    so = runnx.SessionOptions()
    so.intra_op_num_threads = threads
    sess = runnx.InferenceSession(_model(), so)
    rng = np.random.default_rng(1)
    kept = []
    for batch, seq in [(1, 1), (3, 4), (1, 1), (2, 7), (3, 4), (3, 4), (1, 1), (0, 3), (2, 7)]:
        x = _x(rng, batch, seq)
        outs = sess.run(None, {"x": x})
        _check(outs, x)
        kept.append((x, outs, [o.copy() for o in outs]))
    for x, outs, copies in kept:  # no later call wrote into an earlier call's outputs
        for o, c in zip(outs, copies):
            np.testing.assert_array_equal(o, c)
    arrays = [o for _, outs, _ in kept for o in outs if o.size]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b)


def test_outputs_of_one_call_never_share_memory():
    sess = runnx.InferenceSession(_model())
    x = _x(np.random.default_rng(2), 2, 3)
    for _ in range(3):
        y, r, s = sess.run(None, {"x": x})  # r is a view of y inside the run
        assert not np.shares_memory(y, r)
        r[:] = -1
        _check([y, y.reshape(-1), s], x)
        y1, y2, s1 = sess.run(["y", "y", "s"], {"x": x})  # the same output asked for twice
        assert not np.shares_memory(y1, y2)
        np.testing.assert_array_equal(y1, y2)
        y1[:] = 5
        _check([y2, y2.reshape(-1), s1], x)


def test_concurrent_calls_with_different_shapes_on_one_session():
    sess = runnx.InferenceSession(_model())
    rng = np.random.default_rng(3)
    inputs = [_x(rng, 1 + i % 4, 1 + (i * 7) % 5) for i in range(96)]

    def job(x):
        return x, sess.run(None, {"x": x})

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        for x, outs in pool.map(job, inputs):
            _check(outs, x)


def _reshape_model():
    """z = Reshape(x, shape) * 2 with `shape` fed: a wrong shape fails inside the graph, after the
    run has taken its state (and, on a planned signature, its arena)."""
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["t"]),
        helper.make_node("Mul", ["t", "two"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, None])],
        [numpy_helper.from_array(np.array(2, np.float32), "two")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_calls_after_errors_still_work():
    sess = runnx.InferenceSession(_reshape_model())
    x = np.arange(12, dtype=np.float32)
    good = {"x": x, "shape": np.array([3, 4], np.int64)}
    for _ in range(2):  # the second round runs on the signature's plan
        (z,) = sess.run(None, good)
        np.testing.assert_array_equal(z, 2 * x.reshape(3, 4))
        with pytest.raises(runnx.RunnxError):
            sess.run(None, {"x": x, "shape": np.array([5, 4], np.int64)})  # fails in Reshape
        with pytest.raises(runnx.InvalidArgument):
            sess.run(None, {"x": x.astype(np.float64), "shape": good["shape"]})
        with pytest.raises(runnx.InvalidArgument):
            sess.run(None, {"x": x})  # a required input is missing
        with pytest.raises(runnx.InvalidArgument):
            sess.run(["nope"], good)
        (z,) = sess.run(None, good)
        np.testing.assert_array_equal(z, 2 * x.reshape(3, 4))


def test_feeds_that_are_not_a_dict_of_arrays():
    sess = runnx.InferenceSession(_reshape_model())
    shape = np.array([2, 2], np.int64)
    (z,) = sess.run(None, {"x": np.float32([1, 2, 3, 4]), "shape": [2, 2]})  # a list is converted
    np.testing.assert_array_equal(z, [[2, 4], [6, 8]])
    with pytest.raises(runnx.InvalidArgument, match="double"):  # as numpy converts it: float64
        sess.run(None, {"x": [1.0, 2.0, 3.0, 4.0], "shape": shape})
    with pytest.raises(runnx.InvalidArgument, match="dict"):
        sess.run(None, [("x", np.zeros(4, np.float32))])
    ro = runnx.RunOptions()
    (z,) = sess.run(None, {"x": np.ones(4, np.float32), "shape": shape}, ro)
    np.testing.assert_array_equal(z, np.full((2, 2), 2, np.float32))
    ro.terminate = True
    with pytest.raises(runnx.RuntimeFailure):
        sess.run(None, {"x": np.ones(4, np.float32), "shape": shape}, ro)


def _threads_in_process():
    import os

    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_pool_threads_start_with_the_first_run_and_end_with_the_session():
    import gc

    so = runnx.SessionOptions()
    so.intra_op_num_threads = 3
    gc.collect()
    before = _threads_in_process()
    sessions = [runnx.InferenceSession(_model(), so) for _ in range(4)]
    assert _threads_in_process() == before  # loading spawns no worker
    assert all(s._sess.num_threads() == 3 for s in sessions)
    x = _x(np.random.default_rng(5), 2, 3)
    _check(sessions[0].run(None, {"x": x}), x)
    assert _threads_in_process() == before + 2  # the caller is the third thread
    _check(sessions[0].run(None, {"x": x}), x)
    assert _threads_in_process() == before + 2
    del sessions
    gc.collect()
    assert _threads_in_process() == before


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("channels", [32, 300])
def test_residual_that_is_the_conv_input_is_not_overwritten(channels, n_threads):
    # Add(Conv1x1(d), d): the fused conv reads d as X and as its residual Z. y may take over Z's
    # buffer only if nothing else of the node reads it; here X does (the GEMM re-reads each input
    # row for every 16-column panel, and K > 256 keeps partial sums in y). A depthwise conv first
    # puts the chain into the channels-last layout at level 99.
    rng = np.random.default_rng(7)
    c = channels
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Conv", ["r", "wd"], ["d"], group=c, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "wp", "bp"], ["p"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["p", "d"], ["y"]),
    ]
    inits = [numpy_helper.from_array(rng.standard_normal((c, 1, 3, 3)).astype(np.float32), "wd"),
             numpy_helper.from_array((rng.standard_normal((c, c, 1, 1)) / c**0.5).astype(np.float32), "wp"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "bp")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, c, 7, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = rng.standard_normal((2, c, 7, 9)).astype(np.float32)
    outs = []
    for level in (runnx.GraphOptimizationLevel.ORT_DISABLE_ALL, runnx.GraphOptimizationLevel.ORT_ENABLE_ALL):
        so = runnx.SessionOptions()
        so.graph_optimization_level = level
        so.intra_op_num_threads = n_threads
        sess = runnx.InferenceSession(model, so)
        outs.append([sess.run(None, {"x": x})[0] for _ in range(2)])
    ref = outs[0][0]
    for y in outs[1]:
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
