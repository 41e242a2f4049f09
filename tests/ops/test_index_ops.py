"""NonZero, OneHot, Compress, EyeLike, DepthToSpace, SpaceToDepth, ReverseSequence."""

import numpy as np
import pytest
import runnx
from helpers import check_against_reference, make_model, run_runnx

RNG = np.random.default_rng(1)


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 17), (0, 3), (1, 1, 33)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.uint8])
def test_nonzero(shape, dtype):
    x = (RNG.random(shape) < 0.4).astype(dtype) * RNG.integers(1, 5, size=shape).astype(dtype)
    check_against_reference("NonZero", {"x": x}, opset=13)


def test_nonzero_scalar_and_negative_zero():
    # ONNX: a 0-d input gives shape (0, N).
    for v in [np.float32(3), np.float32(0)]:
        x = np.array(v)
        (y,) = run_runnx(make_model("NonZero", {"x": x}, opset=13), {"x": x})
        assert y.shape == (0, int(v != 0)) and y.dtype == np.int64
    x = np.array([-0.0, 1.0, 0.0, -2.0], np.float32)
    check_against_reference("NonZero", {"x": x}, opset=9)
    x16 = x.astype(np.float16)
    (y,) = run_runnx(make_model("NonZero", {"x": x16}, opset=13), {"x": x16})
    np.testing.assert_array_equal(y, [[1, 3]])


@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("opset", [9, 11, 17])
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32, np.float32])
def test_onehot(axis, opset, idx_dtype):
    idx = np.array([[0, 3, -1], [2, -4, 5], [9, -9, 1]]).astype(idx_dtype)  # incl. out of range
    if opset == 9:
        idx = np.abs(idx)  # negative indices are defined from opset 11
    depth = np.array(4, np.int64)
    values = np.array([2, 7], np.float32)
    check_against_reference("OneHot", {"indices": idx, "depth": depth, "values": values},
                            attrs={"axis": axis}, opset=opset)


@pytest.mark.parametrize("vdtype", [np.int64, np.float64, np.bool_])
def test_onehot_value_types_float_depth_initializer(vdtype):
    idx = np.array([1, 0, 2, 2], np.int64)
    values = np.array([0, 1]).astype(vdtype)
    # onnx.reference cannot take a float 1-element depth, so compare with numpy.
    model = make_model("OneHot", {"indices": idx},
                       initializers={"depth": np.array([3.0], np.float32), "values": values},
                       opset=13)
    (y,) = run_runnx(model, {"indices": idx})
    expected = np.where(np.eye(3, dtype=bool)[idx], values[1], values[0])
    assert y.dtype == expected.dtype
    np.testing.assert_array_equal(y, expected)


def test_onehot_scalar_and_empty_indices():
    for idx in [np.array(2, np.int64), np.zeros((0, 3), np.int64)]:
        check_against_reference("OneHot", {"indices": idx, "depth": np.array(5, np.int64),
                                           "values": np.array([0, 1], np.float32)}, opset=13)


def test_onehot_errors():
    feeds = {"indices": np.array([1], np.int64), "depth": np.array(0, np.int64),
             "values": np.array([0, 1], np.float32)}
    with pytest.raises(runnx.InvalidArgument, match="depth"):
        run_runnx(make_model("OneHot", feeds, opset=13), feeds)
    feeds = {"indices": np.array([1], np.int64), "depth": np.array(3, np.int64),
             "values": np.array([0, 1, 2], np.float32)}
    with pytest.raises(runnx.InvalidArgument, match="values"):
        run_runnx(make_model("OneHot", feeds, opset=13), feeds)


@pytest.mark.parametrize("axis", [None, 0, 1, -1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.float16])
def test_compress(axis, dtype):
    x = (RNG.random((4, 5, 7)) * 10).astype(dtype)
    n = x.size if axis is None else x.shape[axis]
    cond = RNG.random(n - 1) < 0.5  # shorter than the axis: the rest is dropped
    attrs = {} if axis is None else {"axis": axis}
    check_against_reference("Compress", {"x": x, "c": cond}, attrs=attrs, opset=11)


def test_compress_all_false_and_longer_condition():
    x = RNG.random((3, 4)).astype(np.float32)
    check_against_reference("Compress", {"x": x, "c": np.zeros(3, bool)}, attrs={"axis": 0}, opset=9)
    # Longer than the axis but false past its end: allowed (numpy agrees).
    check_against_reference("Compress", {"x": x, "c": np.array([1, 0, 1, 0, 0], bool)},
                            attrs={"axis": 0}, opset=11)
    feeds = {"x": x, "c": np.array([1, 0, 1, 1], bool)}
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="past the end"):
        run_runnx(make_model("Compress", feeds, attrs={"axis": 0}, opset=11), feeds)
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="axis"):
        run_runnx(make_model("Compress", feeds, attrs={"axis": 2}, opset=11), feeds)


@pytest.mark.parametrize("shape", [(3, 3), (3, 5), (6, 2), (0, 4), (1, 1)])
@pytest.mark.parametrize("k", [0, 1, -1, 3, -7, 10])
def test_eyelike(shape, k):
    x = np.zeros(shape, np.float32)
    check_against_reference("EyeLike", {"x": x}, attrs={"k": k}, opset=9)


@pytest.mark.parametrize("dtype", [1, 7, 9, 10, 11])  # float, int64, bool, float16, double
def test_eyelike_dtype(dtype):
    x = np.zeros((4, 3), np.int32)
    model = make_model("EyeLike", {"x": x}, attrs={"k": -1, "dtype": dtype}, opset=22)
    (y,) = run_runnx(model, {"x": x})
    from onnx import helper
    expected = np.eye(4, 3, k=-1, dtype=helper.tensor_dtype_to_np_dtype(dtype))
    assert y.dtype == expected.dtype
    np.testing.assert_array_equal(y, expected)


def test_eyelike_errors():
    x = np.zeros((2, 2, 2), np.float32)
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="2-D"):
        run_runnx(make_model("EyeLike", {"x": x}, opset=9), {"x": x})


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape,b", [((1, 8, 2, 3), 2), ((2, 9, 3, 1), 3), ((1, 4, 1, 1), 2),
                                     ((3, 1, 5, 7), 1), ((0, 4, 2, 2), 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.int8])
def test_depth_to_space(mode, shape, b, dtype):
    x = (RNG.random(shape) * 100).astype(dtype)
    check_against_reference("DepthToSpace", {"x": x}, attrs={"blocksize": b, "mode": mode}, opset=13)


@pytest.mark.parametrize("opset,mode", [(1, "DCR"), (13, "DCR"), (28, "CRD"), (28, "DCR")])
@pytest.mark.parametrize("shape,b", [((1, 2, 4, 6), 2), ((2, 3, 9, 3), 3), ((1, 1, 2, 2), 2),
                                     ((2, 3, 5, 7), 1)])
def test_space_to_depth(opset, mode, shape, b):
    x = RNG.random(shape).astype(np.float32)
    attrs = {"blocksize": b} if opset < 28 else {"blocksize": b, "mode": mode}
    model = make_model("SpaceToDepth", {"x": x}, attrs=attrs, opset=opset)
    (y,) = run_runnx(model, {"x": x})
    n, c, h, w = shape
    t = x.reshape(n, c, h // b, b, w // b, b)
    perm = (0, 1, 3, 5, 2, 4) if mode == "CRD" else (0, 3, 5, 1, 2, 4)
    expected = t.transpose(perm).reshape(n, c * b * b, h // b, w // b)
    np.testing.assert_array_equal(y, expected)


def test_space_depth_round_trip_and_errors():
    x = RNG.random((2, 3, 4, 6)).astype(np.float32)
    s2d = make_model("SpaceToDepth", {"x": x}, attrs={"blocksize": 2}, opset=13)
    (y,) = run_runnx(s2d, {"x": x})
    d2s = make_model("DepthToSpace", {"x": y}, attrs={"blocksize": 2}, opset=13)
    (z,) = run_runnx(d2s, {"x": y})
    np.testing.assert_array_equal(z, x)
    bad = RNG.random((1, 3, 4, 4)).astype(np.float32)
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="multiple"):
        run_runnx(make_model("DepthToSpace", {"x": bad}, attrs={"blocksize": 2}, opset=13), {"x": bad})
    bad = RNG.random((1, 3, 5, 4)).astype(np.float32)
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="multiple"):
        run_runnx(make_model("SpaceToDepth", {"x": bad}, attrs={"blocksize": 2}, opset=13), {"x": bad})
    with pytest.raises(runnx.InvalidModel, match="blocksize"):
        run_runnx(make_model("SpaceToDepth", {"x": bad}, attrs={"blocksize": 0}, opset=13), {"x": bad})
    with pytest.raises(runnx.InvalidModel, match="mode"):
        run_runnx(make_model("DepthToSpace", {"x": bad}, attrs={"blocksize": 1, "mode": "XYZ"},
                             opset=13), {"x": bad})


@pytest.mark.parametrize("time_axis,batch_axis", [(0, 1), (1, 0)])
@pytest.mark.parametrize("tail", [(), (3,), (2, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_reverse_sequence(time_axis, batch_axis, tail, dtype):
    T, B = 5, 4
    shape = ((T, B) if time_axis == 0 else (B, T)) + tail
    x = (RNG.random(shape) * 10).astype(dtype)
    lens = np.array([5, 0, 1, 3], np.int64)
    check_against_reference("ReverseSequence", {"x": x, "lens": lens},
                            attrs={"time_axis": time_axis, "batch_axis": batch_axis}, opset=10)


def test_reverse_sequence_errors():
    x = RNG.random((3, 2)).astype(np.float32)
    feeds = {"x": x, "lens": np.array([4, 1], np.int64)}
    with pytest.raises(runnx.InvalidArgument, match="out of range"):
        run_runnx(make_model("ReverseSequence", feeds, opset=10), feeds)
    feeds = {"x": x, "lens": np.array([1, 1, 1], np.int64)}
    with pytest.raises(runnx.InvalidArgument, match="batch"):
        run_runnx(make_model("ReverseSequence", feeds, opset=10), feeds)
    with pytest.raises(runnx.InvalidModel, match="batch_axis"):
        run_runnx(make_model("ReverseSequence", feeds, attrs={"batch_axis": 1, "time_axis": 1},
                             opset=10), feeds)
