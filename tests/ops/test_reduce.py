"""Reduce* and ArgMax/ArgMin against onnx.reference: axes as attribute (before opset 18, ReduceSum
before 13) and as an input (initializer or run-time tensor), keepdims, noop_with_empty_axes,
empty dims, dtypes, multithreaded paths and errors."""

from __future__ import annotations

import numpy as np
import pytest
import runnx
from helpers import (
    assert_close,
    check_against_reference,
    make_model,
    rand,
    run_reference,
    run_runnx,
)

I64 = np.int64
REDUCE_OPS = [
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceLogSum",
    "ReduceLogSumExp",
]
AXES = [None, [0], [-1], [1, 2], [0, 2], [0, 3], [1, 3], [-3, -1], [0, 1, 2, 3]]


def input_form_since(op):
    return 13 if op == "ReduceSum" else 18


def positive_domain(op):
    return op in ("ReduceLogSum", "ReduceProd")


def data_for(op, shape, dtype=np.float32):
    if positive_domain(op):
        return (
            rand(shape, dtype, 0.5, 1.5)
            if np.dtype(dtype).kind == "f"
            else rand(shape, dtype, 1, 2)
        )
    return rand(shape, dtype, -3, 3)


def run_reduce(op, x, axes, opset, keepdims=None, axes_runtime=False, noop=None, compare=True):
    """Builds the node in the attribute or input form the opset needs and compares with onnx."""
    attrs = {}
    if keepdims is not None:
        attrs["keepdims"] = keepdims
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    inputs, inits, order = {"x": x}, {}, ["x"]
    if opset >= input_form_since(op):
        if axes is not None:
            a = np.array(axes, I64)
            (inputs if axes_runtime else inits)["axes"] = a
            order.append("axes")
    elif axes is not None:
        attrs["axes"] = axes
    model = make_model(op, inputs, attrs=attrs, initializers=inits, opset=opset, input_order=order)
    (y,) = run_runnx(model, inputs)
    if compare:
        ref = run_reference(model, inputs)[0]
        if x.dtype.kind in "iu":
            # onnx.reference's ReduceSumSquare promotes int32 to int64; the spec keeps the type.
            ref = ref.astype(x.dtype)
        assert_close(y, ref)
    return y


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("form", ["attr", "input"])
@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_float32(op, form, axes, keepdims):
    opset = 11 if form == "attr" else 18
    x = data_for(op, (2, 3, 4, 5))
    run_reduce(op, x, axes, opset, keepdims=keepdims)


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("opset", [7, 13, 17, 18, 21])
def test_reduce_opsets(op, opset):
    x = data_for(op, (3, 1, 7))
    run_reduce(op, x, [0, -1], opset, keepdims=0, axes_runtime=True)


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_axes_as_runtime_input(op):
    x = data_for(op, (4, 3, 9))
    run_reduce(op, x, [2, 0], 18, axes_runtime=True)


@pytest.mark.parametrize(
    "op",
    [
        "ReduceSum",
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceSumSquare",
    ],
)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
@pytest.mark.parametrize("axes", [None, [1], [0, 2]])
def test_reduce_dtypes(op, dtype, axes):
    x = data_for(op, (3, 4, 5), dtype)
    run_reduce(op, x, axes, 18)


def test_reduce_mean_int_truncates_like_numpy():
    x = np.array([[1, 2], [-3, -4], [5, 5]], np.int32)
    y = run_reduce("ReduceMean", x, [1], 18, keepdims=0)
    assert y.tolist() == [1, -3, 5]


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("omit", [True, False])
def test_reduce_noop_with_empty_axes(op, omit):
    # No axes to reduce: the op applies element-wise (ReduceSumSquare squares, ReduceL1 abs...).
    x = data_for(op, (2, 3, 4))
    y = run_reduce(op, x, None if omit else [], 18, noop=1)
    assert y.shape == x.shape


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_empty_axes_tensor_reduces_all(op):
    x = data_for(op, (2, 3, 4))
    y = run_reduce(op, x, [], 18, keepdims=1)
    assert y.shape == (1, 1, 1)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes", [[1], [0], None, [0, 2]])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_over_empty_dims(op, axes, keepdims):
    # Reducing a 0-sized dim gives the op's identity (0, 1, -inf, +inf, NaN for Mean...).
    x = np.zeros((2, 0, 3), np.float32)
    with np.errstate(all="ignore"):
        run_reduce(op, x, axes, 18, keepdims=keepdims)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd"])
def test_reduce_over_empty_dims_int(op):
    x = np.zeros((0, 4), np.int32)
    y = run_reduce(op, x, [0], 18, keepdims=0)
    expected = {
        "ReduceMax": np.iinfo(np.int32).min,
        "ReduceMin": np.iinfo(np.int32).max,
        "ReduceSum": 0,
        "ReduceProd": 1,
    }[op]
    assert (y == expected).all() and y.shape == (4,)


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_scalar_and_size1(op):
    x = np.array(1.25, np.float32)
    # onnx.reference's ReduceLogSumExp fails on 0-d input; the value is x itself there.
    y = run_reduce(op, x, None, 18, compare=op != "ReduceLogSumExp")
    assert y.shape == ()
    if op == "ReduceLogSumExp":
        np.testing.assert_allclose(y, x, rtol=1e-6)
    run_reduce(op, data_for(op, (1, 5, 1)), [0, 2], 18, keepdims=0)


@pytest.mark.parametrize(
    "op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceLogSumExp"]
)
@pytest.mark.parametrize(
    "shape, axes",
    [
        ((3, 100001), [1]),  # few outputs over long rows: rows split across threads
        ((200003,), None),  # full reduction
        ((1000, 300), [0]),  # strided accumulation over leading rows, two column chunks
        ((64, 50, 37), [0, 2]),  # mixed
    ],
)
def test_reduce_large_multithreaded(op, shape, axes):
    x = rand(shape, np.float32, -1, 1)
    so = runnx.SessionOptions()
    so.intra_op_num_threads = 4
    attrs = {} if axes is None else {"axes": axes}
    model = make_model(op, {"x": x}, attrs=attrs, opset=13 if op != "ReduceSum" else 11)
    (y,) = run_runnx(model, {"x": x}, sess_options=so)
    xd = x.astype(np.float64)
    ax = None if axes is None else tuple(axes)
    ref = {
        "ReduceSum": lambda: xd.sum(ax, keepdims=True),
        "ReduceMean": lambda: xd.mean(ax, keepdims=True),
        "ReduceMax": lambda: xd.max(ax, keepdims=True),
        "ReduceMin": lambda: xd.min(ax, keepdims=True),
        "ReduceL2": lambda: np.sqrt((xd * xd).sum(ax, keepdims=True)),
        "ReduceLogSumExp": lambda: np.log(np.exp(xd).sum(ax, keepdims=True)),
    }[op]()
    np.testing.assert_allclose(y, ref.astype(np.float32), rtol=1e-5, atol=1e-4)


def test_reduce_log_sum_exp_is_stable():
    x = np.array([[1000, 1000, 999], [-1000, -1001, -np.inf]], np.float32)
    y = run_reduce("ReduceLogSumExp", x, [1], 18, keepdims=0)
    np.testing.assert_allclose(
        y, [1000 + np.log(2 + np.exp(-1)), -1000 + np.log(1 + np.exp(-1))], rtol=1e-6
    )


def test_reduce_max_propagates_nan():
    x = np.array([[1, np.nan, 3], [4, 5, 6]], np.float32)
    y = run_reduce("ReduceMax", x, [1], 18, keepdims=0)
    assert np.isnan(y[0]) and y[1] == 6


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("axes", [[1], [0], []])
def test_reduce_max_min_bool(op, axes):
    x = np.array([[True, False, True], [False, False, False]])
    run_reduce(op, x, axes, 20)


def test_reduce_empty_bool_min_is_true():
    x = np.zeros((0, 2), np.bool_)
    y = run_reduce("ReduceMin", x, [0], 20, compare=False)
    assert y.dtype == np.bool_ and y.tolist() == [[True, True]]


@pytest.mark.parametrize("opset", [11, 18])
def test_reduce_repeated_axis_is_an_error(opset):
    x = rand((2, 3), np.float32)
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="repeated"):
        run_reduce("ReduceMean", x, [1, -1], opset, compare=False)


@pytest.mark.parametrize("opset", [11, 18])
def test_reduce_axis_out_of_range(opset):
    x = rand((2, 3), np.float32)
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="axis 2 is out of range"):
        run_reduce("ReduceMax", x, [2], opset, compare=False)


def test_reduce_sum_rejects_bool():
    x = np.ones((2, 2), np.bool_)
    with pytest.raises(runnx.UnsupportedOp, match="bool"):
        run_reduce("ReduceSum", x, [0], 13, compare=False)


# --- ArgMax / ArgMin -------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize(
    "shape, axis",
    [
        ((7,), 0),
        ((3, 5), 0),
        ((3, 5), -1),
        ((2, 3, 17), 1),
        ((2, 3, 300), 1),
        ((1, 1, 33), 2),
        ((0, 4), 1),
    ],
)
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [11, 13])
def test_arg_float(op, shape, axis, keepdims, opset):
    x = rand(shape, np.float32)
    check_against_reference(op, {"x": x}, attrs={"axis": axis, "keepdims": keepdims}, opset=opset)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64, np.uint8])
def test_arg_ties_select_last_index(op, last, axis, dtype):
    x = rand((6, 5), dtype, 0, 2)  # few distinct values: many ties
    check_against_reference(op, {"x": x}, attrs={"axis": axis, "select_last_index": last}, opset=13)


def test_arg_default_axis_and_keepdims():
    x = rand((4, 3), np.float32)
    (y,) = check_against_reference("ArgMax", {"x": x}, opset=13)
    assert y.shape == (1, 3) and y.dtype == np.int64


def test_arg_nan_counts_as_max():
    x = np.array([[1, np.nan, 3, np.nan]], np.float32)
    (y,) = run_runnx(
        make_model("ArgMax", {"x": x}, attrs={"axis": 1, "keepdims": 0}, opset=13), {"x": x}
    )
    assert y.tolist() == [1]


def test_arg_over_empty_axis_is_an_error():
    x = np.zeros((3, 0), np.float32)
    with pytest.raises(runnx.InvalidArgument, match="empty axis"):
        run_runnx(make_model("ArgMax", {"x": x}, attrs={"axis": 1}, opset=13), {"x": x})
