"""CUDA placement decided without a GPU: which node runs where, why a node stays on the CPU, and
which values cross the host/device boundary (runnx.providers.cuda_placement)."""

import os
import sys

import numpy as np
import pytest
import runnx
from helpers import make_model
from onnx import TensorProto, helper, numpy_helper
from runnx.providers import cuda_placement

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from bench.models import zoo

pytestmark = pytest.mark.skipif(not runnx._C.cuda.built, reason="runnx was built without CUDA")


def _graph(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def test_unsupported_op_falls_back_with_reason_and_copies_at_both_boundaries():
    # x -> Reshape (device: a view) -> NonZero (no CUDA kernel: CPU) -> y
    shape = numpy_helper.from_array(np.array([-1], np.int64), "shape")
    m = _graph(
        [helper.make_node("Reshape", ["x", "shape"], ["r"], name="flat"),
         helper.make_node("NonZero", ["r"], ["y"], name="nz")],
        [_vi("x", TensorProto.FLOAT, [2, 3])], [_vi("y", TensorProto.INT64, None)], [shape])
    p = cuda_placement(m, 0)
    assert p["nodes"] == [("flat", "Reshape", "cuda", ""), ("nz", "NonZero", "cpu", "no CUDA kernel for NonZero")]
    # x goes up before the Reshape, the reshaped value comes back down for NonZero; the constant
    # shape is read on the host (no copy) and y is produced on the host (no copy).
    assert p["copies"] == [("x", "to_device", 0), ("r", "to_host", 1)]


def test_shape_reads_only_metadata_and_a_device_graph_output_is_copied_back():
    m = _graph(
        [helper.make_node("Identity", ["x"], ["a"], name="id"),
         helper.make_node("Shape", ["a"], ["s"], name="shape")],
        [_vi("x", TensorProto.FLOAT, [4, 5])], [_vi("a", TensorProto.FLOAT, None), _vi("s", TensorProto.INT64, None)])
    p = cuda_placement(m, 0)
    assert [n[2] for n in p["nodes"]] == ["cuda", "cuda"]
    # Shape reads a's shape only (no copy); its output is on the host; `a` leaves the device.
    assert p["copies"] == [("x", "to_device", 0), ("a", "to_host", -1)]


def test_run_time_shape_input_is_read_on_the_host_without_a_copy():
    m = _graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"], name="r")],
        [_vi("x", TensorProto.FLOAT, [6]), _vi("s", TensorProto.INT64, [2])], [_vi("y", TensorProto.FLOAT, None)])
    p = cuda_placement(m, 0)
    assert p["nodes"] == [("r", "Reshape", "cuda", "")]
    assert ("s", "to_device", 0) not in p["copies"]
    assert p["copies"] == [("x", "to_device", 0), ("y", "to_host", -1)]


def test_dropout_with_mask_output_stays_on_the_cpu():
    m = make_model("Dropout", {"x": np.zeros((2, 3), np.float32)}, n_outputs=2, opset=13)
    (node,) = cuda_placement(m, 0)["nodes"]
    assert node[2] == "cpu" and "mask" in node[3]


def test_unknown_dtype_keeps_a_node_on_the_cpu_only_when_its_wrapper_needs_it():
    # An op without a wrapper falls back whatever its dtype; the reason names the op.
    m = make_model("Einsum", {"a": np.zeros((2, 3), np.float64), "b": np.zeros((3, 4), np.float64)},
                   attrs={"equation": "ij,jk->ik"})
    (node,) = cuda_placement(m, 0)["nodes"]
    assert node[2] == "cpu" and "Einsum" in node[3]


def test_placement_is_consistent_with_copies():
    """Every copy to the device is read by a device node, every copy to the host by a CPU node
    (or by a device node's host input) or is a graph output; CPU nodes always carry a reason."""
    for name in zoo.NAMES:
        p = cuda_placement(zoo.build(name, "tiny"))
        for node_name, op, where, reason in p["nodes"]:
            assert where in ("cuda", "cpu")
            assert (reason == "") == (where == "cuda"), (name, node_name, op, reason)
        for value, direction, step in p["copies"]:
            if direction == "to_device":
                assert p["nodes"][step][2] == "cuda", (name, value)
            elif step >= 0:
                assert p["nodes"][step][2] in ("cpu", "cuda"), (name, value)
        seen = [(v, d) for v, d, _ in p["copies"]]
        assert len(seen) == len(set(seen)), f"{name}: a value is copied twice the same way"


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_placement_reports_every_node(name):
    model = zoo.build(name, "tiny")
    p = cuda_placement(model)
    # A CUDA session leaves out the CPU-only layout pass (nhwc_layout, level 99, the only pass
    # there), so its graph is the CPU session's at level 2.
    opts = runnx.SessionOptions()
    opts.graph_optimization_level = runnx.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    sess = runnx.InferenceSession(model.SerializeToString(), opts)
    ops = [op for _, op, *_ in sess._sess.kernel_choices()]
    assert [n[1] for n in p["nodes"]] == ops  # same optimised graph, same order


def test_cpu_only_layout_pass_is_left_out_of_cuda_sessions():
    model = zoo.build("mobilenetv2", "tiny")
    cpu_ops = {op for _, op, *_ in runnx.InferenceSession(model.SerializeToString())._sess.kernel_choices()}
    assert "NhwcConv" in cpu_ops  # the CPU session takes the channels-last layout
    cuda_ops = {op for _, op, *_ in cuda_placement(model)["nodes"]}
    assert "NhwcConv" not in cuda_ops and cuda_ops & {"Conv", "FusedConv"}


def test_placement_only_session_runs_on_the_cpu_and_says_so():
    m = make_model("Relu", {"x": np.zeros((2, 3), np.float32)})
    sess = runnx._C.Session(m.SerializeToString(), {
        "providers": [("CUDAExecutionProvider", {}), ("CPUExecutionProvider", {})], "placement_only": True})
    assert sess.providers() == ["CPUExecutionProvider"]
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_zoo_models_run_wholly_on_cuda_except_host_shape_arithmetic():
    for name in zoo.NAMES:
        p = cuda_placement(zoo.build(name, "tiny"))
        reasons = {reason for _, _, where, reason in p["nodes"] if where == "cpu"}
        assert reasons <= {"integer shape arithmetic on host values stays on the CPU"}, (name, reasons)
        if name != "bert":
            assert not reasons, name
            # Only the feed goes up and the result comes down.
            assert [d for _, d, _ in p["copies"]] == ["to_device", "to_host"], (name, p["copies"])


def test_small_integer_results_of_host_values_stay_on_the_host():
    (node,) = cuda_placement(make_model("Transpose", {"x": np.zeros((2, 3, 4), np.int64)}), 0)["nodes"]
    assert node[2:] == ("cpu", "integer shape arithmetic on host values stays on the CPU")


def test_shape_chain_stays_on_the_host_and_feeds_reshape_without_copies():
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    minus1 = numpy_helper.from_array(np.array([-1], np.int64), "minus1")
    m = _graph(
        [helper.make_node("Relu", ["x"], ["a"], name="relu"),
         helper.make_node("Shape", ["a"], ["s"], name="shape"),
         helper.make_node("Gather", ["s", "zero"], ["b"], name="gather", axis=0),
         helper.make_node("Unsqueeze", ["b", "axes"], ["b1"], name="unsq"),
         helper.make_node("Concat", ["b1", "minus1"], ["target"], name="concat", axis=0),
         helper.make_node("Reshape", ["a", "target"], ["y"], name="reshape")],
        [_vi("x", TensorProto.FLOAT, ["n", 3, 4])], [_vi("y", TensorProto.FLOAT, None)], [axes, zero, minus1])
    p = cuda_placement(m, 0)
    where = {n[0]: n[2] for n in p["nodes"]}
    assert where == {"relu": "cuda", "shape": "cuda", "gather": "cpu", "unsq": "cpu", "concat": "cpu", "reshape": "cuda"}
    assert p["copies"] == [("x", "to_device", 0), ("y", "to_host", -1)]
    # The same model runs on the CPU with the placement computed (and gives Reshape's answer).
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    (y,) = runnx.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    np.testing.assert_array_equal(y, np.maximum(x, 0).reshape(2, -1))


@pytest.mark.parametrize(
    "op, feeds, kw, reason",
    [
        ("Add", {"a": np.zeros((2, 3)), "b": np.zeros((2, 3))}, {}, "double input has no CUDA kernel"),
        ("Gemm", {"a": np.zeros((3, 2), np.float32), "b": np.zeros((3, 4), np.float32)}, {"attrs": {"transA": 1}},
         "transA=1 has no CUDA kernel"),
        ("MaxPool", {"x": np.zeros((1, 2, 5, 5), np.float32)}, {"attrs": {"kernel_shape": [2, 2]}, "n_outputs": 2},
         "the Indices output has no CUDA kernel"),
        ("Conv", {"x": np.zeros((1, 4, 5, 5), np.float32)},
         {"initializers": {"w": np.zeros((4, 2, 3, 3), np.float32)}, "attrs": {"group": 2}},
         "grouped convolutions other than depthwise have no CUDA kernel"),
        ("Conv", {"x": np.zeros((1, 2, 5), np.float32)}, {"initializers": {"w": np.zeros((4, 2, 3), np.float32)}},
         "only 2-D convolutions (rank-4 input) have a CUDA kernel"),
        ("Conv", {"x": np.zeros((1, 2, 5, 5), np.float32), "w": np.zeros((4, 2, 3, 3), np.float32)}, {},
         "weights computed at run time have no CUDA kernel"),
    ],
)
def test_unsupported_forms_fall_back_with_their_reason(op, feeds, kw, reason):
    (node,) = cuda_placement(make_model(op, feeds, **kw), 0)["nodes"]
    assert node[2] == "cpu"
    assert node[3] == f"{op}: {reason}"


@pytest.mark.parametrize(
    "op, feeds, kw",
    [
        ("Add", {"a": np.zeros((2, 3), np.float16), "b": np.zeros((3,), np.float16)}, {}),
        ("MatMul", {"a": np.zeros((2, 5, 3), np.float32), "b": np.zeros((3, 4), np.float32)}, {}),
        ("Softmax", {"x": np.zeros((2, 3), np.float32)}, {"attrs": {"axis": 0}}),
        ("Conv", {"x": np.zeros((1, 4, 5, 5), np.float32)},
         {"initializers": {"w": np.zeros((4, 1, 3, 3), np.float32)}, "attrs": {"group": 4}}),  # depthwise
        ("Transpose", {"x": np.zeros((2, 3, 40), np.int64)}, {"attrs": {"perm": [2, 0, 1]}}),
        ("Cast", {"x": np.zeros((2, 3), np.float32)}, {"attrs": {"to": TensorProto.FLOAT16}}),
    ],
)
def test_supported_forms_go_to_the_device(op, feeds, kw):
    (node,) = cuda_placement(make_model(op, feeds, **kw), 0)["nodes"]
    assert node[2:] == ("cuda", ""), node


# ----------------------------------------------------------------------------- int8 (QDQ) models


def _u8(shape):
    return np.zeros(shape, np.uint8)


def _i8(shape):
    return np.zeros(shape, np.int8)


def test_qdq_mlp_quantized_by_onnxruntime_runs_wholly_on_cuda(tmp_path):
    pytest.importorskip("onnxruntime.quantization")
    sys.path.insert(0, os.path.join(HERE, "..", "passes"))
    from test_qdq_fusion import quantized_mlp

    model = quantized_mlp(tmp_path, per_channel=True, expose_layers=False)
    p = cuda_placement(model)
    assert [n for n in p["nodes"] if n[2] != "cuda"] == []
    assert [n[1] for n in p["nodes"]].count("QGemm") == 3
    # Only the float input goes up and the float output comes down.
    assert p["copies"] == [("input", "to_device", 0), ("output", "to_host", -1)]
    # Unfused (level 0), the QDQ nodes and the float Gemms all have CUDA kernels too.
    assert [n for n in cuda_placement(model, 0)["nodes"] if n[2] != "cuda"] == []


def test_qdq_mlp_from_the_gpu_bench_quantizer_runs_wholly_on_cuda():
    from bench.gpu_bench import qdq_quantize
    from bench.models import mlp

    calib = [zoo.sample_inputs("mlp", 8, "tiny", seed=s) for s in (1, 2)]
    p = cuda_placement(qdq_quantize(mlp.build("tiny"), calib))
    assert [n for n in p["nodes"] if n[2] != "cuda"] == []
    assert [n[1] for n in p["nodes"]] == ["QuantizeLinear", "QGemm", "QGemm", "QGemm", "DequantizeLinear", "Sigmoid"]


def test_qdq_resnet_from_the_gpu_bench_quantizer_runs_wholly_on_cuda():
    from bench.gpu_bench import qdq_quantize

    calib = [zoo.sample_inputs("resnet50", 2, "tiny", seed=1)]
    model = zoo.build("resnet50", "tiny")
    p = cuda_placement(qdq_quantize(model, calib))
    assert [n for n in p["nodes"] if n[2] != "cuda"] == []
    convs = sum(n.op_type == "Conv" for n in model.graph.node)
    assert [n[1] for n in p["nodes"]].count("QLinearConv") == convs
    assert p["copies"] == [("input", "to_device", 0), ("output", "to_host", -1)]


_QLM_ORDER = ["a", "as", "za", "b", "bs", "zb", "ys", "zy"]


def _qlinear_inits(**over):
    inits = {"as": np.float32(0.1), "za": np.uint8(3), "b": _i8((4, 5)), "bs": np.float32(0.1), "zb": np.int8(0),
             "ys": np.float32(0.2), "zy": np.uint8(7)}
    inits.update(over)
    return inits


@pytest.mark.parametrize(
    "op, feeds, kw, reason",
    [
        ("MatMulInteger", {"a": _u8((2, 4)), "b": _i8((4, 5))}, {}, "B must be a constant 2-D weight on CUDA"),
        ("MatMulInteger", {"a": _u8((2, 4))}, {"initializers": {"b": _i8((3, 4, 5))}},
         "B must be a constant 2-D weight on CUDA"),
        ("MatMulInteger", {"a": _u8((2, 4))}, {"initializers": {"b": _i8((4, 5)), "za": _u8((2,))}},
         "A's zero point must be one value per tensor on CUDA"),
        ("QLinearMatMul", {"a": _u8((2, 4))},
         {"initializers": _qlinear_inits(**{"as": np.ones(2, np.float32), "za": _u8((2,))}), "input_order": _QLM_ORDER},
         "a_scale must be one value per tensor on CUDA"),
        ("QuantizeLinear", {"x": np.zeros((2, 4), np.float32)},
         {"initializers": {"s": np.ones((2, 2), np.float32), "z": _u8((2, 2))}, "attrs": {"block_size": 2},
          "opset": 21},
         "blocked quantization has no CUDA kernel"),
        ("ConvInteger", {"x": _u8((1, 4, 5, 5))}, {"initializers": {"w": _i8((4, 2, 3, 3))}, "attrs": {"group": 2}},
         "grouped int8 convolutions have no CUDA kernel"),
        ("ConvInteger", {"x": _u8((1, 4, 5)), "w": _i8((3, 4, 3))}, {},
         "only 2-D convolutions with constant weights have an int8 CUDA kernel"),
    ],
)
def test_quantized_forms_without_a_cuda_kernel_fall_back(op, feeds, kw, reason):
    kw.setdefault("opset", 10 if op != "QuantizeLinear" else 21)
    (node,) = cuda_placement(make_model(op, feeds, **kw), 0)["nodes"]
    assert node[2] == "cpu"
    assert node[3] == f"{op}: {reason}"


@pytest.mark.parametrize(
    "op, feeds, kw",
    [
        # (more than 64 int32 results: small integer results of host values stay on the CPU)
        ("MatMulInteger", {"a": _u8((2, 8, 4))}, {"initializers": {"b": _i8((4, 5)), "za": np.uint8(1),
                                                                    "zb": _i8((5,))}, "opset": 10}),
        ("QLinearMatMul", {"a": _u8((2, 4))},
         {"initializers": _qlinear_inits(bs=np.ones(5, np.float32), zb=_i8((5,))), "input_order": _QLM_ORDER,
          "opset": 10}),
        ("QuantizeLinear", {"x": np.zeros((2, 4), np.float32)},
         {"initializers": {"s": np.ones(4, np.float32), "z": _i8((4,))}, "opset": 13}),
        ("DequantizeLinear", {"x": np.zeros((3,), np.int32)}, {"initializers": {"s": np.float32(2.0)}, "opset": 13}),
        ("ConvInteger", {"x": _u8((1, 3, 8, 8))}, {"initializers": {"w": _i8((4, 3, 3, 3)), "xz": np.uint8(2)},
                                                   "attrs": {"pads": [1, 1, 1, 1]}, "opset": 10}),
    ],
)
def test_quantized_forms_go_to_the_device(op, feeds, kw):
    (node,) = cuda_placement(make_model(op, feeds, **kw), 0)["nodes"]
    assert node[2:] == ("cuda", ""), node


def test_attention_in_bshd_layout_stays_on_the_cpu_with_its_reason():
    # attention_layout (CPU-only, level 99) makes these; the device kernel takes the default only.
    q = _vi("q", TensorProto.FLOAT, [1, 5, 2, 8])
    m = _graph([helper.make_node("ScaledDotProductAttention", ["q", "q", "q"], ["y"], name="sdpa",
                                 domain="com.runnx", layout="bshd")],
               [q], [_vi("y", TensorProto.FLOAT, None)])
    m.opset_import.append(helper.make_opsetid("com.runnx", 1))
    (node,) = cuda_placement(m, 0)["nodes"]
    assert node[:3] == ("sdpa", "ScaledDotProductAttention", "cpu") and "layout 'bshd'" in node[3]
    m.graph.node[0].attribute.pop()  # the default layout goes to the device
    assert cuda_placement(m, 0)["nodes"] == [("sdpa", "ScaledDotProductAttention", "cuda", "")]
