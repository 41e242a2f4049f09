"""Data-movement ops (Transpose, Concat, Split, Slice, Gather, GatherElements, Expand, Tile, Pad,
ConstantOfShape) against onnx.reference, over awkward shapes, dtypes (moved as raw bytes, so
float16 and bool too), opset forms, and shape-like inputs as initializers or run-time inputs."""

from __future__ import annotations

import numpy as np
import pytest
import runnx
from helpers import (
    check_against_reference,
    expect_invalid,
    make_model,
    rand,
    run_reference,
    run_runnx,
)
from onnx import TensorProto, helper, numpy_helper

I64 = np.int64
BYTE_DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_]


def check_shape_like(op, data, shape_like, runtime, n_outputs=1, order=None, **kw):
    """Runs `op` with `data` as graph inputs and `shape_like` either as graph inputs (run-time
    tensors) or as initializers; "" in `order` marks an omitted optional input."""
    inputs = dict(data, **shape_like) if runtime else dict(data)
    inits = {} if runtime else dict(shape_like)
    order = order or list(data) + list(shape_like)
    return check_against_reference(
        op, inputs, n_outputs, initializers=inits, input_order=order, **kw
    )


def expect_error(op, feeds, exc, match, n_outputs=1, **kw):
    with pytest.raises(exc, match=match):
        run_runnx(make_model(op, feeds, n_outputs, **kw), feeds)


# --- Transpose -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, perm",
    [
        ((3, 5), None),
        ((37, 45), [1, 0]),  # large enough for the tiled path
        ((2, 3, 17), [0, 2, 1]),
        ((2, 3, 17), [1, 0, 2]),  # keeps the last dim: row memcpy
        ((2, 3, 4, 5), [0, 2, 3, 1]),  # NCHW -> NHWC
        ((2, 33, 9, 40), [0, 3, 1, 2]),  # NHWC -> NCHW, tiled
        ((1, 1, 33), [2, 0, 1]),  # only size-1 dims move: a view
        ((7,), None),
        ((), None),
        ((0, 3), [1, 0]),
        ((2, 0, 3), [2, 1, 0]),
    ],
)
def test_transpose(shape, perm):
    attrs = {} if perm is None else {"perm": perm}
    check_against_reference("Transpose", {"x": rand(shape)}, attrs=attrs)


@pytest.mark.parametrize("dtype", BYTE_DTYPES)
def test_transpose_dtypes(dtype):
    check_against_reference("Transpose", {"x": rand((9, 40), dtype)}, attrs={"perm": [1, 0]})
    check_against_reference("Transpose", {"x": rand((2, 3, 5), dtype)}, attrs={"perm": [2, 0, 1]})


def test_transpose_errors():
    x = rand((2, 3))
    with pytest.raises(runnx.InvalidModel, match="not a permutation"):
        run_runnx(make_model("Transpose", {"x": x}, attrs={"perm": [0, 0]}), {"x": x})
    expect_invalid("Transpose", {"x": x}, "rank 2", attrs={"perm": [0, 2, 1]})


# --- Concat ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shapes, axis",
    [
        ([(2, 3), (4, 3)], 0),
        ([(2, 3), (2, 5), (2, 1)], 1),
        ([(2, 3), (2, 5)], -1),
        ([(2, 3, 17), (2, 1, 17), (2, 0, 17)], -2),
        ([(0, 3), (2, 3)], 0),
        ([(7,)], 0),
        ([(1, 1, 33), (1, 1, 33)], 2),
        ([(0, 3), (0, 3)], 1),
    ],
)
def test_concat(shapes, axis):
    inputs = {f"x{i}": rand(s) for i, s in enumerate(shapes)}
    check_against_reference("Concat", inputs, attrs={"axis": axis})


@pytest.mark.parametrize("dtype", BYTE_DTYPES)
def test_concat_dtypes_and_initializers(dtype):
    check_against_reference(
        "Concat",
        {"a": rand((2, 3), dtype)},
        attrs={"axis": 1},
        initializers={"b": rand((2, 2), dtype)},
    )


def test_concat_errors():
    feeds = {"a": rand((2, 3)), "b": rand((3, 3))}
    expect_invalid("Concat", feeds, "does not match", attrs={"axis": 1})
    expect_invalid("Concat", feeds, "out of range", attrs={"axis": 2})
    feeds = {"a": rand((2, 3)), "b": rand((2, 3), np.int32)}
    expect_invalid("Concat", feeds, "int32", attrs={"axis": 0})
    with pytest.raises(runnx.InvalidModel, match="axis"):
        run_runnx(make_model("Concat", {"a": rand((2,))}), {"a": rand((2,))})


# --- Split -----------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize(
    "shape, axis, split, n",
    [
        ((6, 4), 0, None, 3),
        ((6, 4), -1, None, 2),
        ((6, 4), 0, [1, 5], 2),
        ((2, 7, 3), 1, [2, 0, 5], 3),
        ((2, 7, 3), -2, [7], 1),
        ((0, 4), 1, [1, 3], 2),
    ],
)
@pytest.mark.parametrize("runtime", [False, True])
def test_split(shape, axis, split, n, opset, runtime):
    x = rand(shape)
    if split is None:
        if runtime:
            pytest.skip("no shape-like input")
        check_against_reference("Split", {"x": x}, n, attrs={"axis": axis}, opset=opset)
    elif opset < 13:
        if runtime:
            pytest.skip("split is an attribute before opset 13")
        check_against_reference(
            "Split", {"x": x}, n, attrs={"axis": axis, "split": split}, opset=opset
        )
    else:
        check_shape_like(
            "Split",
            {"x": x},
            {"s": np.array(split, I64)},
            runtime,
            n,
            attrs={"axis": axis},
            opset=opset,
        )


@pytest.mark.parametrize("dim, n", [(7, 3), (10, 4), (5, 2), (6, 3), (1, 1)])
def test_split_num_outputs_uneven(dim, n):
    x = rand((2, dim))
    ys = check_against_reference(
        "Split", {"x": x}, n, attrs={"axis": 1, "num_outputs": n}, opset=18
    )
    chunk = -(-dim // n)
    assert [y.shape[1] for y in ys] == [chunk] * (n - 1) + [dim - chunk * (n - 1)]


@pytest.mark.parametrize("dtype", [np.float16, np.bool_, np.int64])
def test_split_dtypes(dtype):
    check_against_reference("Split", {"x": rand((4, 6), dtype)}, 3, attrs={"axis": 1}, opset=13)


def test_split_errors():
    x = rand((2, 6))
    s = np.array([2, 2], I64)
    expect_error(
        "Split",
        {"x": x, "s": s},
        runnx.InvalidArgument,
        "sums to 4",
        2,
        attrs={"axis": 1},
        opset=13,
    )
    expect_error(
        "Split",
        {"x": x, "s": s},
        runnx.InvalidArgument,
        "entries for 3 outputs",
        3,
        attrs={"axis": 1},
        opset=13,
    )
    with pytest.raises(runnx.InvalidModel, match="num_outputs"):
        run_runnx(make_model("Split", {"x": x}, 2, attrs={"num_outputs": 3}, opset=18), {"x": x})


# --- Slice -----------------------------------------------------------------------------------

BIG = np.iinfo(np.int64).max


@pytest.mark.parametrize(
    "shape, starts, ends, axes, steps",
    [
        ((20, 10, 5), [0, 0], [3, 10], [0, 1], [1, 1]),
        ((20, 10, 5), [0, 0, 3], [20, 10, 4], None, None),
        ((20, 10, 5), [1], [1000], [1], [1]),  # end clamped
        ((20, 10, 5), [0], [-1], [1], [1]),
        ((20, 10, 5), [20, 10, 4], [0, 0, 1], [0, 1, 2], [-1, -3, -2]),  # negative steps
        ((20, 10, 5), [-1], [-BIG - 1], [1], [-1]),  # the whole axis reversed
        ((20, 10, 5), [1], [BIG], [-2], [3]),
        ((20, 10, 5), [0], [BIG], [2], [BIG]),  # one element per huge step
        ((20, 10, 5), [-BIG - 1], [BIG], [0], [-BIG - 1]),
        ((20, 10, 5), [5], [2], [0], [1]),  # empty result
        ((20, 10, 5), [1000], [1001], [1], [1]),
        ((20, 10, 5), [-1000], [-999], [1], [1]),
        ((0, 3), [0], [2], [1], [1]),
        ((0, 3), [-1], [-10], [0], [-1]),
        ((7,), [-3], [BIG], None, None),
        ((2, 3, 17), [1, 16], [-BIG - 1, 2], [-2, -1], [-1, -5]),
    ],
)
@pytest.mark.parametrize("runtime", [False, True])
def test_slice(shape, starts, ends, axes, steps, runtime):
    x = rand(shape)
    shape_like = {"starts": np.array(starts, I64), "ends": np.array(ends, I64)}
    if axes is not None:
        shape_like["axes"] = np.array(axes, I64)
    if steps is not None:
        shape_like["steps"] = np.array(steps, I64)
    check_shape_like("Slice", {"x": x}, shape_like, runtime)


def test_slice_int32_params_and_omitted_axes():
    x = rand((6, 8))
    check_shape_like(
        "Slice",
        {"x": x},
        {
            "s": np.array([1, 2], np.int32),
            "e": np.array([5, 8], np.int32),
            "st": np.array([2, 3], np.int32),
        },
        True,
        order=["x", "s", "e", "", "st"],
    )


@pytest.mark.parametrize("axes", [None, [1], [-1, 0]])
def test_slice_opset1_attribute_form(axes):
    x = rand((6, 8))
    n = 1 if axes is None else len(axes)
    attrs = {"starts": [1, 2][:n], "ends": [-1, 100][:n]}
    if axes is not None:
        attrs["axes"] = axes
    if axes == [-1, 0]:
        # Negative axes arrived in opset 11 (attribute form ends at 9): compare with numpy.
        y = run_runnx(make_model("Slice", {"x": x}, attrs=attrs, opset=9), {"x": x})[0]
        np.testing.assert_array_equal(y, x[2:100, 1:-1])
        return
    check_against_reference("Slice", {"x": x}, attrs=attrs, opset=9)


@pytest.mark.parametrize("dtype", BYTE_DTYPES)
def test_slice_dtypes(dtype):
    check_shape_like(
        "Slice",
        {"x": rand((5, 9), dtype)},
        {
            "s": np.array([4, 1], I64),
            "e": np.array([0, 9], I64),
            "a": np.array([0, 1], I64),
            "st": np.array([-2, 2], I64),
        },
        False,
    )


def test_slice_errors():
    x = rand((4, 4))
    feeds = {
        "x": x,
        "s": np.array([0], I64),
        "e": np.array([2], I64),
        "a": np.array([0], I64),
        "st": np.array([0], I64),
    }
    expect_error("Slice", feeds, runnx.InvalidArgument, "step 0")
    feeds["a"] = np.array([2], I64)
    feeds["st"] = np.array([1], I64)
    expect_error("Slice", feeds, runnx.InvalidArgument, "out of range")
    feeds["a"] = np.array([0, 0], I64)
    expect_error("Slice", feeds, runnx.InvalidArgument, "same length")


# --- Gather / GatherElements -----------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, idx, axis",
    [
        ((5, 4), [0, 4, -1, 2], 0),
        ((5, 4), [[0, 3], [-4, 1]], 1),
        ((5, 4), 3, 0),  # 0-d indices drop the axis
        ((5, 4), -1, -1),
        ((2, 3, 17), [[2, 0, 1, 1]], 1),
        ((2, 3, 17), [16, 0, -17], -1),
        ((7,), [], 0),
        ((0, 3), [1, 2], 1),
        ((3, 0), [2], 0),
        ((4, 1000), [3, 0, 3], 0),  # long rows: memcpy
    ],
)
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather(shape, idx, axis, idx_dtype):
    x = rand(shape)
    check_against_reference("Gather", {"x": x, "i": np.array(idx, idx_dtype)}, attrs={"axis": axis})


@pytest.mark.parametrize("dtype", BYTE_DTYPES)
def test_gather_dtypes(dtype):
    check_against_reference(
        "Gather",
        {"x": rand((6, 3), dtype)},
        attrs={"axis": 0},
        initializers={"i": np.array([[5, 0], [1, -6]], I64)},
    )
    check_against_reference(
        "Gather",
        {"x": rand((6, 3), dtype)},
        attrs={"axis": 1},
        initializers={"i": np.array([2, 0, 0], I64)},
    )


@pytest.mark.parametrize("bad", [5, -6, 100])
def test_gather_out_of_range(bad):
    feeds = {"x": rand((5, 4)), "i": np.array([0, bad], I64)}
    expect_error("Gather", feeds, runnx.InvalidArgument, f"index {bad} is out of range")


@pytest.mark.parametrize(
    "shape, idx_shape, axis",
    [
        ((3, 4), (3, 4), 0),
        ((3, 4), (2, 4), 1),
        ((3, 4), (3, 2), -1),
        ((2, 3, 5), (2, 6, 5), 1),
        ((2, 3, 5), (1, 2, 3), 2),
        ((2, 3, 5), (2, 3, 0), 0),
        ((7,), (9,), 0),
    ],
)
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather_elements(shape, idx_shape, axis, idx_dtype):
    rng = np.random.default_rng(0)
    dim = shape[axis]
    idx = rng.integers(-dim, dim, size=idx_shape).astype(idx_dtype)
    x = rand(shape)
    feeds = {"x": x, "i": idx}
    y = run_runnx(make_model("GatherElements", feeds, attrs={"axis": axis}), feeds)[0]
    # numpy directly: indices may be smaller than data on the other axes (the reference refuses).
    ax = axis % len(shape)
    xs = x[tuple(slice(None) if k == ax else slice(0, idx_shape[k]) for k in range(len(shape)))]
    np.testing.assert_array_equal(y, np.take_along_axis(xs, np.where(idx < 0, idx + dim, idx), ax))
    # (the reference also mishandles negative axes)
    if axis >= 0 and all(idx_shape[k] == shape[k] for k in range(len(shape)) if k != ax):
        check_against_reference("GatherElements", feeds, attrs={"axis": axis})


@pytest.mark.parametrize("dtype", [np.float16, np.bool_, np.int8, np.float64])
def test_gather_elements_dtypes(dtype):
    idx = np.array([[1, 0, 2], [2, 2, 0]], I64)
    check_against_reference(
        "GatherElements", {"x": rand((3, 3), dtype), "i": idx}, attrs={"axis": 0}
    )


def test_gather_elements_errors():
    x = rand((3, 3))
    expect_error(
        "GatherElements", {"x": x, "i": np.array([[3]], I64)}, runnx.InvalidArgument, "out of range"
    )
    expect_error("GatherElements", {"x": x, "i": np.array([0], I64)}, runnx.InvalidArgument, "rank")
    expect_error(
        "GatherElements", {"x": x, "i": np.zeros((1, 4), I64)}, runnx.InvalidArgument, "exceed"
    )


# --- Expand / Tile ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, target",
    [
        ((3, 1), [3, 4]),
        ((3, 1), [2, 1, 6]),
        ((1,), [5]),
        ((), [2, 3]),
        ((4,), [1]),
        ((2, 1, 3), [2, 5, 1]),
        ((1, 3), [0, 3]),
        ((0, 1), [0, 7]),
        ((1, 1, 33), [2, 4, 1, 33]),
    ],
)
@pytest.mark.parametrize("runtime", [False, True])
def test_expand(shape, target, runtime):
    check_shape_like("Expand", {"x": rand(shape)}, {"s": np.array(target, I64)}, runtime)


@pytest.mark.parametrize("dtype", [np.float16, np.bool_, np.int64, np.uint8])
def test_expand_dtypes(dtype):
    check_shape_like("Expand", {"x": rand((3, 1), dtype)}, {"s": np.array([2, 3, 5], I64)}, False)


def test_expand_errors():
    feeds = {"x": rand((3, 2)), "s": np.array([4, 2], I64)}
    expect_error("Expand", feeds, runnx.InvalidArgument, "broadcast")
    feeds["s"] = np.array([[3, 2]], I64)
    expect_error("Expand", feeds, runnx.InvalidArgument, "1-D")


@pytest.mark.parametrize(
    "shape, reps",
    [
        ((2, 3), [2, 3]),
        ((2, 3), [1, 1]),
        ((7,), [4]),
        ((3, 1), [1, 50]),
        ((2, 3, 17), [2, 1, 3]),
        ((2, 3), [0, 2]),
        ((0, 3), [3, 2]),
        ((1, 1, 33), [3, 2, 1]),
    ],
)
@pytest.mark.parametrize("runtime", [False, True])
def test_tile(shape, reps, runtime):
    check_shape_like("Tile", {"x": rand(shape)}, {"r": np.array(reps, I64)}, runtime)


@pytest.mark.parametrize("dtype", [np.float16, np.bool_, np.int32, np.float64])
def test_tile_dtypes(dtype):
    check_shape_like("Tile", {"x": rand((2, 3), dtype)}, {"r": np.array([3, 2], I64)}, False)


def test_tile_errors():
    x = rand((2, 3))
    expect_error(
        "Tile", {"x": x, "r": np.array([2], I64)}, runnx.InvalidArgument, "one entry per input dim"
    )
    expect_error(
        "Tile", {"x": x, "r": np.array([2, -1], I64)}, runnx.InvalidArgument, "negative repeat"
    )


# --- Pad -------------------------------------------------------------------------------------

PAD_MODES = ["constant", "reflect", "edge"]


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize(
    "shape, pads",
    [
        ((3, 4), [1, 2, 0, 3]),
        ((3, 4), [0, 0, 0, 0]),
        ((7,), [3, 5]),
        ((2, 3, 17), [0, 1, 2, 1, 0, 9]),
        ((1, 1, 33), [0, 0, 2, 0, 0, 2]),
        ((3, 5), [2, 4, 2, 4]),
    ],
)
@pytest.mark.parametrize("runtime", [False, True])
def test_pad(shape, pads, mode, runtime):
    x = rand(shape)
    check_shape_like(
        "Pad", {"x": x}, {"p": np.array(pads, I64)}, runtime, attrs={"mode": mode}, opset=13
    )


@pytest.mark.parametrize("runtime", [False, True])
def test_pad_constant_value_and_empty(runtime):
    x = rand((0, 3))
    check_shape_like(
        "Pad",
        {"x": x},
        {"p": np.array([1, 1, 2, 0], I64), "v": np.array(7.5, np.float32)},
        runtime,
        opset=11,
    )
    x = rand((2, 3), np.int32)
    check_shape_like(
        "Pad",
        {"x": x},
        {"p": np.array([1, 0, 0, 2], I64), "v": np.array(-3, np.int32)},
        runtime,
        opset=13,
    )
    # An empty constant_value tensor means 0; an omitted one too.
    check_shape_like(
        "Pad", {"x": x}, {"p": np.array([1, 0, 0, 2], I64)}, runtime, order=["x", "p", ""], opset=13
    )


@pytest.mark.parametrize("mode", PAD_MODES)
def test_pad_large_reflections(mode):
    # Pads larger than the axis: numpy reflects repeatedly, which the index maps reproduce.
    x = rand((3, 2))
    pads = np.array([5, 7, 4, 9], I64)
    check_shape_like("Pad", {"x": x}, {"p": pads}, False, attrs={"mode": mode}, opset=13)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("runtime", [False, True])
def test_pad_axes_opset18_and_wrap(mode, runtime):
    x = rand((2, 3, 5))
    shape_like = {
        "p": np.array([1, 2, 3, 1], I64),
        "v": np.array(1.5, np.float32),
        "a": np.array([-1, 1], I64),
    }
    check_shape_like("Pad", {"x": x}, shape_like, runtime, attrs={"mode": mode}, opset=19)


@pytest.mark.parametrize("opset", [2, 7, 10])
@pytest.mark.parametrize("mode", PAD_MODES)
def test_pad_attribute_form(opset, mode):
    if opset < 7:
        pytest.skip("runnx starts at opset 7")
    x = rand((3, 4))
    check_against_reference(
        "Pad", {"x": x}, attrs={"pads": [1, 0, 2, 3], "mode": mode, "value": 2.5}, opset=opset
    )


@pytest.mark.parametrize("dtype", BYTE_DTYPES)
def test_pad_dtypes(dtype):
    check_shape_like(
        "Pad", {"x": rand((3, 4), dtype)}, {"p": np.array([1, 2, 1, 0], I64)}, False, opset=13
    )
    check_shape_like(
        "Pad",
        {"x": rand((3, 4), dtype)},
        {"p": np.array([1, 2, 1, 0], I64)},
        False,
        attrs={"mode": "reflect"},
        opset=13,
    )


def test_pad_negative_crops():
    x = rand((4, 6))
    pads = np.array([-1, 2, 0, -3], I64)
    y = run_runnx(make_model("Pad", {"x": x}, initializers={"p": pads}, opset=13), {"x": x})[0]
    np.testing.assert_array_equal(y, np.pad(x, [(0, 0), (2, 0)])[1:, :-3])


def test_pad_errors():
    x = rand((2, 3))
    expect_invalid(
        "Pad", {"x": x, "p": np.array([1, 1], I64)}, "2 entries per padded axis", opset=13
    )
    expect_error(
        "Pad",
        {"x": x, "p": np.array([0, -4, 0, 0], I64)},
        runnx.InvalidArgument,
        "remove more",
        opset=13,
    )
    e = rand((0, 3))
    expect_error(
        "Pad",
        {"x": e, "p": np.array([1, 0, 0, 0], I64)},
        runnx.InvalidArgument,
        "empty axis",
        attrs={"mode": "edge"},
        opset=13,
    )
    with pytest.raises(runnx.InvalidModel, match="mode"):
        run_runnx(
            make_model(
                "Pad",
                {"x": x},
                initializers={"p": np.zeros(4, I64)},
                attrs={"mode": "wrap"},
                opset=18,
            ),
            {"x": x},
        )


# --- ConstantOfShape -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [[2, 3], [], [0, 4], [7]])
@pytest.mark.parametrize(
    "value",
    [
        None,
        np.array([1.5], np.float32),
        np.array([-7], I64),
        np.array([True]),
        np.array([3], np.int8),
        np.array([2.5], np.float16),
    ],
)
@pytest.mark.parametrize("runtime", [False, True])
def test_constant_of_shape(shape, value, runtime):
    attrs = {} if value is None else {"value": numpy_helper.from_array(value, "value")}
    s = np.array(shape, I64)
    if runtime:
        check_against_reference("ConstantOfShape", {"s": s}, attrs=attrs)
    else:
        check_against_reference("ConstantOfShape", {}, attrs=attrs, initializers={"s": s})


def test_constant_of_shape_errors():
    s = np.array([2, -1], I64)
    expect_error("ConstantOfShape", {"s": s}, runnx.InvalidArgument, "invalid shape")
    bad = helper.make_tensor("value", TensorProto.FLOAT, [2], [1, 2])
    with pytest.raises(runnx.InvalidModel, match="one element"):
        run_runnx(
            make_model("ConstantOfShape", {"s": np.array([2], I64)}, attrs={"value": bad}),
            {"s": np.array([2], I64)},
        )


# --- Larger tensors: the multithreaded paths -------------------------------------------------


def test_large_tensors_multithreaded():
    x = rand((8, 64, 33, 35))
    for op, kw in [
        ("Transpose", {"attrs": {"perm": [0, 2, 3, 1]}}),
        ("Transpose", {"attrs": {"perm": [3, 1, 2, 0]}}),
    ]:
        model = make_model(op, {"x": x}, **kw)
        expected = run_reference(model, {"x": x})
        for threads in (1, 4):
            opts = runnx.SessionOptions()
            opts.intra_op_num_threads = threads
            y = run_runnx(model, {"x": x}, sess_options=opts)
            np.testing.assert_array_equal(y[0], expected[0])
    inputs = {"x": x}
    inits = {"p": np.array([0, 1, 2, 3, 0, 2, 1, 0], I64)}
    model = make_model("Pad", inputs, initializers=inits, attrs={"mode": "reflect"})
    np.testing.assert_array_equal(run_runnx(model, inputs)[0], run_reference(model, inputs)[0])
    inits = {
        "s": np.array([1, 60, -1], I64),
        "e": np.array([7, 0, 0], I64),
        "a": np.array([0, 1, 3], I64),
        "st": np.array([2, -3, -2], I64),
    }
    model = make_model("Slice", inputs, initializers=inits)
    np.testing.assert_array_equal(run_runnx(model, inputs)[0], run_reference(model, inputs)[0])


@pytest.mark.parametrize(
    "value",
    [
        helper.make_tensor("value", TensorProto.FLOAT, [1], [2.5]),
        helper.make_tensor("value", TensorProto.INT32, [1], [-3]),
        helper.make_tensor("value", TensorProto.BOOL, [1], [True]),
    ],
)
def test_constant_of_shape_typed_field_values(value):
    """value stored in float_data/int32_data rather than raw_data."""
    check_against_reference("ConstantOfShape", {"s": np.array([3, 2], I64)}, attrs={"value": value})


def test_pad_attribute_value_float16():
    x = rand((2, 3), np.float16)
    check_against_reference("Pad", {"x": x}, attrs={"pads": [0, 1, 1, 0], "value": 1.5}, opset=10)


def test_hostile_shape_values_fail_cleanly():
    """Huge pads/repeats/splits are refused (or produce an empty output) without overflow."""
    big = np.iinfo(np.int64).max
    x = rand((2, 3))
    expect_error(
        "Pad",
        {"x": x, "p": np.array([0, big, 0, 1], I64)},
        runnx.InvalidArgument,
        "too large",
        opset=13,
    )
    expect_error(
        "Pad",
        {"x": x, "p": np.array([0, 1 << 34, 0, 1 << 34], I64)},
        runnx.ResourceExhausted,
        "too large",
        opset=13,
    )
    expect_error(
        "Tile", {"x": x, "r": np.array([1, big // 2], I64)}, runnx.InvalidArgument, "too large"
    )
    expect_error(
        "Split",
        {"x": x, "s": np.array([big, big, 8], I64)},
        runnx.InvalidArgument,
        "does not fit",
        3,
        attrs={"axis": 1},
        opset=13,
    )
    e = rand((0, 3))
    y = run_runnx(
        make_model(
            "Pad", {"x": e}, initializers={"p": np.array([0, 1 << 34, 0, 0], I64)}, opset=13
        ),
        {"x": e},
    )[0]
    assert y.shape == (0, 3 + (1 << 34))
