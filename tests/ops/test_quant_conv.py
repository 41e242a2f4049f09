"""ConvInteger and QLinearConv against an exact model (onnx.reference's Conv in float64 over the
zero-point-shifted integers, which is exact at these sizes) and onnxruntime: exact equality."""

import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import runnx
from helpers import make_model, onnx_type, run_reference, run_runnx, threads
from onnx import TensorProto, helper

RNG = np.random.default_rng(17)

# (x shape, w shape, attributes): 1-D to 3-D, padding, strides, dilations, groups, depthwise.
CASES = [
    ((1, 3, 7, 9), (4, 3, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((2, 5, 6, 6), (7, 5, 1, 1), {}),
    ((1, 4, 9), (6, 2, 3), {"group": 2, "pads": [2, 0]}),
    ((1, 6, 8, 7), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),  # depthwise
    ((1, 2, 9, 9), (3, 2, 3, 2), {"dilations": [2, 3], "strides": [1, 2]}),
    ((1, 3, 5, 6), (5, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 2, 4, 5, 3), (3, 2, 2, 3, 1), {"pads": [1, 0, 0, 0, 1, 0]}),
    ((1, 3, 2, 2), (2, 3, 3, 3), {"pads": [1, 1, 1, 1]}),  # every tap near the border
]


def q(shape, qtype, low=None, high=None):
    info = np.iinfo(qtype)
    return RNG.integers(info.min if low is None else low, (info.max if high is None else high) + 1,
                        size=shape).astype(qtype)


def conv_ref(x, w, xz, wz, attrs):
    """int32 conv(x - xz, w - wz) through onnx.reference's float64 Conv (exact here)."""
    xs = x.astype(np.float64) - np.float64(xz)
    wz = np.asarray(wz, np.float64).reshape((-1,) + (1,) * (w.ndim - 1))
    ws = w.astype(np.float64) - wz
    node = helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, xs.shape),
                                            helper.make_tensor_value_info("w", TensorProto.DOUBLE, ws.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    (y,) = run_reference(model, {"x": xs, "w": ws})
    return y.astype(np.int64).astype(np.int32)


def ort_run(model, feeds, out_dtype):
    model.graph.output[0].type.tensor_type.elem_type = onnx_type(out_dtype)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("xshape,wshape,attrs", CASES)
@pytest.mark.parametrize("xt,wt", [(np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_conv_integer(xshape, wshape, attrs, xt, wt, per_channel):
    x, w = q(xshape, xt), q(wshape, wt)
    xz = q((), xt)
    wz = q((wshape[0],), wt) if per_channel else q((), wt)
    model = make_model("ConvInteger", {"x": x}, initializers={"w": w, "xz": xz, "wz": wz}, attrs=attrs,
                       input_order=["x", "w", "xz", "wz"], opset=10)
    expected = conv_ref(x, w, xz, wz, attrs)
    for t in (1, 3):
        got = run_runnx(model, {"x": x}, sess_options=threads(t))[0]
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, expected)


def test_conv_integer_runtime_weights_without_zero_points():
    x, w = q((2, 3, 5, 5), np.uint8), q((4, 3, 3, 3), np.int8)
    model = make_model("ConvInteger", {"x": x, "w": w}, attrs={"pads": [1, 1, 1, 1]}, opset=10)
    np.testing.assert_array_equal(run_runnx(model, {"x": x, "w": w})[0], conv_ref(x, w, 0, 0, {"pads": [1, 1, 1, 1]}))
    np.testing.assert_array_equal(run_runnx(model, {"x": x, "w": w})[0], run_reference(model, {"x": x, "w": w})[0])


def qlinear_conv_model(x, w, scales, zps, bias, attrs, yt):
    inits = {"xs": np.float32(scales[0]), "xz": zps[0], "w": w, "ws": np.asarray(scales[1], np.float32),
             "wz": zps[1], "ys": np.float32(scales[2]), "yz": zps[2].astype(yt)}
    order = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    if bias is not None:
        inits["b"] = bias
        order.append("b")
    return make_model("QLinearConv", {"x": x}, initializers=inits, attrs=attrs, input_order=order, opset=10)


@pytest.mark.parametrize("xshape,wshape,attrs", CASES)
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("yt", [np.uint8, np.int8])
def test_qlinear_conv(xshape, wshape, attrs, per_channel, with_bias, yt):
    m = wshape[0]
    x = q(xshape, yt)  # onnxruntime's kernels: u8 x -> u8 y, s8 x -> s8 y
    w = q(wshape, np.int8, -64, 63)  # 7-bit weights: onnxruntime's AVX2 u8*s8 path is exact there
    ws = RNG.uniform(0.002, 0.01, m).astype(np.float32) if per_channel else np.float32(0.005)
    wz = np.zeros(m, np.int8) if per_channel else np.int8(0)  # onnxruntime takes symmetric weights
    zps = (q((), yt), wz, q((), yt))
    bias = RNG.integers(-20000, 20000, m).astype(np.int32) if with_bias else None
    k = int(np.prod(wshape[1:]))
    scales = (0.02, ws, 0.02 * 0.005 * 60 * np.sqrt(k))
    model = qlinear_conv_model(x, w, scales, zps, bias, attrs, yt)
    acc = conv_ref(x, w, zps[0], wz, attrs).astype(np.int64)
    if bias is not None:
        acc += bias.reshape((1, -1) + (1,) * (x.ndim - 2))
    mult = (np.float32(scales[0]) * np.asarray(ws, np.float32) / np.float32(scales[2])).reshape(
        (1, -1) + (1,) * (x.ndim - 2))
    info = np.iinfo(yt)
    expected = np.clip(np.rint(acc.astype(np.int32).astype(np.float32) * mult) + np.float32(zps[2]), info.min,
                       info.max).astype(yt)
    got = run_runnx(model, {"x": x}, sess_options=threads(2))[0]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, ort_run(model, {"x": x}, yt)[0])


def test_qlinear_conv_errors():
    x, w = q((1, 2, 4, 4), np.uint8), q((3, 2, 3, 3), np.int8)
    model = qlinear_conv_model(x, w, (0.1, np.ones(2, np.float32), 1.0), (np.uint8(0), np.int8(0), np.uint8(0)),
                               None, {}, np.uint8)
    with pytest.raises((runnx.InvalidArgument, runnx.InvalidModel), match="w_scale"):
        run_runnx(model, {"x": x})
    model = qlinear_conv_model(x, w, (0.1, 0.1, 1.0), (np.uint8(0), np.int8(0), np.uint8(0)),
                               np.zeros(2, np.int32), {}, np.uint8)
    with pytest.raises((runnx.InvalidArgument, runnx.InvalidModel), match="bias"):
        run_runnx(model, {"x": x})


@pytest.mark.skipif(os.environ.get("RUNNX_DISABLE_AVX2") == "1", reason="already portable")
def test_portable_paths():
    """The ConvInteger cases again with the AVX2 tile disabled (cpuid is read once per process)."""
    env = dict(os.environ, RUNNX_DISABLE_AVX2="1")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-x", "-p", "no:cacheprovider", "-k", "conv_integer"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
