"""qdq_fusion: DequantizeLinear -> MatMul / Gemm -> QuantizeLinear into QLinearMatMul / com.runnx
QGemm. The integer op sums exactly and rounds once, the float path rounds as it goes, so a
quantized output may move by one step where the float result sits on a rounding boundary (as
with onnxruntime's own QDQ fusion); everything else must match exactly."""

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from pass_helpers import FLOAT, graph_model, run_both, session

from bench.models import mlp

RNG = np.random.default_rng(11)
U8, I8 = TensorProto.UINT8, TensorProto.INT8


def op_types(model, level=99):
    """Op types the session runs after the passes at `level`."""
    return [c[1] for c in session(model, level)._sess.kernel_choices()]


def assert_within_one_step(fused, plain, max_off=0.05):
    """Quantized outputs equal but for a few elements one step apart."""
    assert fused.dtype == plain.dtype and fused.shape == plain.shape
    diff = np.abs(fused.astype(np.int32) - plain.astype(np.int32))
    assert diff.max(initial=0) <= 1
    assert (diff != 0).mean() <= max_off if diff.size else True


def add_bias_dq(nodes, inits, ins, n, ws, per_column):
    """An int32 bias of n values at scale x_scale (0.02) * w_scale, dequantized, as the layer's C."""
    inits.update(b=RNG.integers(-3000, 3000, n).astype(np.int32), bs=np.float32(0.02) * ws,
                 bz=np.zeros(n, np.int32) if per_column else np.int32(0))
    nodes.append(helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"], axis=0))
    ins.append("bd")


def layer_model(op, m, k, n, *, per_column=False, bias=True, trans_b=True, wtype=np.int8, xtype=np.uint8,
                extra_nodes=(), extra_outputs=(), **over):
    """x (float) -> Q -> DQ -> op(DQ(w) [, DQ(bias)]) -> Q -> y (quantized). `over` replaces initializers."""
    w = RNG.integers(-127, 128, (n, k) if trans_b else (k, n)).astype(wtype)
    ws = RNG.uniform(0.002, 0.01, n).astype(np.float32) if per_column else np.float32(0.005)
    inits = {
        "xs": np.float32(0.02), "xz": np.asarray(RNG.integers(0, 50), xtype) if xtype == np.uint8 else np.int8(0),
        "w": w, "ws": ws, "wz": np.zeros(n, wtype) if per_column else wtype(0),
        "ys": np.float32(0.05 * np.sqrt(k) / 8), "yz": np.uint8(128),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0 if trans_b else 1),
    ]
    ins = ["xd", "wd"]
    if bias:
        add_bias_dq(nodes, inits, ins, n, ws, per_column)
    attrs = {"transB": int(trans_b)} if op == "Gemm" else {}
    nodes.append(helper.make_node(op, ins, ["p"], **attrs))
    nodes.append(helper.make_node("QuantizeLinear", ["p", "ys", "yz"], ["y"]))
    nodes.extend(extra_nodes)
    inits.update(over)
    outputs = [("y", U8, None), *extra_outputs]
    return graph_model(nodes, [("x", FLOAT, [m, k])], outputs, inits, opset=13)


@pytest.mark.parametrize("m,k,n", [(1, 64, 32), (7, 33, 17), (16, 300, 5)])
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_layer_fuses(m, k, n, per_column, bias, trans_b):
    model = layer_model("Gemm", m, k, n, per_column=per_column, bias=bias, trans_b=trans_b)
    x = RNG.standard_normal((m, k)).astype(np.float32)
    plain, fused, fired = run_both(model, {"x": x})
    assert fired.get("qdq_fusion") == 1
    assert_within_one_step(fused[0], plain[0])
    assert "QGemm" in op_types(model)


@pytest.mark.parametrize("m,k,n", [(1, 64, 32), (5, 17, 3)])
@pytest.mark.parametrize("per_column", [False, True])
def test_matmul_layer_fuses_to_qlinear_matmul(m, k, n, per_column):
    model = layer_model("MatMul", m, k, n, per_column=per_column, bias=False, trans_b=False)
    x = RNG.standard_normal((m, k)).astype(np.float32)
    plain, fused, fired = run_both(model, {"x": x})
    assert fired.get("qdq_fusion") == 1
    assert_within_one_step(fused[0], plain[0])
    assert "QLinearMatMul" in op_types(model) and "MatMul" not in op_types(model)


def test_matmul_of_two_activations_fuses():
    # Attention-style: both operands computed; per-tensor parameters on both.
    inits = {"s1": np.float32(0.03), "z1": np.uint8(120), "s2": np.float32(0.02), "z2": np.int8(3),
             "ys": np.float32(0.4), "yz": np.uint8(100)}
    nodes = [
        helper.make_node("QuantizeLinear", ["a", "s1", "z1"], ["aq"]),
        helper.make_node("DequantizeLinear", ["aq", "s1", "z1"], ["ad"]),
        helper.make_node("QuantizeLinear", ["b", "s2", "z2"], ["bq"]),
        helper.make_node("DequantizeLinear", ["bq", "s2", "z2"], ["bd"]),
        helper.make_node("MatMul", ["ad", "bd"], ["p"]),
        helper.make_node("QuantizeLinear", ["p", "ys", "yz"], ["y"]),
    ]
    model = graph_model(nodes, [("a", FLOAT, [2, 3, 5, 8]), ("b", FLOAT, [2, 3, 8, 6])], [("y", U8, None)], inits)
    feeds = {"a": RNG.standard_normal((2, 3, 5, 8)).astype(np.float32),
             "b": RNG.standard_normal((2, 3, 8, 6)).astype(np.float32)}
    plain, fused, fired = run_both(model, feeds)
    assert fired.get("qdq_fusion") == 1
    assert_within_one_step(fused[0], plain[0])


@pytest.mark.parametrize("case", ["bias_scale", "bias_zero", "alpha", "product_read_twice", "float_bias",
                                  "runtime_scale"])
def test_does_not_fire(case):
    m, k, n = 3, 16, 8
    extra_nodes, extra_outputs, over, inputs = [], [], {}, None
    if case == "bias_scale":
        over = {"bs": np.float32(0.0123)}
    elif case == "bias_zero":
        over = {"bz": np.int32(1)}
    elif case == "product_read_twice":
        extra_nodes = [helper.make_node("Relu", ["p"], ["r"])]
        extra_outputs = [("r", FLOAT, None)]
    model = layer_model("Gemm", m, k, n, extra_nodes=extra_nodes, extra_outputs=extra_outputs, **over)
    gemm = next(nd for nd in model.graph.node if nd.op_type == "Gemm")
    if case == "alpha":
        gemm.attribute.append(helper.make_attribute("alpha", 0.5))
    elif case == "float_bias":
        b = numpy_helper.from_array(RNG.standard_normal(n).astype(np.float32), "fb")
        model.graph.initializer.append(b)
        gemm.input[2] = "fb"
    elif case == "runtime_scale":
        # y's scale is a graph input: not a constant.
        for i, init in enumerate(model.graph.initializer):
            if init.name == "ys":
                del model.graph.initializer[i]
                break
        model.graph.input.append(helper.make_tensor_value_info("ys", FLOAT, []))
        inputs = {"ys": np.float32(0.3)}
    feeds = {"x": RNG.standard_normal((m, k)).astype(np.float32), **(inputs or {})}
    plain, fused, fired = run_both(model, feeds)
    assert "qdq_fusion" not in fired
    for a, b in zip(plain, fused):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ a model quantized by onnxruntime


def quantized_mlp(tmp_path, scale="tiny", per_channel=False, reduce_range=False, expose_layers=True):
    """The zoo MLP quantized by onnxruntime.quantization.quantize_static (QDQ, uint8 activations,
    int8 weights). `expose_layers` makes every quantized layer output a graph output too.
    onnxruntime is imported here only: tests/cuda imports this module on machines without it."""
    quant = pytest.importorskip("onnxruntime.quantization")

    class Calibration(quant.CalibrationDataReader):
        """Random standard-normal batches for quantize_static's calibration."""

        def __init__(self, features, batches=8):
            self._it = iter([{"input": np.random.default_rng(i).standard_normal((4, features)).astype(np.float32)}
                             for i in range(batches)])

        def get_next(self):
            return next(self._it, None)

    src, dst = tmp_path / "mlp.onnx", tmp_path / "mlp_q.onnx"
    onnx.save(mlp.build(scale), src)
    quant.quantize_static(str(src), str(dst), Calibration(mlp.PRESETS[scale]["features"]),
                          quant_format=quant.QuantFormat.QDQ, activation_type=quant.QuantType.QUInt8,
                          weight_type=quant.QuantType.QInt8, per_channel=per_channel,
                          reduce_range=reduce_range)
    model = onnx.load(dst)
    if expose_layers:
        for nd in model.graph.node:
            if nd.op_type == "QuantizeLinear" and nd.input[0] != "input":
                model.graph.output.append(helper.make_tensor_value_info(nd.output[0], U8, None))
    return model


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantized_mlp_fuses_every_layer(tmp_path, per_channel):
    model = quantized_mlp(tmp_path, per_channel=per_channel)
    x = RNG.standard_normal((9, 64)).astype(np.float32)
    plain, fused, fired = run_both(model, {"input": x})
    assert fired.get("qdq_fusion") == 3  # the three Gemms
    assert op_types(model).count("QGemm") == 3 and "Gemm" not in op_types(model)
    # The first layer sees the same input in both graphs: at most one step apart. Later layers
    # inherit those steps, so they are compared loosely; the float output within a few steps.
    assert_within_one_step(fused[1], plain[1])
    for f, p in zip(fused[2:], plain[2:]):
        assert np.abs(f.astype(np.int32) - p.astype(np.int32)).max() <= 3
    out_scale = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "output_scale")
    np.testing.assert_allclose(fused[0], plain[0], atol=4 * float(out_scale), rtol=0)


def test_quantized_mlp_matches_onnxruntime(tmp_path):
    # reduce_range keeps int8 weights in 7 bits, where onnxruntime's AVX2 u8*s8 kernel is exact;
    # its QDQ fusion runs the same integer math, so the layers agree exactly with ours.
    model = quantized_mlp(tmp_path, scale="full", reduce_range=True)
    ort = pytest.importorskip("onnxruntime")
    x = RNG.standard_normal((17, 64)).astype(np.float32)
    ours = session(model, 99).run(None, {"input": x})
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    theirs = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
        None, {"input": x})
    for layer in (1, 2, 3):
        np.testing.assert_array_equal(ours[layer], theirs[layer])
    out_scale = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "output_scale")
    np.testing.assert_allclose(ours[0], theirs[0], atol=1.01 * float(out_scale), rtol=0)


# ------------------------------------------------------------------------------- convolutions


def conv_layer_model(xshape, m, k, attrs, *, per_channel=True, bias=True, group=1):
    """x (float) -> Q -> DQ -> Conv(DQ(w) [, DQ(bias)]) -> Q -> y, weights per output channel."""
    c = xshape[1]
    w = RNG.integers(-127, 128, (m, c // group) + k).astype(np.int8)
    ws = RNG.uniform(0.002, 0.01, m).astype(np.float32) if per_channel else np.float32(0.005)
    inits = {"xs": np.float32(0.02), "xz": np.uint8(RNG.integers(0, 50)), "w": w, "ws": ws,
             "wz": np.zeros(m, np.int8) if per_channel else np.int8(0),
             "ys": np.float32(0.02 * 0.005 * 8 * np.sqrt(w[0].size)), "yz": np.uint8(128)}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
    ]
    ins = ["xd", "wd"]
    if bias:
        add_bias_dq(nodes, inits, ins, m, ws, per_channel)
    nodes.append(helper.make_node("Conv", ins, ["p"], group=group, **attrs))
    nodes.append(helper.make_node("QuantizeLinear", ["p", "ys", "yz"], ["y"]))
    return graph_model(nodes, [("x", FLOAT, list(xshape))], [("y", U8, None)], inits, opset=13)


@pytest.mark.parametrize("xshape,m,k,attrs,group", [
    ((1, 3, 9, 9), 8, (3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}, 1),
    ((2, 4, 5, 5), 6, (1, 1), {}, 1),
    ((1, 6, 7, 7), 6, (3, 3), {"pads": [1, 1, 1, 1]}, 6),
    ((1, 4, 11), 4, (3,), {"dilations": [2]}, 2),
])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_layer_fuses_to_qlinear_conv_unless_grouped(xshape, m, k, attrs, group, per_channel, bias):
    model = conv_layer_model(xshape, m, k, attrs, per_channel=per_channel, bias=bias, group=group)
    x = RNG.standard_normal(xshape).astype(np.float32)
    plain, fused, fired = run_both(model, {"x": x})
    if group > 1:  # grouped convolutions stay float (the float depthwise kernels are faster)
        assert "qdq_fusion" not in fired and "QLinearConv" not in op_types(model)
        assert_within_one_step(fused[0], plain[0])  # other level-99 passes may reorder float sums
        return
    assert fired.get("qdq_fusion") == 1
    assert "QLinearConv" in op_types(model) and "Conv" not in op_types(model)
    assert_within_one_step(fused[0], plain[0])


def test_quantized_cnn_fuses_every_conv(tmp_path):
    quant = pytest.importorskip("onnxruntime.quantization")
    # Conv -> Relu -> Conv(stride 2, groups) -> Relu -> Conv 1x1 -> GlobalAveragePool, as exported.
    rng = np.random.default_rng(3)
    inits = {
        "w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "b1": rng.standard_normal(8).astype(np.float32),
        "w2": rng.standard_normal((8, 4, 3, 3)).astype(np.float32) * 0.2, "b2": rng.standard_normal(8).astype(np.float32),
        "w3": rng.standard_normal((5, 8, 1, 1)).astype(np.float32) * 0.3, "b3": rng.standard_normal(5).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=2),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"]),
        helper.make_node("GlobalAveragePool", ["c3"], ["output"]),
    ]
    src, dst = tmp_path / "cnn.onnx", tmp_path / "cnn_q.onnx"
    onnx.save(graph_model(nodes, [("input", FLOAT, ["batch", 3, 12, 12])], [("output", FLOAT, None)], inits), src)

    class Calibration(quant.CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"input": rng.standard_normal((2, 3, 12, 12)).astype(np.float32)} for _ in range(6)])

        def get_next(self):
            return next(self._it, None)

    quant.quantize_static(str(src), str(dst), Calibration(), quant_format=quant.QuantFormat.QDQ,
                          activation_type=quant.QuantType.QUInt8, weight_type=quant.QuantType.QInt8,
                          per_channel=True)
    model = onnx.load(dst)
    x = rng.standard_normal((3, 3, 12, 12)).astype(np.float32)
    plain, fused, fired = run_both(model, {"input": x})
    assert fired.get("qdq_fusion") == 2  # the grouped conv stays float
    assert op_types(model).count("QLinearConv") == 2
    out_scale = max(float(numpy_helper.to_array(t)) for t in model.graph.initializer if t.name.endswith("_scale")
                    and numpy_helper.to_array(t).size == 1)
    np.testing.assert_allclose(fused[0], plain[0], atol=4 * out_scale, rtol=0)
