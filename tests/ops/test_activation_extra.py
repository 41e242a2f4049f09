"""Swish (opset 24) and CumProd (opset 26)."""

import numpy as np
import pytest
import runnx
from helpers import AWKWARD_SHAPES, assert_close, check_against_reference, make_model, run_runnx

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("shape", AWKWARD_SHAPES)
@pytest.mark.parametrize("alpha", [1.0, 0.5, -2.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_swish(shape, alpha, dtype):
    x = RNG.uniform(-20, 20, size=shape).astype(dtype)
    check_against_reference("Swish", {"x": x}, attrs={"alpha": alpha}, opset=24)


def test_swish_extremes():
    x = np.array([-1000, -90, 0, 90, 1000, np.nan], np.float32)
    (y,) = run_runnx(make_model("Swish", {"x": x}, opset=24), {"x": x})
    np.testing.assert_array_equal(y, [-0.0, -0.0, 0, 90, 1000, np.nan])


def _cumprod(x, axis, exclusive, reverse):
    x = np.flip(x, axis) if reverse else x
    y = np.cumprod(x, axis=axis, dtype=x.dtype)
    if exclusive:
        y = np.concatenate([np.ones_like(np.take(y, [0], axis)), np.delete(y, -1, axis)], axis)
    return np.flip(y, axis) if reverse else y


# onnx.reference has no CumProd kernel (only the conformance generator's numpy), so numpy here.
@pytest.mark.parametrize("shape,axis", [((7,), 0), ((3, 5), 1), ((3, 5), -2), ((2, 3, 17), 1),
                                        ((0, 3), 1), ((1, 1, 33), 2)])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32, np.float64])
def test_cumprod(shape, axis, exclusive, reverse, dtype):
    x = RNG.uniform(0.5, 1.5, size=shape).astype(dtype) if dtype in (np.float32, np.float64) \
        else RNG.integers(-2, 3, size=shape).astype(dtype)
    ax = np.array(axis, np.int64 if dtype != np.int32 else np.int32)
    model = make_model("CumProd", {"x": x, "axis": ax},
                       attrs={"exclusive": exclusive, "reverse": reverse}, opset=26)
    (y,) = run_runnx(model, {"x": x, "axis": ax})
    assert_close(y, _cumprod(x, axis, exclusive, reverse))


def test_cumprod_axis_initializer_and_errors():
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    model = make_model("CumProd", {"x": x}, initializers={"axis": np.array([1], np.int32)}, opset=26)
    (y,) = run_runnx(model, {"x": x})
    np.testing.assert_array_equal(y, np.cumprod(x, axis=1))
    feeds = {"x": x, "axis": np.array(2, np.int64)}
    with pytest.raises(runnx.InvalidArgument, match="axis"):
        run_runnx(make_model("CumProd", feeds, opset=26), feeds)
    feeds = {"x": x, "axis": np.array([0, 1], np.int64)}
    with pytest.raises(runnx.InvalidArgument, match="scalar"):
        run_runnx(make_model("CumProd", feeds, opset=26), feeds)
