"""ScatterND, ScatterElements and Scatter against onnx.reference."""

import numpy as np
import pytest
import runnx
from helpers import check_against_reference, make_model, run_runnx

RNG = np.random.default_rng(0)


def _unique_nd_indices(shape, k, n):
    """n distinct index tuples into the first k dims of `shape` (some negative)."""
    flat = RNG.choice(int(np.prod(shape[:k])), size=n, replace=False)
    idx = np.stack(np.unravel_index(flat, shape[:k]), axis=-1).astype(np.int64)
    neg = RNG.random(idx.shape) < 0.3
    return np.where(neg, idx - np.array(shape[:k]), idx)


@pytest.mark.parametrize(
    "shape,k,n",
    [((7,), 1, 3), ((4, 5), 1, 2), ((4, 5), 2, 6), ((2, 3, 17), 1, 2), ((2, 3, 17), 2, 5),
     ((3, 4, 5), 3, 9), ((1, 1, 33), 2, 1), ((4, 5), 1, 0)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16, np.bool_])
def test_scatternd(shape, k, n, dtype):
    data = (RNG.random(shape) * 10).astype(dtype)
    idx = _unique_nd_indices(shape, k, n).reshape(n, k)
    upd = (RNG.random((n,) + shape[k:]) * 10).astype(dtype)
    check_against_reference("ScatterND", {"data": data, "indices": idx, "updates": upd}, opset=13)


def test_scatternd_batched_indices_and_initializer():
    data = RNG.random((4, 3, 2)).astype(np.float32)
    idx = np.array([[[0, 1], [3, 2]], [[1, 0], [2, 2]]], dtype=np.int64)  # [2, 2, 2]
    upd = RNG.random((2, 2, 2)).astype(np.float32)
    check_against_reference("ScatterND", {"data": data, "updates": upd},
                            initializers={"indices": idx}, input_order=["data", "indices", "updates"])


@pytest.mark.parametrize("reduction,opset", [("add", 16), ("mul", 16), ("max", 18), ("min", 18)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float64])
def test_scatternd_reduction_duplicates(reduction, opset, dtype):
    data = (RNG.random((5, 6)) * 10).astype(dtype)
    idx = np.array([[0], [3], [0], [-1], [3]], dtype=np.int64)
    upd = (RNG.random((5, 6)) * 10).astype(dtype)
    check_against_reference("ScatterND", {"data": data, "indices": idx, "updates": upd},
                            attrs={"reduction": reduction}, opset=opset)


def test_scatternd_whole_tensor_k0():
    data = RNG.random((2, 3)).astype(np.float32)
    idx = np.zeros((0,), dtype=np.int64)
    upd = RNG.random((2, 3)).astype(np.float32)
    model = make_model("ScatterND", {"data": data, "indices": idx, "updates": upd}, opset=13)
    (y,) = run_runnx(model, {"data": data, "indices": idx, "updates": upd})
    np.testing.assert_array_equal(y, upd)


def test_scatternd_large_inner_multithreaded():
    data = RNG.random((3, 70000)).astype(np.float32)
    idx = np.array([[2], [0]], dtype=np.int64)
    upd = RNG.random((2, 70000)).astype(np.float32)
    check_against_reference("ScatterND", {"data": data, "indices": idx, "updates": upd},
                            attrs={"reduction": "add"}, opset=18)


def test_scatternd_errors():
    data = np.zeros((3, 4), np.float32)
    feeds = {"data": data, "indices": np.array([[3]], np.int64), "updates": np.ones((1, 4), np.float32)}
    with pytest.raises(runnx.InvalidArgument, match="out of range"):
        run_runnx(make_model("ScatterND", feeds, opset=13), feeds)
    feeds["indices"] = np.array([[1]], np.int64)
    feeds["updates"] = np.ones((1, 3), np.float32)
    with pytest.raises(runnx.InvalidArgument, match="updates"):
        run_runnx(make_model("ScatterND", feeds, opset=13), feeds)
    feeds["updates"] = np.ones((1, 4), np.float32)
    with pytest.raises(runnx.InvalidModel, match="reduction"):
        run_runnx(make_model("ScatterND", feeds, attrs={"reduction": "max"}, opset=16), feeds)


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int8, np.bool_])
def test_scatter_elements(axis, dtype):
    shape = (4, 5, 7)
    ishape = (3, 4, 6)
    data = (RNG.random(shape) * 10).astype(dtype)
    dim = shape[axis]
    # Distinct indices along the axis for each position (no duplicate writes).
    idx = np.argsort(RNG.random(ishape[:axis % 3] + (dim,) + ishape[axis % 3 + 1:]), axis=axis)
    idx = np.take(idx, np.arange(ishape[axis]), axis=axis).astype(np.int64)
    idx = np.where(RNG.random(idx.shape) < 0.3, idx - dim, idx)
    upd = (RNG.random(idx.shape) * 10).astype(dtype)
    check_against_reference("ScatterElements", {"data": data, "indices": idx, "updates": upd},
                            attrs={"axis": axis}, opset=13)


@pytest.mark.parametrize("reduction,opset", [("add", 16), ("mul", 16), ("max", 18), ("min", 18)])
def test_scatter_elements_reduction(reduction, opset):
    data = RNG.random((3, 9)).astype(np.float32)
    idx = RNG.integers(-9, 9, size=(3, 12)).astype(np.int32)
    upd = RNG.random((3, 12)).astype(np.float32)
    check_against_reference("ScatterElements", {"data": data, "indices": idx, "updates": upd},
                            attrs={"axis": 1, "reduction": reduction}, opset=opset)


def test_scatter_elements_empty_and_1d():
    data = np.arange(5, dtype=np.float32)
    feeds = {"data": data, "indices": np.zeros((0,), np.int64), "updates": np.zeros((0,), np.float32)}
    check_against_reference("ScatterElements", feeds, opset=11)
    feeds = {"data": data, "indices": np.array([4, -5], np.int64), "updates": np.array([9, 8], np.float32)}
    check_against_reference("ScatterElements", feeds, opset=11)


@pytest.mark.parametrize("opset", [9, 10])
def test_deprecated_scatter(opset):
    data = np.zeros((3, 3), np.float32)
    idx = np.array([[1, 0, 2], [0, 2, 1]], np.int64)
    upd = np.array([[1.0, 1.1, 1.2], [2.0, 2.1, 2.2]], np.float32)
    feeds = {"data": data, "indices": idx, "updates": upd}
    model = make_model("Scatter", feeds, attrs={"axis": 0}, opset=opset)
    (y,) = run_runnx(model, feeds)
    expected = data.copy()
    np.put_along_axis(expected, idx, upd, axis=0)
    np.testing.assert_array_equal(y, expected)


def test_scatter_elements_errors():
    data = np.zeros((3, 4), np.float32)
    feeds = {"data": data, "indices": np.array([[0, 4]], np.int64), "updates": np.ones((1, 2), np.float32)}
    model = make_model("ScatterElements", feeds, attrs={"axis": 1}, opset=13)
    with pytest.raises(runnx.InvalidArgument, match="out of range"):
        run_runnx(model, feeds)
    feeds["indices"] = np.array([[0, 1]], np.int64)
    feeds["updates"] = np.ones((1, 3), np.float32)
    with pytest.raises(runnx.InvalidArgument, match="updates"):
        run_runnx(make_model("ScatterElements", feeds, attrs={"axis": 1}, opset=13), feeds)
    feeds["indices"] = np.zeros((4, 1), np.int64)
    feeds["updates"] = np.ones((4, 1), np.float32)
    with pytest.raises(runnx.InvalidArgument, match="exceed"):
        run_runnx(make_model("ScatterElements", feeds, attrs={"axis": 1}, opset=13), feeds)
    with pytest.raises(runnx.InvalidArgument, match="axis"):
        f = {"data": data, "indices": np.zeros((1, 1), np.int64), "updates": np.ones((1, 1), np.float32)}
        run_runnx(make_model("ScatterElements", f, attrs={"axis": 2}, opset=13), f)


@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("axis,shape,L", [(-2, (2, 3, 6, 4), 2), (1, (3, 5), 5), (2, (2, 2, 7, 3), 1),
                                          (-2, (2, 1, 4, 8), 0)])
@pytest.mark.parametrize("with_idx", [False, True])
def test_tensor_scatter(mode, axis, shape, L, with_idx):
    past = RNG.random(shape).astype(np.float32)
    ushape = list(shape)
    ushape[axis] = L
    upd = RNG.random(ushape).astype(np.float32)
    feeds = {"past": past, "update": upd}
    M = shape[axis]
    if with_idx:
        hi = M + 3 if mode == "circular" else M - L
        feeds["w"] = RNG.integers(0, hi + 1, size=shape[0]).astype(np.int64)
    check_against_reference("TensorScatter", feeds, attrs={"mode": mode, "axis": axis}, opset=24)


def test_tensor_scatter_errors():
    feeds = {"past": np.zeros((2, 4, 3), np.float32), "update": np.ones((2, 2, 3), np.float32),
             "w": np.array([0, 3], np.int64)}
    with pytest.raises(runnx.InvalidArgument, match="does not fit"):
        run_runnx(make_model("TensorScatter", feeds, attrs={"axis": 1}, opset=24), feeds)
    feeds["update"] = np.ones((2, 2, 2), np.float32)
    with pytest.raises(runnx.InvalidArgument, match="must match"):
        run_runnx(make_model("TensorScatter", feeds, attrs={"axis": 1}, opset=24), feeds)
    with pytest.raises(runnx.InvalidModel, match="mode"):
        run_runnx(make_model("TensorScatter", feeds, attrs={"mode": "ring"}, opset=24), feeds)
