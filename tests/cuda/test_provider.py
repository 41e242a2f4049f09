"""The CUDA provider end to end on a GPU (skipped without one): zoo models on CUDA against the CPU,
per-node fallback with boundary copies, device arrays through IOBinding, CUDA graph replay, and
errors that name the node. Tolerances: fp32 1e-4 relative (1e-3 absolute for BERT's long sums),
fp16 2e-2 (fp16 storage, fp32 accumulation)."""

import os
import sys

import numpy as np
import pytest
import runnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from bench.models import zoo

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def _cuda(model, **options):
    m = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    return runnx.InferenceSession(m, providers=[(CUDA, options), CPU])


def _close(a, b, long_sums=False):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3 if long_sums else 1e-5)


@pytest.mark.parametrize("name", zoo.NAMES)
@pytest.mark.parametrize("batch", [1, 3])
def test_zoo_fp32_on_cuda_matches_cpu(name, batch):
    model = zoo.build(name, "tiny")
    feeds = zoo.sample_inputs(name, batch=batch, scale="tiny", seed=batch)
    cpu = runnx.InferenceSession(model.SerializeToString(), providers=[CPU]).run(None, feeds)
    sess = _cuda(model)
    assert sess.get_providers()[-1] == CPU
    for _ in range(3):  # observing run, planned runs
        for a, b in zip(sess.run(None, feeds), cpu):
            _close(a, b, long_sums=name == "bert")


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_fp16_on_cuda_matches_cpu(name):
    quantize = pytest.importorskip("runnx.quantize")
    # The reference is the float32 model on the CPU (whose kernels are float32 only), so the
    # tolerance is test_to_fp16's: float16 roundings over a few hundred terms, scaled to the output.
    model32 = zoo.build(name, "tiny")
    feeds = zoo.sample_inputs(name, batch=2, scale="tiny", seed=0)
    cpu = runnx.InferenceSession(model32.SerializeToString(), providers=[CPU]).run(None, feeds)
    sess = _cuda(quantize.to_fp16(model32))
    # float16 BatchNormalizations fold into their convs and LayerNorms fuse, as in float32.
    expected_pass = {"resnet50": "conv_bn_folding", "mobilenetv2": "conv_bn_folding", "bert": "layernorm_fusion"}
    if name in expected_pass:
        assert sess._passes_fired().get(expected_pass[name], 0) > 0
    for got, want in zip(sess.run(None, feeds), cpu):
        scale = max(float(np.abs(want).max()), 1.0)
        np.testing.assert_allclose(got.astype(np.float32), want, rtol=0, atol=5e-2 * scale)


def test_placement_in_a_real_session_matches_the_planner():
    model = zoo.build("bert", "tiny")
    sess = _cuda(model)
    assert sess._placement() == runnx.providers.cuda_placement(model)["nodes"]
    assert CUDA in sess.get_providers()
    assert sess.get_provider_options()[CUDA]["device_id"] == "0"


def _fallback_model():
    # Reshape (device) -> NonZero (CPU) -> Shape (device, host output) and a device output.
    shape = numpy_helper.from_array(np.array([-1], np.int64), "shape")
    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["r"], name="flat"),
         helper.make_node("NonZero", ["r"], ["nz"], name="nz"),
         helper.make_node("Shape", ["nz"], ["s"], name="shape_of")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("nz", TensorProto.INT64, None),
         helper.make_tensor_value_info("s", TensorProto.INT64, None)], [shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_cpu_fallback_between_device_nodes_crosses_the_boundary_correctly():
    sess = _cuda(_fallback_model())
    rng = np.random.default_rng(0)
    for rows in (1, 4, 0, 4):  # new shapes re-plan; the empty tensor copies nothing
        x = (rng.random((rows, 3)) < 0.5).astype(np.float32)
        r, nz, s = sess.run(None, {"x": x})
        np.testing.assert_array_equal(r, x.reshape(-1))
        np.testing.assert_array_equal(nz, np.array(np.nonzero(x.reshape(-1))))
        np.testing.assert_array_equal(s, nz.shape)


def test_device_outputs_feed_the_next_run_without_the_host():
    model = zoo.build("mlp", "tiny")
    feeds = zoo.sample_inputs("mlp", batch=2, scale="tiny", seed=0)
    (expected,) = runnx.InferenceSession(model.SerializeToString(), providers=[CPU]).run(None, feeds)
    sess = _cuda(model)
    io = sess.io_binding()
    for k, v in feeds.items():
        io.bind_cpu_input(k, v)
    out_name = sess.get_outputs()[0].name
    io.bind_output(out_name, "cuda")
    sess.run_with_iobinding(io)
    (v,) = io.get_outputs()
    assert v.device_name() == "cuda" and v.shape() == list(expected.shape)
    _close(v.numpy(), expected)
    _close(io.copy_outputs_to_cpu()[0], expected)
    # An identity model fed the device output: the input never visits the host.
    g = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, list(expected.shape))],
                          [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    ident = _cuda(m)
    (b,) = ident.run(None, {"a": v})
    _close(b, expected)


def test_cupy_arrays_in_and_out():
    cp = pytest.importorskip("cupy")
    model = zoo.build("mlp", "tiny")
    feeds = zoo.sample_inputs("mlp", batch=3, scale="tiny", seed=1)
    (expected,) = runnx.InferenceSession(model.SerializeToString(), providers=[CPU]).run(None, feeds)
    sess = _cuda(model)
    dev = {k: cp.asarray(v) for k, v in feeds.items()}
    (y,) = sess.run(None, dev)
    _close(y, expected)
    io = sess.io_binding()
    for k, v in dev.items():
        io.bind_input(k, v)
    io.bind_output(sess.get_outputs()[0].name, "cuda")
    sess.run_with_iobinding(io)
    _close(cp.asnumpy(cp.asarray(io.get_outputs()[0])), expected)


def test_cuda_graph_replay_matches_eager():
    model = zoo.build("mlp", "tiny")
    cpu = runnx.InferenceSession(model.SerializeToString(), providers=[CPU])
    sess = _cuda(model, enable_cuda_graph=True)
    assert sess.get_provider_options()[CUDA]["enable_cuda_graph"] == "1"
    for seed in range(5):  # observe, warm up, capture + replay, replay, replay
        feeds = zoo.sample_inputs("mlp", batch=2, scale="tiny", seed=seed)
        for a, b in zip(sess.run(None, feeds), cpu.run(None, feeds)):
            _close(a, b)
    all_on_device = all(p[2] == "cuda" for p in sess._placement())
    stats = sess.memory_stats()
    assert stats["cuda_graphs"] == (1 if all_on_device else 0)
    if all_on_device:
        assert stats["graph_replays"] >= 3


def test_input_on_another_device_is_refused():
    model = zoo.build("mlp", "tiny")
    sess = _cuda(model)
    from runnx.io_binding import _element_type

    ((name, x),) = zoo.sample_inputs("mlp", batch=1, scale="tiny", seed=0).items()
    feed = {name: ("cuda", 1 << 40, x.shape, _element_type(x.dtype), 7)}
    with pytest.raises(runnx.InvalidArgument, match="is on CUDA device 7"):
        sess._sess.run_placed(None, feed, ["cpu"])


def test_bad_device_id_is_an_invalid_argument():
    with pytest.raises(runnx.InvalidArgument, match="device_id 99 does not exist"):
        _cuda(zoo.build("mlp", "tiny"), device_id=99)


def _reshape_relu_model():
    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["r"], name="reshape"),
         helper.make_node("Relu", ["r"], ["y"], name="relu")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6]),
              helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_a_failed_run_names_the_node_and_the_next_run_works():
    sess = _cuda(_reshape_relu_model())
    assert [p[2] for p in sess._placement()] == ["cuda", "cuda"]
    x = np.linspace(-1, 1, 6).astype(np.float32)
    with pytest.raises(runnx.InvalidArgument, match="Reshape node 'reshape'.*cannot reshape"):
        sess.run(None, {"x": x, "s": np.array([4, 2], np.int64)})
    (y,) = sess.run(None, {"x": x, "s": np.array([2, 3], np.int64)})
    np.testing.assert_array_equal(y, np.maximum(x, 0).reshape(2, 3))


def test_concurrent_runs_each_get_their_own_stream_and_arena():
    from concurrent.futures import ThreadPoolExecutor

    model = zoo.build("resnet50", "tiny")
    cpu = runnx.InferenceSession(model.SerializeToString(), providers=[CPU])
    sess = _cuda(model)
    feeds = [zoo.sample_inputs("resnet50", batch=2, scale="tiny", seed=s) for s in range(8)]
    expected = [cpu.run(None, f)[0] for f in feeds]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda f: sess.run(None, f)[0], feeds * 3))
    for k, y in enumerate(got):
        _close(y, expected[k % len(feeds)])


def test_ortvalue_from_numpy_on_the_device_round_trips_and_feeds_a_run():
    x = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
    v = runnx.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
    assert v.device_name() == "cuda" and v.shape() == [2, 3]
    np.testing.assert_array_equal(v.numpy(), x)
    g = helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    sess = _cuda(m)
    io = sess.io_binding()
    io.bind_ortvalue_input("a", v)
    io.bind_output("b", "cuda")
    sess.run_with_iobinding(io)
    np.testing.assert_array_equal(io.copy_outputs_to_cpu()[0], np.maximum(x, 0))
    with pytest.raises(runnx.InvalidArgument, match="CUDA device 99 does not exist"):
        runnx.OrtValue.ortvalue_from_numpy(x, "cuda", 99)


def test_out_of_range_gather_index_is_an_error_naming_the_node():
    table = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "table")
    g = helper.make_graph([helper.make_node("Gather", ["table", "i"], ["y"], name="lookup")], "g",
                          [helper.make_tensor_value_info("i", TensorProto.INT64, [None])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [table])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    sess = _cuda(m)
    assert sess._placement() == [("lookup", "Gather", "cuda", "")]
    (y,) = sess.run(None, {"i": np.array([3, -1, 0], np.int64)})
    np.testing.assert_array_equal(y, np.arange(12, dtype=np.float32).reshape(4, 3)[[3, -1, 0]])
    with pytest.raises(runnx.InvalidArgument, match="Gather node 'lookup': an index is out of range"):
        sess.run(None, {"i": np.array([1, 4], np.int64)})
    (y,) = sess.run(None, {"i": np.array([2], np.int64)})  # the next run is clean
    np.testing.assert_array_equal(y, [[6, 7, 8]])


def test_attention_in_bshd_layout_stays_on_the_cpu():
    # attention_layout (CPU-only) makes these; the device kernel reads only the default layout.
    rng = np.random.default_rng(0)
    q = helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 5, 2, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("ScaledDotProductAttention", ["q", "q", "q"], ["y"], name="sdpa",
                            domain="com.runnx", layout="bshd", scale=0.3)
    graph = helper.make_graph([node], "g", [q], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.runnx", 1)])
    feeds = {"q": rng.standard_normal((1, 5, 2, 8)).astype(np.float32)}
    (expected,) = runnx.InferenceSession(model.SerializeToString(), providers=[CPU]).run(None, feeds)
    sess = _cuda(model)
    np.testing.assert_allclose(sess.run(None, feeds)[0], expected, rtol=1e-5, atol=1e-6)
    assert sess._placement() == [("sdpa", "ScaledDotProductAttention", "cpu", sess._placement()[0][3])]
    assert "layout 'bshd'" in sess._placement()[0][3]
