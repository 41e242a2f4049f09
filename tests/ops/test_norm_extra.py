"""GroupNormalization, LRN, MeanVarianceNormalization, LpNormalization, RMSNormalization."""

import numpy as np
import pytest
import runnx
from helpers import assert_close, check_against_reference, expect_invalid, make_model, run_runnx

RNG = np.random.default_rng(4)


def _group_norm(x, scale, bias, g, eps):
    n, c = x.shape[:2]
    if x.size == 0:
        return x.copy()
    xr = x.reshape(n, g, x.size // max(n * g, 1)).astype(np.float64)
    m = xr.mean(axis=2, keepdims=True)
    v = xr.var(axis=2, keepdims=True)
    z = ((xr - m) / np.sqrt(v + eps)).reshape(x.shape)
    bshape = (1, c) + (1,) * (x.ndim - 2)
    if scale.size != c:  # opset 18: one value per group
        scale, bias = np.repeat(scale, c // g), np.repeat(bias, c // g)
    return (z * scale.reshape(bshape) + bias.reshape(bshape)).astype(x.dtype)


# onnx.reference has no GroupNormalization kernel (it expands the function), so compare with
# numpy.
@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("shape,g", [((2, 6, 5, 3), 3), ((1, 4, 7), 2), ((3, 5), 5), ((2, 8, 1, 1), 1),
                                     ((0, 4, 3), 2), ((2, 6, 33), 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_norm(opset, shape, g, dtype):
    x = RNG.normal(3, 2, size=shape).astype(dtype)
    c = shape[1]
    n = c if opset >= 21 else g
    scale, bias = RNG.random(n).astype(dtype), RNG.random(n).astype(dtype)
    feeds = {"x": x}
    model = make_model("GroupNormalization", feeds, initializers={"s": scale, "b": bias},
                       attrs={"num_groups": g, "epsilon": 1e-3}, opset=opset)
    (y,) = run_runnx(model, feeds)
    expected = _group_norm(x, scale, bias, g, float(np.float32(1e-3)))
    assert y.dtype == expected.dtype and y.shape == expected.shape
    # Mean and scale fold into one multiply-add, so double agrees to ~1e-9, not 1e-12.
    np.testing.assert_allclose(y, expected, rtol=1e-4 if dtype == np.float32 else 1e-8, atol=1e-6)


def test_group_norm_errors():
    x = np.zeros((1, 6, 2), np.float32)
    feeds = {"x": x, "s": np.ones(6, np.float32), "b": np.ones(6, np.float32)}
    expect_invalid("GroupNormalization", feeds, "multiple", attrs={"num_groups": 4}, opset=21)
    feeds["s"] = np.ones(5, np.float32)
    expect_invalid("GroupNormalization", feeds, "scale", attrs={"num_groups": 3}, opset=21)
    with pytest.raises(runnx.InvalidModel, match="num_groups"):
        run_runnx(make_model("GroupNormalization", feeds, opset=21), feeds)


def _lrn(x, size, alpha, beta, bias):
    c = x.shape[1]
    sq = np.zeros_like(x, dtype=np.float64)
    for i in range(c):
        lo, hi = max(0, i - (size - 1) // 2), min(c, i + (size - 1) - (size - 1) // 2 + 1)
        sq[:, i] = (x[:, lo:hi].astype(np.float64) ** 2).sum(axis=1)
    return (x / (bias + alpha / size * sq) ** beta).astype(x.dtype)


# onnx.reference's LRN loops over the batch dim instead of channels (wrong when N != C): numpy.
@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 1, 2, 2), (3, 7, 1, 9), (2, 4, 5)])
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn(shape, size):
    x = RNG.normal(size=shape).astype(np.float32)
    attrs = {"size": size, "alpha": 0.01, "beta": 0.6, "bias": 2.0}
    (y,) = run_runnx(make_model("LRN", {"x": x}, attrs=attrs, opset=13), {"x": x})
    assert_close(y, _lrn(x, size, 0.01, 0.6, 2.0))


def test_lrn_defaults_against_reference():
    x = RNG.normal(size=(3, 3, 4, 4)).astype(np.float32)  # N == C: the reference is right here
    check_against_reference("LRN", {"x": x}, attrs={"size": 3}, opset=13)
    with pytest.raises(runnx.InvalidModel, match="size"):
        run_runnx(make_model("LRN", {"x": x}, opset=13), {"x": x})


@pytest.mark.parametrize("shape,axes", [((2, 3, 4, 5), None), ((2, 3, 4, 5), [1]), ((3, 7), [0, 1]),
                                        ((2, 3, 17), [-1]), ((4, 1, 3, 2), [0, 2])])
@pytest.mark.parametrize("opset", [9, 13])
def test_mvn(shape, axes, opset):
    x = RNG.normal(1, 3, size=shape).astype(np.float32)
    attrs = {} if axes is None else {"axes": axes}
    check_against_reference("MeanVarianceNormalization", {"x": x}, attrs=attrs, opset=opset)


@pytest.mark.parametrize("shape,axis", [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 17), 1),
                                        ((2, 3, 17), -1), ((0, 3), 1)])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference's 0/0
def test_lp_norm(shape, axis, p, dtype):
    x = RNG.normal(size=shape).astype(dtype)
    if x.size:
        x[0] = 0  # a zero row gives zeros
    (y,) = run_runnx(make_model("LpNormalization", {"x": x}, attrs={"axis": axis, "p": p}, opset=1),
                     {"x": x})
    # onnx.reference sums x**p without abs (wrong for p=1), so compare with numpy.
    nrm = np.linalg.norm(x.astype(np.float64), ord=p, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(nrm == 0, 0, x / nrm).astype(dtype)
    assert_close(y, expected)
    if p == 2:
        check_against_reference("LpNormalization", {"x": x}, attrs={"axis": axis, "p": p}, opset=22)


def test_lp_norm_bad_p():
    x = np.ones((2, 2), np.float32)
    with pytest.raises(runnx.InvalidModel, match="p must"):
        run_runnx(make_model("LpNormalization", {"x": x}, attrs={"p": 3}, opset=1), {"x": x})


@pytest.mark.parametrize("shape,axis,sshape", [((3, 8), -1, (8,)), ((2, 3, 17), -1, (17,)),
                                               ((2, 3, 17), 1, (3, 17)), ((2, 3, 17), 1, (17,)),
                                               ((4, 5), 0, (4, 5)), ((2, 3, 4), -2, (1, 4)),
                                               ((0, 6), -1, (6,))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rms_norm(shape, axis, sshape, dtype):
    x = RNG.normal(size=shape).astype(dtype)
    s = RNG.random(sshape).astype(dtype)
    check_against_reference("RMSNormalization", {"x": x, "s": s},
                            attrs={"axis": axis, "epsilon": 1e-3}, opset=23)


def test_rms_norm_errors():
    feeds = {"x": np.ones((2, 4), np.float32), "s": np.ones(3, np.float32)}
    expect_invalid("RMSNormalization", feeds, "broadcast", opset=23)
    feeds["s"] = np.ones(4, np.float64)
    expect_invalid("RMSNormalization", feeds, "type", opset=23)
