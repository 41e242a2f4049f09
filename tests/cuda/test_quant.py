"""int8 on the device: the quantize launchers against numpy, and the quantized ops (QuantizeLinear,
DequantizeLinear, MatMulInteger, QLinearMatMul, com.runnx QGemm) and QDQ models in a CUDA session
against the CPU session. Integer results must be equal: both requantize with the same float32
formula (rint(float(acc) * (a_scale * b_scale / y_scale)) + y_zero, saturated)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import runnx
from runnx import _C

HERE = os.path.dirname(__file__)
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "passes"), os.path.join(HERE, "..", "..")]
from helpers import make_model
from test_qdq_fusion import layer_model

from bench.gpu_bench import qdq_quantize
from bench.models import mlp, zoo

T = _C.cuda._testing if hasattr(_C, "cuda") and hasattr(_C.cuda, "_testing") else None
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
RNG = np.random.default_rng(5)


def q(shape, qtype):
    info = np.iinfo(qtype)
    return RNG.integers(info.min, info.max + 1, size=shape).astype(qtype)


def quantize_ref(x, scale, zero):
    info = np.iinfo(zero.dtype)
    v = np.rint(x / scale) + zero.astype(np.float32)
    v = np.where(np.isnan(v), info.min, v)
    return np.clip(v, info.min, info.max).astype(zero.dtype)


# ------------------------------------------------------------------------------------ launchers


@pytest.mark.parametrize("qtype", [np.uint8, np.int8])
@pytest.mark.parametrize("shape,axis", [((1,), 0), ((7,), 0), ((3, 5), 1), ((2, 3, 17), 1), ((0, 4), 1)])
@pytest.mark.parametrize("per_axis", [False, True])
def test_quantize_and_dequantize_launchers(qtype, shape, axis, per_axis):
    x = RNG.uniform(-300, 300, shape).astype(np.float32)
    x.flat[: min(x.size, 4)] = [0.5, 1.5, -2.5, np.nan][: min(x.size, 4)]  # ties to even, NaN to min
    pshape = (shape[axis],) if per_axis else ()
    scale = RNG.uniform(0.5, 2.0, pshape).astype(np.float32)
    if x.size < 5:
        scale[...] = 1.0
    zero = q(pshape, qtype)
    bshape = [1] * len(shape)
    if per_axis:
        bshape[axis] = shape[axis]
    expected = quantize_ref(x, scale.reshape(bshape), zero.reshape(bshape))
    got = T.quantize_linear(x, scale, zero, axis)
    np.testing.assert_array_equal(got, expected)
    back = T.dequantize_linear(got, scale, zero, axis)
    ref = (got.astype(np.float32) - zero.reshape(bshape).astype(np.float32)) * scale.reshape(bshape)
    np.testing.assert_array_equal(back, ref)


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 17), (64, 33)])
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("qtype", [np.uint8, np.int8])
def test_requantize_launcher(rows, cols, per_column, qtype):
    acc = RNG.integers(-(1 << 20), 1 << 20, (rows, cols)).astype(np.int32)
    bias = RNG.integers(-5000, 5000, cols if per_column else 1).astype(np.int32)
    b_scale = RNG.uniform(0.001, 0.01, cols if per_column else 1).astype(np.float32)
    a_scale, y_scale = np.float32([0.02]), np.float32([3.0])
    zero = q((1,), qtype)
    mult = a_scale[0] * b_scale / y_scale[0]
    info = np.iinfo(qtype)
    expected = np.clip(np.rint((acc + bias).astype(np.float32) * mult) + np.float32(zero[0]), info.min, info.max)
    got = T.requantize(acc, bias, a_scale, b_scale, y_scale, zero)
    np.testing.assert_array_equal(got, expected.astype(qtype))


# ------------------------------------------------------------------------------- CUDA sessions


def both(model, feeds):
    """(CUDA outputs, CPU outputs, nodes left on the CPU) for one model."""
    data = model.SerializeToString()
    cuda = runnx.InferenceSession(data, providers=[CUDA, CPU])
    on_cpu = [n for n in cuda._placement() if n[2] == "cpu"]
    return cuda.run(None, feeds), runnx.InferenceSession(data, providers=[CPU]).run(None, feeds), on_cpu


# Every output has more than 64 elements: smaller integer results of host inputs stay on the CPU
# by design (placement), so they would not exercise the device.
@pytest.mark.parametrize("ashape,bshape", [((70, 1), (1, 1)), ((30, 7), (7, 3)), ((5, 33), (33, 17)),
                                           ((2, 3, 64), (64, 128)), ((7,), (7, 80)), ((20, 0), (0, 4))])
@pytest.mark.parametrize("at,bt", [(np.uint8, np.int8), (np.int8, np.uint8), (np.int8, np.int8)])
def test_matmul_integer_on_cuda(ashape, bshape, at, bt):
    a, b = q(ashape, at), q(bshape, bt)
    model = make_model("MatMulInteger", {"a": a}, initializers={"b": b, "za": q((), at), "zb": q(bshape[-1:], bt)},
                       input_order=["a", "b", "za", "zb"], opset=10)
    got, want, on_cpu = both(model, {"a": a})
    assert on_cpu == []
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("ashape,n", [((1, 64), 32), ((7, 33), 17), ((2, 3, 48), 5), ((64, 256), 256)])
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("yt", [np.uint8, np.int8])
def test_qlinear_matmul_on_cuda(ashape, n, per_column, yt):
    k = ashape[-1]
    a, b = q(ashape, np.uint8), q((k, n), np.int8)
    inits = {"as": np.float32(0.02), "za": q((), np.uint8), "b": b,
             "bs": RNG.uniform(0.01, 0.02, n).astype(np.float32) if per_column else np.float32(0.013),
             "zb": q((n,), np.int8) if per_column else q((), np.int8),
             "ys": np.float32(0.02 * 0.013 * 40 * np.sqrt(k)), "zy": q((), yt)}
    model = make_model("QLinearMatMul", {"a": a}, initializers=inits,
                       input_order=["a", "as", "za", "b", "bs", "zb", "ys", "zy"], opset=10)
    got, want, on_cpu = both(model, {"a": a})
    assert on_cpu == []
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("m,k,n", [(1, 64, 32), (7, 33, 17), (16, 300, 5), (64, 256, 256)])
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_qdq_layer_fuses_and_runs_on_cuda(m, k, n, per_column, trans_b, bias):
    model = layer_model("Gemm", m, k, n, per_column=per_column, bias=bias, trans_b=trans_b)
    x = RNG.standard_normal((m, k)).astype(np.float32)
    got, want, on_cpu = both(model, {"x": x})
    assert on_cpu == []
    np.testing.assert_array_equal(got[0], want[0])


def test_quantized_mlp_on_cuda_matches_the_cpu():
    float_model = mlp.build("full")
    calib = [zoo.sample_inputs("mlp", 64, "full", seed=s) for s in range(1, 4)]
    model = qdq_quantize(float_model, calib)
    for batch in (1, 64):
        feeds = zoo.sample_inputs("mlp", batch, "full", seed=0)
        got, want, on_cpu = both(model, feeds)
        assert on_cpu == []
        # Every layer is integer math on both sides; only the final float Sigmoid may differ.
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-6)


def test_one_node_quantize_dequantize_on_cuda():
    x = RNG.uniform(-3, 3, (4, 6)).astype(np.float32)
    for op, feeds, inits in [
        ("QuantizeLinear", {"x": x}, {"s": RNG.uniform(0.01, 0.05, 6).astype(np.float32), "z": q((6,), np.int8)}),
        ("DequantizeLinear", {"x": q((4, 6), np.uint8)}, {"s": np.float32(0.03), "z": q((), np.uint8)}),
    ]:
        model = make_model(op, feeds, initializers=inits, opset=13, attrs={"axis": 1})
        got, want, on_cpu = both(model, feeds)
        assert on_cpu == []
        np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("xshape,wshape,attrs", [
    ((1, 3, 7, 9), (4, 3, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((2, 16, 6, 6), (32, 16, 1, 1), {}),
    ((2, 2, 9, 9), (3, 2, 3, 2), {"dilations": [2, 3], "strides": [1, 2]}),
    ((2, 3, 5, 6), (5, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((3, 64, 8, 8), (64, 64, 3, 3), {"pads": [1, 1, 1, 1]}),
])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_qlinear_conv_and_conv_integer_on_cuda(xshape, wshape, attrs, per_channel, with_bias):
    m = wshape[0]
    x, w = q(xshape, np.uint8), q(wshape, np.int8)
    ws = RNG.uniform(0.002, 0.01, m).astype(np.float32) if per_channel else np.float32(0.005)
    wz = q((m,), np.int8) if per_channel else q((), np.int8)
    inits = {"xs": np.float32(0.02), "xz": q((), np.uint8), "w": w, "ws": ws, "wz": wz,
             "ys": np.float32(0.02 * 0.005 * 60 * np.sqrt(w[0].size)), "yz": q((), np.uint8)}
    order = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    if with_bias:
        inits["b"] = RNG.integers(-20000, 20000, m).astype(np.int32)
        order.append("b")
    model = make_model("QLinearConv", {"x": x}, initializers=inits, attrs=attrs, input_order=order, opset=10)
    got, want, on_cpu = both(model, {"x": x})
    assert on_cpu == []
    np.testing.assert_array_equal(got[0], want[0])
    model = make_model("ConvInteger", {"x": x}, initializers={"w": w, "xz": inits["xz"], "wz": wz}, attrs=attrs,
                       input_order=["x", "w", "xz", "wz"], opset=10)
    got, want, on_cpu = both(model, {"x": x})
    assert on_cpu == []
    np.testing.assert_array_equal(got[0], want[0])


def test_quantized_resnet_on_cuda_matches_the_cpu():
    model = qdq_quantize(zoo.build("resnet50", "tiny"), [zoo.sample_inputs("resnet50", 2, "tiny", seed=1)])
    for batch in (1, 3):
        feeds = zoo.sample_inputs("resnet50", batch, "tiny", seed=0)
        got, want, on_cpu = both(model, feeds)
        assert on_cpu == []
        # Integer layers agree exactly; the float Adds, pools and Gemm input around them may differ
        # by float rounding, which can move a requantized value by one step.
        scale = max(abs(float(v)) for v in want[0].ravel()) or 1.0
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=0.02 * scale)

