"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool against onnx.reference and numpy."""

import numpy as np
import pytest
import runnx
from helpers import (
    assert_close,
    check_against_reference,
    expect_invalid,
    make_model,
    rand,
    run_reference,
    run_runnx,
    threads,
)

POOL_CASES = [
    # x shape, attrs
    ((1, 1, 5, 5), {"kernel_shape": [2, 2]}),
    ((2, 3, 7, 9), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ((2, 3, 7, 9), {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [1, 0, 1, 1]}),
    ((1, 2, 9, 10), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    (
        (1, 2, 8, 8),
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    ),
    ((1, 2, 7, 8), {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 2, 7, 8), {"kernel_shape": [3, 3], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 7, 8), {"kernel_shape": [2, 3], "auto_pad": "VALID", "strides": [2, 2]}),
    ((2, 3, 17), {"kernel_shape": [4], "strides": [3], "pads": [1, 2]}),  # 1-D
    (
        (1, 2, 5, 6, 7),
        {"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 1, 0]},
    ),  # 3-D
    ((0, 3, 5, 5), {"kernel_shape": [2, 2]}),  # empty batch
]


@pytest.mark.parametrize("x_shape,attrs", POOL_CASES)
@pytest.mark.parametrize("opset", [11, 12, 18, 22])
def test_max_pool(x_shape, attrs, opset):
    check_against_reference("MaxPool", {"x": rand(x_shape)}, attrs=attrs, opset=opset)


@pytest.mark.parametrize("x_shape,attrs", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool(x_shape, attrs, count_include_pad):
    attrs = dict(attrs, count_include_pad=count_include_pad)
    check_against_reference("AveragePool", {"x": rand(x_shape)}, attrs=attrs, opset=13)


@pytest.mark.parametrize(
    "x_shape,attrs",
    [
        ((1, 2, 9, 10), {"kernel_shape": [3, 3], "dilations": [2, 2]}),
        (
            (1, 2, 9, 10),
            {"kernel_shape": [2, 3], "dilations": [3, 1], "strides": [2, 1], "pads": [1, 1, 1, 1]},
        ),
        ((1, 2, 11), {"kernel_shape": [3], "dilations": [2], "strides": [2], "ceil_mode": 1}),
    ],
)
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_dilations(x_shape, attrs, op):
    check_against_reference(op, {"x": rand(x_shape)}, attrs=attrs, opset=19)


@pytest.mark.parametrize("opset", [7, 10, 11])
def test_average_pool_old_opsets(opset):
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}
    if opset >= 10:
        attrs["ceil_mode"] = 0
    check_against_reference("AveragePool", {"x": rand((1, 2, 6, 7))}, attrs=attrs, opset=opset)


@pytest.mark.parametrize("dtype", [np.float64, np.int8, np.uint8])
def test_max_pool_dtypes(dtype):
    x = rand((2, 3, 6, 7), dtype, -100 if dtype == np.int8 else 0, 100)
    # onnx.reference's unit-stride path pads with NaN, which integer arrays cannot hold: strided
    # windows take its direct-loop path instead.
    attrs = {"kernel_shape": [3, 2], "pads": [1, 0, 0, 1], "strides": [2, 1]}
    check_against_reference("MaxPool", {"x": x}, attrs=attrs, opset=12)


def test_max_pool_int8_padding():
    # Padding never wins the max, even against -128.
    x = np.full((1, 1, 3, 3), -128, np.int8)
    model = make_model(
        "MaxPool", {"x": x}, attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, opset=12
    )
    (y,) = run_runnx(model, {"x": x})
    np.testing.assert_array_equal(y, np.full((1, 1, 3, 3), -128, np.int8))


def test_average_pool_float64():
    check_against_reference(
        "AveragePool",
        {"x": rand((2, 3, 6, 7), np.float64)},
        attrs={"kernel_shape": [3, 2]},
        opset=13,
    )


def max_pool_indices_ref(x, kernel, strides, pads, storage_order):
    """Brute-force 2-D MaxPool with flat argmax indices (first maximum in window order)."""
    n_img, ch, h, w = x.shape
    oh = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    y = np.zeros((n_img, ch, oh, ow), x.dtype)
    ind = np.zeros((n_img, ch, oh, ow), np.int64)
    for n, c, i, j in np.ndindex(n_img, ch, oh, ow):
        best = None
        for a in range(kernel[0]):
            for b in range(kernel[1]):
                r, s = i * strides[0] - pads[0] + a, j * strides[1] - pads[1] + b
                if 0 <= r < h and 0 <= s < w and (best is None or x[n, c, r, s] > best[0]):
                    best = (x[n, c, r, s], r, s)
        y[n, c, i, j] = best[0]
        pos = best[1] * w + best[2] if storage_order == 0 else best[1] + best[2] * h
        ind[n, c, i, j] = (n * ch + c) * h * w + pos
    return y, ind


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize(
    "kernel,strides,pads",
    [
        ([2, 2], [1, 1], [0, 0, 0, 0]),
        ([3, 3], [2, 2], [1, 1, 1, 1]),
        ([3, 2], [1, 2], [1, 0, 0, 1]),
    ],
)
def test_max_pool_indices(storage_order, kernel, strides, pads):
    x = rand((2, 3, 6, 7))
    attrs = {
        "kernel_shape": kernel,
        "strides": strides,
        "pads": pads,
        "storage_order": storage_order,
    }
    model = make_model("MaxPool", {"x": x}, 2, attrs=attrs, opset=12)
    y, ind = run_runnx(model, {"x": x})
    ey, eind = max_pool_indices_ref(x, kernel, strides, pads, storage_order)
    assert_close(y, ey)
    np.testing.assert_array_equal(ind, eind)
    if strides != [1, 1]:  # onnx.reference returns indices only on its strided path
        _, rind = run_reference(model, {"x": x})
        np.testing.assert_array_equal(ind, rind)


def test_max_pool_indices_ties_take_first():
    x = np.zeros((1, 1, 4, 4), np.float32)
    model = make_model(
        "MaxPool", {"x": x}, 2, attrs={"kernel_shape": [2, 2], "strides": [2, 2]}, opset=12
    )
    _, ind = run_runnx(model, {"x": x})
    np.testing.assert_array_equal(ind.ravel(), [0, 2, 8, 10])


def test_max_pool_indices_3d_column_major():
    x = rand((1, 2, 3, 4, 5))
    attrs = {"kernel_shape": [2, 2, 2], "strides": [1, 2, 2], "storage_order": 1}
    model = make_model("MaxPool", {"x": x}, 2, attrs=attrs, opset=12)
    y, ind = run_runnx(model, {"x": x})
    ry, rind = run_reference(model, {"x": x})
    assert_close(y, ry)
    np.testing.assert_array_equal(ind, rind)


# The separable 1-D/2-D MaxPool (rows split into stride phases): all-negative inputs so a pad
# read as 0 instead of -inf would show, stride 2 on odd and even sizes, 1-wide images, stride >
# kernel, dilation with stride, ceil_mode windows past the end, asymmetric pads, several threads
# (each pools a band of every plane's output rows: 2 and 3 bands, fewer rows than threads).
SEPARABLE_MAX_CASES = [
    ((1, 5, 23, 17), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((2, 3, 24, 24), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 1, 1), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 9, 1), {"kernel_shape": [3, 1], "strides": [2, 1], "pads": [1, 0, 1, 0]}),
    ((1, 2, 1, 13), {"kernel_shape": [1, 3], "strides": [1, 2], "pads": [0, 2, 0, 1]}),
    ((1, 3, 11, 14), {"kernel_shape": [2, 2], "strides": [3, 3]}),
    ((1, 2, 13, 12), {"kernel_shape": [3, 2], "strides": [2, 2], "dilations": [2, 3],
                      "pads": [2, 1, 0, 2]}),
    ((1, 2, 10, 11), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 1, 1, 0],
                      "ceil_mode": 1}),
    ((1, 2, 10, 11), {"kernel_shape": [3, 3], "strides": [2, 3], "ceil_mode": 1}),
    ((2, 3, 19), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    # rows of whole vectors and a tail; overlapping kernel rows at stride 1
    ((1, 2, 37, 45), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 12, 21), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ((1, 2, 23, 9), {"kernel_shape": [10, 3], "strides": [2, 1], "pads": [4, 1, 5, 1]}),  # > 8 rows
    ((1, 2, 5, 40), {"kernel_shape": [1, 3], "strides": [1, 5], "pads": [0, 2, 0, 0]}),  # row cut short
]


@pytest.mark.parametrize("x_shape,attrs", SEPARABLE_MAX_CASES)
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_max_pool_separable(x_shape, attrs, n_threads):
    x = rand(x_shape, low=-3.0, high=-1.0)
    model = make_model("MaxPool", {"x": x}, attrs=attrs, opset=12)
    (expected,) = run_reference(model, {"x": x})
    (y,) = run_runnx(model, {"x": x}, sess_options=threads(n_threads))
    assert_close(y, expected)


def test_max_pool_separable_nan_never_wins():
    """A NaN input loses every comparison (as in the scalar pool): each window's max is that of
    its other values, and a window of NaNs only gives the lowest float, like padding."""
    x = rand((1, 2, 21, 19), low=-3.0, high=3.0)
    x[0, 0, 3:6, 3:6] = np.nan  # the whole window of output (2, 2)
    x[0, 1, ::3, ::2] = np.nan
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    model = make_model("MaxPool", {"x": x}, attrs=attrs, opset=12)
    lowest = np.finfo(np.float32).min
    (expected,) = run_reference(model, {"x": np.where(np.isnan(x), lowest, x).astype(np.float32)})
    (y,) = run_runnx(model, {"x": x})
    assert not np.isnan(y).any() and (y == lowest).any()
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_multithreaded(op):
    x = rand((2, 8, 20, 21))
    model = make_model(op, {"x": x}, attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, opset=13)
    (expected,) = run_reference(model, {"x": x})
    (y,) = run_runnx(model, {"x": x}, sess_options=threads(3))
    assert_close(y, expected)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 1), (2, 3, 5, 7), (2, 3, 17), (1, 2, 3, 4, 5), (3, 70, 9, 9), (0, 3, 4, 4)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_pool(op, shape, dtype):
    # numpy reference: onnx.reference's GlobalMaxPool reduces the wrong axes for non-4-D inputs.
    x = rand(shape, dtype)
    axes = tuple(range(2, len(shape)))
    expected = x.max(axis=axes, keepdims=True) if op == "GlobalMaxPool" and x.size else None
    if op == "GlobalAveragePool":
        expected = (
            x.astype(np.float64).mean(axis=axes, keepdims=True).astype(dtype) if x.size else None
        )
    if expected is None:
        expected = np.zeros(shape[:2] + (1,) * len(axes), dtype)
    (y,) = run_runnx(make_model(op, {"x": x}, opset=13), {"x": x})
    assert_close(y, expected)


def test_global_pool_matches_reference_4d():
    check_against_reference("GlobalMaxPool", {"x": rand((2, 3, 4, 5))}, opset=13)
    check_against_reference("GlobalAveragePool", {"x": rand((2, 3, 4, 5))}, opset=13)


@pytest.mark.parametrize(
    "op,x_shape,attrs,err,match",
    [
        ("MaxPool", (1, 1, 5, 5), {}, runnx.InvalidModel, "kernel_shape"),
        ("MaxPool", (1, 1, 5, 5), {"kernel_shape": [2]}, runnx.InvalidArgument, "kernel_shape"),
        (
            "MaxPool",
            (1, 1, 5, 5),
            {"kernel_shape": [2, 2], "storage_order": 2},
            runnx.InvalidModel,
            "storage_order",
        ),
        (
            "MaxPool",
            (1, 1, 5, 5),
            {"kernel_shape": [2, 2], "strides": [1]},
            runnx.InvalidModel,
            "lengths",
        ),
        (
            "MaxPool",
            (1, 1, 2, 2),
            {"kernel_shape": [3, 3]},
            runnx.InvalidArgument,
            "smaller than the window",
        ),
        (
            "AveragePool",
            (1, 1, 5, 5),
            {"kernel_shape": [2, 2], "auto_pad": "BAD"},
            runnx.InvalidModel,
            "auto_pad",
        ),
        ("AveragePool", (1, 1, 5, 5), {"kernel_shape": [0, 2]}, runnx.InvalidModel, "kernel_shape"),
        (
            "MaxPool",
            (1, 1, 2, 2, 2, 2),
            {"kernel_shape": [1, 1, 1, 1]},
            runnx.UnsupportedOp,
            "spatial dims",
        ),
    ],
)
def test_pool_errors(op, x_shape, attrs, err, match):
    x = np.ones(x_shape, np.float32)
    if err is runnx.InvalidArgument:  # contradictory static shapes: refused at load as well
        return expect_invalid(op, {"x": x}, match, attrs=attrs, opset=13)
    with pytest.raises(err, match=match):
        run_runnx(make_model(op, {"x": x}, attrs=attrs, opset=13), {"x": x})


def test_average_pool_rejects_int():
    x = np.ones((1, 1, 4, 4), np.int8)
    with pytest.raises(runnx.UnsupportedOp, match="int8"):
        run_runnx(
            make_model("AveragePool", {"x": x}, attrs={"kernel_shape": [2, 2]}, opset=13), {"x": x}
        )


@pytest.mark.parametrize("pads", [[1, 1, 1, 1, 1, 1], [0, 1, 1, 2, 1, 1], [1, 0, 0, 0, 0, 0]])
def test_max_pool_3d_with_one_depth_slice_and_depth_pads(pads):
    # A depth of 1 with a 1-deep kernel is planar only without depth pads: padded slices are -inf.
    # (onnx.reference gives NaN for a window of padding only; runnx, like its scalar loops, the
    # lowest float.)
    x = rand((1, 3, 1, 9, 11))
    model = make_model("MaxPool", {"x": x},
                       attrs={"kernel_shape": [1, 3, 3], "pads": pads, "strides": [1, 2, 2]})
    (y,) = run_runnx(model, {"x": x})
    (ref,) = run_reference(model, {"x": x})
    assert y.shape == ref.shape
    np.testing.assert_array_equal(y[np.isnan(ref)], np.finfo(np.float32).min)
    np.testing.assert_array_equal(y[~np.isnan(ref)], ref[~np.isnan(ref)])
