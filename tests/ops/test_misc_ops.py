"""TopK, CumSum, Trilu, GatherND, Range, Shape, Size against onnx.reference (and numpy where the
reference is silent), with shape-like inputs as initializers and as run-time tensors."""

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


def with_input(name, value, runtime):
    """(inputs, initializers) placing a shape-like tensor as a graph input or an initializer."""
    return ({name: value}, {}) if runtime else ({}, {name: value})


# --- TopK ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, axis, k",
    [
        ((7,), 0, 3),
        ((7,), -1, 7),
        ((3, 5), 1, 2),
        ((3, 5), 0, 1),
        ((2, 3, 17), 1, 2),
        ((2, 3, 17), -1, 5),
        ((1, 1, 33), 2, 0),
        ((4, 300), 1, 10),
        ((0, 5), 1, 2),
    ],
)
@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("runtime", [False, True])
def test_topk(shape, axis, k, largest, runtime):
    x = rand(shape)
    ins, inits = with_input("k", np.array([k], I64), runtime)
    check_against_reference(
        "TopK",
        {"x": x, **ins},
        2,
        initializers=inits,
        input_order=["x", "k"],
        attrs={"axis": axis, "largest": largest},
        opset=11,
    )


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_topk_ties_go_to_lower_index(largest, dtype):
    x = rand((4, 9), dtype, 0, 3)  # many ties
    _, idx = check_against_reference(
        "TopK",
        {"x": x},
        2,
        initializers={"k": np.array([5], I64)},
        attrs={"largest": largest},
        opset=11,
    )
    for row, ir in zip(x, idx):
        vals = row[ir]
        for a in range(len(ir) - 1):
            if vals[a] == vals[a + 1]:
                assert ir[a] < ir[a + 1]


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
@pytest.mark.parametrize("axis", [1, 0])
def test_topk_long_slices_small_k(largest, dtype, axis):
    # k much smaller than the axis: the heap path (with block skipping on contiguous slices).
    x = rand((3, 517), dtype, 0, 6) if axis == 1 else rand((517, 3), dtype, 0, 6)
    if dtype == np.float32:
        x[1 if axis == 1 else 200, 200 if axis == 1 else 1] = np.nan
    check_against_reference(
        "TopK",
        {"x": x},
        2,
        initializers={"k": np.array([7], I64)},
        attrs={"largest": largest, "axis": axis},
        opset=11,
    )


@pytest.mark.parametrize("opset", [10, 11, 21])
def test_topk_opsets(opset):
    x = rand((3, 8))
    check_against_reference(
        "TopK", {"x": x}, 2, initializers={"k": np.array([3], I64)}, opset=opset
    )


def test_topk_opset9_k_attribute():
    x = rand((3, 8))
    check_against_reference("TopK", {"x": x}, 2, attrs={"k": 2, "axis": 0}, opset=9)


def test_topk_unsorted_is_still_a_valid_answer():
    x = rand((5, 12))
    model = make_model(
        "TopK", {"x": x}, 2, initializers={"k": np.array([4], I64)}, attrs={"sorted": 0}, opset=11
    )
    vals, idx = run_runnx(model, {"x": x})
    np.testing.assert_array_equal(np.sort(vals, -1), np.sort(-np.sort(-x, -1)[:, :4], -1))
    np.testing.assert_array_equal(np.take_along_axis(x, idx, -1), vals)


def test_topk_nan_orders_above_numbers():
    x = np.array([[1, np.nan, 3, 2]], np.float32)
    k = {"k": np.array([2], I64)}
    v, i = run_runnx(make_model("TopK", {"x": x}, 2, initializers=k, opset=11), {"x": x})
    assert np.isnan(v[0, 0]) and v[0, 1] == 3 and i.tolist() == [[1, 2]]
    v, i = run_runnx(
        make_model("TopK", {"x": x}, 2, initializers=k, attrs={"largest": 0}, opset=11), {"x": x}
    )
    assert v.tolist() == [[1, 2]] and i.tolist() == [[0, 3]]


@pytest.mark.parametrize("k", [-1, 9])
def test_topk_k_out_of_range(k):
    x = rand((3, 8))
    inputs = {"x": x, "k": np.array([k], I64)}
    with pytest.raises(runnx.InvalidArgument, match=f"k = {k} is out of range"):
        run_runnx(make_model("TopK", inputs, 2, opset=11), inputs)


# --- CumSum ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((7,), 0),
        ((3, 5), 0),
        ((3, 5), 1),
        ((2, 3, 17), 1),
        ((2, 3, 17), -1),
        ((2, 3, 300), 1),
        ((0, 4), 1),
        ((4, 0), 0),
    ],
)
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum(shape, axis, exclusive, reverse):
    x = rand(shape, np.float64)
    check_against_reference(
        "CumSum",
        {"x": x},
        initializers={"axis": np.array(axis, I64)},
        attrs={"exclusive": exclusive, "reverse": reverse},
        opset=14,
    )


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32])
@pytest.mark.parametrize("axis_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("opset", [11, 14])
def test_cumsum_dtypes_runtime_axis(dtype, axis_dtype, opset):
    x = rand((4, 6), dtype, -5, 5)
    inputs = {"x": x, "axis": np.array(1, axis_dtype)}
    check_against_reference("CumSum", inputs, attrs={"reverse": 1}, opset=opset)


def test_cumsum_axis_out_of_range():
    inputs = {"x": rand((2, 3)), "axis": np.array(2, I64)}
    with pytest.raises(runnx.InvalidArgument, match="axis 2 is out of range"):
        run_runnx(make_model("CumSum", inputs, opset=14), inputs)


# --- Trilu -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (2, 5, 3), (1, 1), (0, 3), (3, 0), (2, 0, 4)])
@pytest.mark.parametrize("k", [None, -5, -1, 0, 1, 2, 100])
@pytest.mark.parametrize("upper", [0, 1])
def test_trilu(shape, k, upper):
    x = rand(shape)
    inits = {} if k is None else {"k": np.array(k, I64)}
    check_against_reference("Trilu", {"x": x}, initializers=inits, attrs={"upper": upper}, opset=14)


@pytest.mark.parametrize("dtype", [np.bool_, np.int64, np.uint8, np.float16, np.float64])
def test_trilu_dtypes_runtime_k(dtype):
    x = rand((3, 4, 5), dtype)
    inputs = {"x": x, "k": np.array(-1, I64)}
    (y,) = run_runnx(make_model("Trilu", inputs, attrs={"upper": 0}, opset=14), inputs)
    np.testing.assert_array_equal(y, np.tril(x, -1))
    assert y.dtype == x.dtype


def test_trilu_rank1_is_an_error():
    x = rand((4,))
    with pytest.raises(runnx.InvalidArgument, match="rank >= 2"):
        run_runnx(make_model("Trilu", {"x": x}, opset=14), {"x": x})


# --- GatherND --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data_shape, idx, batch_dims",
    [
        ((2, 2), [[0, 0], [1, 1]], 0),
        ((2, 2), [[1], [0]], 0),
        ((2, 2, 2), [[0, 1], [1, 0]], 0),
        ((2, 2, 2), [[[0, 1]], [[1, 0]]], 0),
        ((2, 2, 2), [[1], [0]], 1),
        ((3, 4, 5), [[[1, -1], [0, 2]], [[2, 3], [-3, 0]], [[0, 0], [1, 1]]], 1),
        ((2, 2, 4, 5), [[[1, 2], [0, 4]], [[2, 3], [1, 1]]], 2),
        ((4, 5), np.zeros((0, 2), I64), 0),
        ((3, 7), [[2], [-1], [0], [1]], 0),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
@pytest.mark.parametrize("runtime", [False, True])
def test_gathernd(data_shape, idx, batch_dims, dtype, runtime):
    data = rand(data_shape, dtype, -5, 5)
    ins, inits = with_input("i", np.array(idx, I64), runtime)
    (y,) = run_runnx(
        make_model(
            "GatherND",
            {"x": data, **ins},
            initializers=inits,
            input_order=["x", "i"],
            attrs={"batch_dims": batch_dims},
            opset=13,
        ),
        {"x": data, **ins},
    )
    model = make_model(
        "GatherND", {"x": data, "i": np.array(idx, I64)}, attrs={"batch_dims": batch_dims}, opset=13
    )
    if not any(v < 0 for v in np.array(idx).ravel()):  # onnx.reference does not wrap negatives
        assert_close(y, run_reference(model, {"x": data, "i": np.array(idx, I64)})[0])
    else:
        # Wrap by hand and compare against the same gather with non-negative indices.
        wrapped = np.array(idx, I64)
        dims = np.array(data_shape[batch_dims : batch_dims + wrapped.shape[-1]])
        wrapped = np.where(wrapped < 0, wrapped + dims, wrapped)
        (z,) = run_reference(model, {"x": data, "i": wrapped})
        assert_close(y, z)


@pytest.mark.parametrize("opset", [11, 12])
def test_gathernd_opsets(opset):
    data = rand((3, 4))
    check_against_reference(
        "GatherND", {"x": data}, initializers={"i": np.array([[2, 1], [0, 3]], I64)}, opset=opset
    )


def test_gathernd_index_out_of_range():
    inputs = {"x": rand((3, 4)), "i": np.array([[2, 4]], I64)}
    with pytest.raises(runnx.InvalidArgument, match="index 4 is out of range"):
        run_runnx(make_model("GatherND", inputs, opset=13), inputs)


def test_gathernd_bad_last_dim():
    inputs = {"x": rand((3, 4)), "i": np.array([[0, 1, 2]], I64)}
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="last dim 3"):
        run_runnx(make_model("GatherND", inputs, opset=13), inputs)


def test_gathernd_batch_dim_mismatch():
    inputs = {"x": rand((3, 4)), "i": np.array([[0], [1]], I64)}
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="batch dim 0 differs"):
        run_runnx(make_model("GatherND", inputs, attrs={"batch_dims": 1}, opset=13), inputs)


# --- Range -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.int16])
@pytest.mark.parametrize(
    "start, limit, delta", [(0, 10, 3), (10, 4, -2), (1, 1, 1), (5, 1, 1), (-3, 7, 1), (2, 100, 7)]
)
@pytest.mark.parametrize("runtime", [False, True])
def test_range(dtype, start, limit, delta, runtime):
    if runtime and dtype == np.int16:
        pytest.skip("helpers has no int16 graph inputs")
    vals = {n: np.array(v, dtype) for n, v in zip("sld", (start, limit, delta))}
    ins, inits = (vals, {}) if runtime else ({}, vals)
    model = make_model("Range", ins, initializers=inits, input_order=["s", "l", "d"], opset=11)
    (y,) = run_runnx(model, ins)
    assert_close(y, np.arange(start, limit, delta).astype(dtype))


def test_range_float_fraction():
    vals = {
        "s": np.array(0.5, np.float32),
        "l": np.array(2.0, np.float32),
        "d": np.array(0.3, np.float32),
    }
    check_against_reference("Range", vals, opset=11)


def test_range_float16():
    vals = {n: np.array(v, np.float16) for n, v in zip("sld", (0.5, 3.0, 0.25))}
    (y,) = run_runnx(make_model("Range", vals, opset=27), vals)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, np.arange(0.5, 3.0, 0.25).astype(np.float16))


def test_range_zero_delta():
    vals = {"s": np.array(0, I64), "l": np.array(5, I64), "d": np.array(0, I64)}
    with pytest.raises(runnx.InvalidArgument, match="delta must not be zero"):
        run_runnx(make_model("Range", vals, opset=11), vals)


# --- Shape / Size ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (0,), (2, 3, 4), (1, 0, 5)])
@pytest.mark.parametrize("opset", [7, 13, 15, 21])
def test_shape_and_size(shape, opset):
    x = rand(shape)
    (s,) = check_against_reference("Shape", {"x": x}, opset=opset)
    assert s.dtype == I64 and s.tolist() == list(shape)
    (n,) = check_against_reference("Size", {"x": x}, opset=opset)
    assert n.shape == () and n == x.size


@pytest.mark.parametrize(
    "start, end", [(None, 2), (1, None), (-1, None), (1, -1), (-10, 10), (2, 1), (0, -3), (3, 3)]
)
def test_shape_start_end(start, end):
    x = rand((2, 3, 4))
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    (s,) = run_runnx(make_model("Shape", {"x": x}, attrs=attrs, opset=15), {"x": x})
    lo = 0 if start is None else start
    hi = 3 if end is None else end
    assert s.tolist() == list(x.shape[slice(lo, hi)])


@pytest.mark.parametrize("dtype", [np.bool_, np.float16, np.int8])
def test_shape_any_dtype(dtype):
    x = rand((2, 5), dtype)
    (s,) = run_runnx(make_model("Shape", {"x": x}, opset=13), {"x": x})
    assert s.tolist() == [2, 5]
