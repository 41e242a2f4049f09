"""QuantizeLinear, DequantizeLinear (per-tensor, per-axis, blocked), DynamicQuantizeLinear."""

import helpers
import numpy as np
import pytest
import runnx
from helpers import check_against_reference, make_model, run_runnx

# The shared helper's type table lacks the 16-bit integers that quantization uses.
helpers._NP_TO_ONNX.setdefault(np.dtype(np.int16), 5)
helpers._NP_TO_ONNX.setdefault(np.dtype(np.uint16), 4)

RNG = np.random.default_rng(2)

QTYPES = [np.uint8, np.int8]
QTYPES21 = [np.uint8, np.int8, np.uint16, np.int16]


def _zp(shape, qtype):
    info = np.iinfo(qtype)
    return RNG.integers(max(info.min, -100), min(info.max, 100) + 1, size=shape).astype(qtype)


@pytest.mark.parametrize("opset", [10, 13, 19, 21])
@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (2, 3, 17), (0, 3)])
def test_quantize_per_tensor(opset, qtype, shape):
    x = RNG.uniform(-300, 300, size=shape).astype(np.float32)
    x.flat[: min(x.size, 4)] = [0.5, 1.5, -2.5, 2.5][: min(x.size, 4)]  # halves round to even
    check_against_reference("QuantizeLinear", {"x": x},
                            initializers={"s": np.array(1.0 if x.size < 5 else 0.7, np.float32),
                                          "z": _zp((), qtype)}, opset=opset)


@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("qtype", QTYPES21)
def test_quantize_per_axis_runtime_scale(opset, axis, qtype):
    if opset < 21 and np.dtype(qtype).itemsize == 2:
        pytest.skip("16-bit types from opset 21")
    x = RNG.uniform(-50, 50, size=(2, 3, 5)).astype(np.float32)
    d = x.shape[axis]
    s = RNG.uniform(0.1, 1, size=d).astype(np.float32)
    check_against_reference("QuantizeLinear", {"x": x, "s": s, "z": _zp((d,), qtype)},
                            attrs={"axis": axis}, opset=opset)


@pytest.mark.parametrize("axis,block", [(0, 2), (1, 2), (1, 3), (-1, 4), (2, 5)])
@pytest.mark.parametrize("qtype", [np.int8, np.uint16])
def test_quantize_dequantize_blocked(axis, block, qtype):
    x = RNG.uniform(-50, 50, size=(3, 4, 5)).astype(np.float32)
    a = axis % 3
    sshape = list(x.shape)
    sshape[a] = -(-x.shape[a] // block)
    s = RNG.uniform(0.1, 1, size=sshape).astype(np.float32)
    z = _zp(sshape, qtype)
    attrs = {"axis": axis, "block_size": block}
    (q,) = check_against_reference("QuantizeLinear", {"x": x, "s": s, "z": z}, attrs=attrs, opset=21)
    check_against_reference("DequantizeLinear", {"q": q, "s": s, "z": z}, attrs=attrs, opset=21)


def test_quantize_defaults_and_saturation():
    x = np.array([-1e9, -3.0, 0.0, 3.0, 1e9, np.inf, -np.inf], np.float32)
    # No zero point: uint8, saturating. (onnx.reference turns +inf into 0 through an int32
    # overflow; saturating to 255 is the intended result, so infinities are checked by hand.)
    check_against_reference("QuantizeLinear", {"x": x[:5], "s": np.array(0.5, np.float32)},
                            opset=13)
    feeds = {"x": x, "s": np.array(0.5, np.float32)}
    (y,) = run_runnx(make_model("QuantizeLinear", feeds, opset=13), feeds)
    np.testing.assert_array_equal(y, np.array([0, 0, 0, 6, 255, 255, 0], np.uint8))
    # output_dtype without a zero point (opset 21).
    model = make_model("QuantizeLinear", {"x": x, "s": np.array(0.5, np.float32)},
                       attrs={"output_dtype": 3}, opset=21)
    (y,) = run_runnx(model, {"x": x, "s": np.array(0.5, np.float32)})
    np.testing.assert_array_equal(y, np.array([-128, -6, 0, 6, 127, 127, -128], np.int8))


@pytest.mark.parametrize("opset", [10, 13, 19, 21])
@pytest.mark.parametrize("qtype", QTYPES + [np.int32])
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 17), (0, 3)])
def test_dequantize_per_tensor(opset, qtype, shape):
    info = np.iinfo(qtype)
    q = RNG.integers(max(info.min, -1000), min(info.max, 1000) + 1, size=shape).astype(qtype)
    inits = {"s": np.array(0.25, np.float32)}
    if qtype != np.int32:
        inits["z"] = _zp((), qtype)
    if opset >= 19:
        check_against_reference("DequantizeLinear", {"q": q}, initializers=inits, opset=opset)
    # onnx.reference has no DequantizeLinear before opset 19: compare with the formula.
    (y,) = run_runnx(make_model("DequantizeLinear", {"q": q}, initializers=inits, opset=opset),
                     {"q": q})
    expected = (q.astype(np.float32) - inits.get("z", np.int8(0)).astype(np.float32)) * inits["s"]
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("axis", [0, 1, -2])
@pytest.mark.parametrize("qtype", QTYPES21)
def test_dequantize_per_axis(axis, qtype):
    q = _zp((4, 3, 2), qtype)
    d = q.shape[axis]
    s = RNG.uniform(0.1, 1, size=d).astype(np.float32)
    check_against_reference("DequantizeLinear", {"q": q, "s": s, "z": _zp((d,), qtype)},
                            attrs={"axis": axis}, opset=21)


def test_quant_errors():
    x = np.zeros((2, 3), np.float32)
    feeds = {"x": x, "s": np.ones(4, np.float32)}
    with pytest.raises(runnx.InvalidArgument, match="scale"):
        run_runnx(make_model("QuantizeLinear", feeds, opset=13), feeds)
    feeds = {"x": x, "s": np.ones(3, np.float32), "z": np.zeros(2, np.uint8)}
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="zero point"):
        run_runnx(make_model("QuantizeLinear", feeds, opset=13), feeds)
    feeds = {"x": x, "s": np.ones((2, 3), np.float32)}
    with pytest.raises(runnx.InvalidArgument, match="blocked"):
        run_runnx(make_model("QuantizeLinear", feeds, attrs={"block_size": 2}, opset=21), feeds)
    feeds = {"q": np.zeros(3, np.int8), "s": np.ones(1, np.float32), "z": np.zeros(1, np.uint8)}
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="type"):
        run_runnx(make_model("DequantizeLinear", feeds, opset=13), feeds)
    feeds = {"x": x, "s": np.ones(1, np.float32)}
    with pytest.raises(runnx.InvalidArgument, match="axis"):
        run_runnx(make_model("QuantizeLinear", {"x": x, "s": np.ones(3, np.float32)},
                             attrs={"axis": 2}, opset=13), {"x": x, "s": np.ones(3, np.float32)})


@pytest.mark.parametrize("shape,low,high", [((7,), -3, 5), ((3, 5), 1, 4), ((2, 3, 17), -6, -1),
                                            ((4,), 0, 0), ((), -2, 2)])
def test_dynamic_quantize(shape, low, high):
    x = RNG.uniform(low, high, size=shape).astype(np.float32)
    check_against_reference("DynamicQuantizeLinear", {"x": x}, 3, opset=11)


def test_dynamic_quantize_empty():
    # onnx.reference cannot reduce an empty tensor; the range is then [0, 0].
    x = np.zeros((0, 3), np.float32)
    y, s, z = run_runnx(make_model("DynamicQuantizeLinear", {"x": x}, 3, opset=11), {"x": x})
    assert y.shape == (0, 3) and y.dtype == np.uint8
    np.testing.assert_array_equal(s, np.float32(1 / 255))
    assert z.shape == () and z == 0
