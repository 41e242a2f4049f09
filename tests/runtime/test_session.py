"""The onnxruntime-compatible session API: metadata, input checks, errors, threads, planning."""

import concurrent.futures
import json
import os

import numpy as np
import pytest
import runnx
from helpers import assert_close, make_model, rand
from onnx import TensorProto, helper, numpy_helper


def _model(opset=17, **kw):
    """y = Relu(x @ W + b) with a symbolic batch dim and an overridable initializer."""
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "W")
    b = numpy_helper.from_array(np.array([0.5, -1.0, 0.25], np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", "b"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [w, b],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kw)
    m.ir_version = 8
    helper.set_model_props(m, {"author": "tests", "purpose": "api"})
    return m


def _expected(x, b=np.array([0.5, -1.0, 0.25], np.float32)):
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    return np.maximum(x @ w + b, 0)


def test_inputs_outputs_read_like_onnxruntime():
    sess = runnx.InferenceSession(_model().SerializeToString())
    (x,) = sess.get_inputs()  # the initializer-backed input 'b' is left out, as in ORT
    assert (x.name, x.type, x.shape) == ("x", "tensor(float)", ["batch", 4])
    (y,) = sess.get_outputs()
    assert (y.name, y.type, y.shape) == ("y", "tensor(float)", ["batch", 3])
    assert [a.name for a in sess.get_overridable_initializers()] == ["b"]
    assert sess.get_providers() == ["CPUExecutionProvider"]
    meta = sess.get_modelmeta()
    assert meta.custom_metadata_map == {"author": "tests", "purpose": "api"}
    assert meta.graph_name == "g"


def test_matches_onnxruntime_field_by_field():
    ort = pytest.importorskip("onnxruntime")
    data = _model().SerializeToString()
    a, b = runnx.InferenceSession(data), ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for mine, theirs in [(a.get_inputs(), b.get_inputs()), (a.get_outputs(), b.get_outputs())]:
        assert [(i.name, i.type, i.shape) for i in mine] == [(i.name, i.type, i.shape) for i in theirs]
    x = rand((5, 4))
    assert_close(a.run(None, {"x": x})[0], b.run(None, {"x": x})[0])


def test_run_from_path_bytes_and_model_proto(tmp_path):
    m = _model()
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    x = rand((2, 4))
    for src in [str(path), path, m.SerializeToString(), bytearray(m.SerializeToString()), m]:
        (y,) = runnx.InferenceSession(src).run(None, {"x": x})
        assert_close(y, _expected(x))


def test_overridable_initializer_can_be_fed():
    sess = runnx.InferenceSession(_model().SerializeToString())
    x, b = rand((3, 4)), np.array([1.0, 2.0, 3.0], np.float32)
    assert_close(sess.run(["y"], {"x": x, "b": b})[0], _expected(x, b))


def test_dynamic_batch_plans_once_per_shape():
    sess = runnx.InferenceSession(_model().SerializeToString())
    for batch in [1, 7, 1, 7, 0, 7]:
        x = rand((batch, 4))
        assert_close(sess.run(None, {"x": x})[0], _expected(x))
    assert sess.memory_stats()["plans"] == 3


def test_wrong_input_name_dtype_rank_dim_and_missing_input():
    sess = runnx.InferenceSession(_model().SerializeToString())
    x = rand((2, 4))
    with pytest.raises(runnx.InvalidArgument, match="invalid input name 'z'.*inputs are: x"):
        sess.run(None, {"x": x, "z": x})
    with pytest.raises(runnx.InvalidArgument, match=r"input 'x': expected tensor\(float\), got tensor\(double\)"):
        sess.run(None, {"x": x.astype(np.float64)})
    with pytest.raises(runnx.InvalidArgument, match="input 'x': expected rank 2"):
        sess.run(None, {"x": x[0]})
    with pytest.raises(runnx.InvalidArgument, match="dimension 1 must be 4, got 5"):
        sess.run(None, {"x": rand((2, 5))})
    with pytest.raises(runnx.InvalidArgument, match="required input 'x'.*missing"):
        sess.run(None, {})
    with pytest.raises(runnx.InvalidArgument, match="invalid output name 'nope'"):
        sess.run(["nope"], {"x": x})
    # The errors are also the generic Python kinds, for code that catches those.
    with pytest.raises(ValueError):
        sess.run(None, {})


def test_unsupported_ops_are_listed_together_with_their_nodes():
    nodes = [
        helper.make_node("FooOp", ["x"], ["a"], name="f1", domain="my.domain"),
        helper.make_node("Relu", ["a"], ["b"], name="r"),
        helper.make_node("LSTM", ["b", "b", "b"], ["y"], name="l1"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.domain", 1)])
    with pytest.raises(runnx.UnsupportedOp) as e:
        runnx.InferenceSession(m.SerializeToString())
    msg = str(e.value)
    assert "2 unsupported" in msg and "my.domain.FooOp" in msg and "'f1'" in msg and "LSTM" in msg and "'l1'" in msg


def test_unsupported_opset_is_refused():
    with pytest.raises(runnx.UnsupportedOp, match="opset 99"):
        runnx.InferenceSession(_model(opset=99).SerializeToString())


def test_cycle_is_invalid_model():
    nodes = [helper.make_node("Relu", ["b"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2")]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("a", TensorProto.FLOAT, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(runnx.InvalidModel, match="cycle"):
        runnx.InferenceSession(m.SerializeToString())


def test_undefined_input_and_duplicate_output_are_invalid_model():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["nowhere"], ["y"], name="r")], "g", [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(runnx.InvalidModel, match="input 'nowhere' is not defined"):
        runnx.InferenceSession(m.SerializeToString())
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="a"), helper.make_node("Neg", ["x"], ["y"], name="b")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(runnx.InvalidModel, match="produced by both"):
        runnx.InferenceSession(m.SerializeToString())


def test_garbage_and_missing_files():
    with pytest.raises(runnx.InvalidModel):
        runnx.InferenceSession(b"\xff" * 64)
    with pytest.raises(FileNotFoundError):
        runnx.InferenceSession("/nonexistent/model.onnx")


def test_zero_d_tensors_stay_zero_d():
    x = np.array(3.5, np.float32)
    (y,) = runnx.InferenceSession(make_model("Neg", {"x": x}).SerializeToString()).run(None, {"x": x})
    assert y.shape == () and y == -3.5


def test_outputs_do_not_alias_inputs_or_weights():
    """An Identity of an input or an initializer must come back as a fresh array."""
    w = np.ones(3, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Identity", ["w"], ["z"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3]), helper.make_tensor_value_info("z", TensorProto.FLOAT, [3])],
        [numpy_helper.from_array(w, "w")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = runnx.InferenceSession(m.SerializeToString())
    x = rand((3,))
    y, z = sess.run(None, {"x": x})
    y[:] = 7
    z[:] = 7  # would crash or corrupt the model if z pointed at the weights
    assert not np.shares_memory(y, x)
    y2, z2 = sess.run(None, {"x": x})
    assert_close(y2, x) and assert_close(z2, w)


def test_run_is_safe_from_many_threads():
    sess = runnx.InferenceSession(_model().SerializeToString())
    inputs = [rand((b % 5 + 1, 4)) for b in range(64)]

    def job(x):
        return sess.run(None, {"x": x})[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(job, inputs))
    for x, y in zip(inputs, results):
        assert_close(y, _expected(x))


def test_thread_options_and_default_threads():
    so = runnx.SessionOptions()
    so.intra_op_num_threads = 1
    sess = runnx.InferenceSession(_model().SerializeToString(), so)
    x = rand((2, 4))
    assert_close(sess.run(None, {"x": x})[0], _expected(x))
    assert runnx._C._testing.default_num_threads() >= 1


def test_profiling_writes_chrome_trace(tmp_path):
    so = runnx.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    so.graph_optimization_level = runnx.GraphOptimizationLevel.ORT_DISABLE_ALL  # one event per node as written
    sess = runnx.InferenceSession(_model().SerializeToString(), so)
    sess.run(None, {"x": rand((2, 4))})
    path = sess.end_profiling()
    events = json.load(open(path))
    assert [e["name"] for e in events] == ["mm", "add", "relu"]
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in events)
    os.remove(path)


def test_unknown_provider_is_rejected_and_unavailable_one_warns():
    data = _model().SerializeToString()
    with pytest.raises(ValueError, match="Unknown Provider"):
        runnx.InferenceSession(data, providers=["NoSuchExecutionProvider"])
    if "CUDAExecutionProvider" not in runnx.get_available_providers():
        with pytest.warns(UserWarning, match="not in available provider"):
            runnx.InferenceSession(data, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


def test_thread_pool_covers_every_index_once():
    for n, grain, threads in [(0, 1, 2), (1, 1, 2), (1000, 7, 2), (12345, 100, 3)]:
        assert runnx._C._testing.thread_pool_coverage(n, grain, threads) == [1] * n


def test_available_providers_and_device():
    assert "CPUExecutionProvider" in runnx.get_available_providers()
    assert runnx.get_device() in ("CPU", "GPU")


def _mapped_rss_kib(path):
    """Resident KiB of this process's mappings of `path` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if "-" in line.split(" ", 1)[0]:  # a mapping header: "start-end perms offset dev inode path"
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
def test_packed_weights_release_their_file_pages(tmp_path):
    """A MatMul weight packed at load no longer holds its mapped file pages, and the packed
    session still computes the same result (the pages would fault back if read)."""
    w = rand((512, 768))  # 1.5 MiB of float32
    model = make_model("MatMul", {"x": rand((3, 512))}, initializers={"w": w})
    path = tmp_path / "matmul.onnx"
    path.write_bytes(model.SerializeToString())
    sess = runnx.InferenceSession(str(path))
    assert _mapped_rss_kib(path) < 512  # of the ~1500 KiB file, at most the non-weight pages
    x = rand((3, 512))
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], x @ w, rtol=1e-4, atol=1e-4)
