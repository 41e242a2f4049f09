"""Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout: views of the input, checked against
onnx.reference. Shape-like inputs are tested both as initializers and as run-time graph inputs."""

from __future__ import annotations

import numpy as np
import pytest
import runnx
from helpers import check_against_reference, expect_invalid, make_model, rand, run_runnx

I64 = np.int64


def _shape_input(name, value, runtime):
    """(inputs, initializers) placing a shape-like tensor as a graph input or an initializer."""
    return ({name: value}, {}) if runtime else ({}, {name: value})


def check_with_shape_input(op, x, name, value, runtime, **kw):
    extra_in, extra_init = _shape_input(name, value, runtime)
    return check_against_reference(
        op, {"x": x, **extra_in}, initializers=extra_init, input_order=["x", name], **kw
    )


# --- Reshape ---------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", [False, True])
@pytest.mark.parametrize(
    "shape, target",
    [
        ((2, 3, 4), [4, -1]),
        ((2, 3, 4), [0, 12]),
        ((2, 3, 4), [0, 0, -1]),
        ((2, 3, 4), [-1]),
        ((24,), [2, 3, 4]),
        ((1,), []),
        ((), [1, 1]),
        ((0, 3), [-1, 3]),
        ((0, 3), [0, 5]),
        ((7, 1, 33), [7, 33]),
    ],
)
def test_reshape(shape, target, runtime):
    x = rand(shape)
    t = np.array(target, I64)
    check_with_shape_input("Reshape", x, "s", t, runtime)


@pytest.mark.parametrize("runtime", [False, True])
def test_reshape_allowzero(runtime):
    x = rand((0, 3))
    y = check_with_shape_input(
        "Reshape", x, "s", np.array([3, 0], I64), runtime, attrs={"allowzero": 1}
    )
    assert y[0].shape == (3, 0)
    x = rand((2, 3))
    # allowzero=0 (default): 0 copies the input dim.
    y = check_with_shape_input("Reshape", x, "s", np.array([0, 3], I64), runtime, opset=14)
    assert y[0].shape == (2, 3)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int8, np.bool_, np.float16])
def test_reshape_dtypes(dtype):
    check_with_shape_input("Reshape", rand((3, 4), dtype), "s", np.array([2, -1], I64), False)


@pytest.mark.parametrize(
    "target, match",
    [
        ([5, -1], "cannot reshape"),
        ([-1, -1], "more than one -1"),
        ([0, 0, 0, 7], "copies dim"),
        ([-2, 12], "invalid dim"),
    ],
)
def test_reshape_errors(target, match):
    x = rand((2, 12))
    t = np.array(target, I64)
    with pytest.raises(runnx.InvalidArgument, match=match):
        run_runnx(make_model("Reshape", {"x": x, "s": t}), {"x": x, "s": t})


def test_reshape_zero_and_minus_one_with_allowzero():
    x = rand((0, 4))
    t = np.array([0, -1], I64)
    with pytest.raises(runnx.InvalidArgument, match="allowzero"):
        run_runnx(make_model("Reshape", {"x": x, "s": t}, attrs={"allowzero": 1}), {"x": x, "s": t})


def test_reshape_empty_with_zero_and_minus_one():
    # The copied 0 leaves -1 undetermined; numpy and onnxruntime refuse it as well.
    x = rand((0, 3))
    t = np.array([0, -1, 1], I64)
    with pytest.raises(runnx.InvalidArgument, match="cannot reshape"):
        run_runnx(make_model("Reshape", {"x": x, "s": t}), {"x": x, "s": t})


# --- Flatten ---------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [9, 13])
@pytest.mark.parametrize("shape", [(2, 3, 4), (1,), (0, 3, 2), (5, 1, 1, 7)])
@pytest.mark.parametrize("axis", [0, 1, -1, "rank"])
def test_flatten(shape, axis, opset):
    a = len(shape) if axis == "rank" else axis
    if opset < 11 and a < 0:
        pytest.skip("negative axes from opset 11")
    x = rand(shape)
    k = a + len(shape) if a < 0 else a
    # numpy directly: the reference cannot reshape empty tensors with a -1.
    expected = x.reshape(int(np.prod(shape[:k])), int(np.prod(shape[k:])))
    y = run_runnx(make_model("Flatten", {"x": x}, attrs={"axis": a}, opset=opset), {"x": x})[0]
    np.testing.assert_array_equal(y, expected)


def test_flatten_scalar_and_bad_axis():
    s = np.float32(3.0).reshape(())
    y = run_runnx(make_model("Flatten", {"x": s}, attrs={"axis": 0}), {"x": s})
    assert y[0].shape == (1, 1) and y[0][0, 0] == 3
    x = rand((2, 3))
    expect_invalid("Flatten", {"x": x}, "Flatten.*axis 3 is out of range", attrs={"axis": 3})


# --- Squeeze / Unsqueeze ---------------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 13, 21])
@pytest.mark.parametrize("runtime", [False, True])
@pytest.mark.parametrize(
    "shape, axes",
    [
        ((1, 3, 1, 5), [0, 2]),
        ((1, 3, 1, 5), [-2]),
        ((1, 3, 1, 5), None),
        ((1,), [0]),
        ((1, 1), None),
        ((0, 1), [1]),
        ((3, 4), None),
    ],
)
def test_squeeze(shape, axes, runtime, opset):
    x = rand(shape)
    if axes is None:
        check_against_reference("Squeeze", {"x": x}, opset=opset)
    elif opset < 13:
        if runtime:
            pytest.skip("axes is an attribute before opset 13")
        check_against_reference("Squeeze", {"x": x}, attrs={"axes": axes}, opset=opset)
    else:
        check_with_shape_input("Squeeze", x, "axes", np.array(axes, I64), runtime, opset=opset)


def test_squeeze_errors():
    x = rand((1, 3))
    ax = np.array([1], I64)
    with pytest.raises(runnx.InvalidArgument, match="cannot squeeze axis 1 of size 3"):
        run_runnx(make_model("Squeeze", {"x": x, "a": ax}, opset=13), {"x": x, "a": ax})
    ax = np.array([2], I64)
    with pytest.raises(runnx.InvalidArgument, match="out of range"):
        run_runnx(make_model("Squeeze", {"x": x, "a": ax}, opset=13), {"x": x, "a": ax})


@pytest.mark.parametrize("opset", [11, 13, 21])
@pytest.mark.parametrize("runtime", [False, True])
@pytest.mark.parametrize(
    "shape, axes",
    [
        ((3, 5), [0]),
        ((3, 5), [-1]),
        ((3, 5), [0, 3]),
        ((), [0]),
        ((), [0, -1]),
        ((0, 2), [1]),
        ((2, 3), [1, -2]),
    ],
)
def test_unsqueeze(shape, axes, runtime, opset):
    x = rand(shape)
    if opset < 13:
        if runtime:
            pytest.skip("axes is an attribute before opset 13")
        check_against_reference("Unsqueeze", {"x": x}, attrs={"axes": axes}, opset=opset)
    else:
        check_with_shape_input("Unsqueeze", x, "axes", np.array(axes, I64), runtime, opset=opset)


def test_unsqueeze_errors():
    x = rand((2, 3))
    for axes, match in [([0, 0], "repeated"), ([4], "out of range")]:
        ax = np.array(axes, I64)
        with pytest.raises(runnx.InvalidArgument, match=match):
            run_runnx(make_model("Unsqueeze", {"x": x, "a": ax}, opset=13), {"x": x, "a": ax})


# --- Identity / Dropout ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (0, 3), (2, 3, 17)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_identity(shape, dtype):
    check_against_reference("Identity", {"x": rand(shape, dtype)})


def test_identity_output_is_independent_of_input():
    x = rand((4, 5))
    y = run_runnx(make_model("Identity", {"x": x}), {"x": x})[0]
    x[:] = 0  # the returned array must not alias the caller's buffer
    assert np.any(y != 0)


@pytest.mark.parametrize("opset", [12, 13, 22])
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_dropout_inference(opset, n_outputs):
    x = rand((3, 17))
    check_against_reference("Dropout", {"x": x}, n_outputs, opset=opset)
    # ratio and training_mode=False given as inputs
    y = check_against_reference(
        "Dropout",
        {"x": x, "t": np.array(False)},
        n_outputs,
        initializers={"r": np.array(0.3, np.float32)},
        input_order=["x", "r", "t"],
        opset=opset,
    )
    np.testing.assert_array_equal(y[0], x)
    if n_outputs == 2:
        assert y[1].dtype == np.bool_ and y[1].all()


def test_dropout_old_opset_attribute_form():
    x = rand((2, 5))
    y = run_runnx(make_model("Dropout", {"x": x}, 2, attrs={"ratio": 0.2}, opset=7), {"x": x})
    np.testing.assert_array_equal(y[0], x)
    assert y[1].dtype == np.float32 and (y[1] == 1).all()  # mask has the input's type before 10
    y = run_runnx(make_model("Dropout", {"x": x}, 2, opset=10), {"x": x})
    assert y[1].dtype == np.bool_ and y[1].all()


def test_dropout_training_mode_is_unsupported():
    x = rand((2, 5))
    m = make_model(
        "Dropout",
        {"x": x},
        initializers={"r": np.array(0.5, np.float32), "t": np.array(True)},
        opset=13,
    )
    with pytest.raises(runnx.UnsupportedOp, match="training_mode"):
        run_runnx(m, {"x": x})
    m = make_model("Dropout", {"x": x, "t": np.array(True)}, input_order=["x", "", "t"], opset=13)
    with pytest.raises(runnx.UnsupportedOp, match="training_mode"):
        run_runnx(m, {"x": x, "t": np.array(True)})


@pytest.mark.parametrize("runtime", [False, True])
def test_dropout_training_with_zero_ratio_drops_nothing(runtime):
    x = rand((2, 5))
    params = {"r": np.array(0.0, np.float32), "t": np.array(True)}
    y = check_against_reference(
        "Dropout",
        {"x": x, **(params if runtime else {})},
        2,
        initializers={} if runtime else params,
        input_order=["x", "r", "t"],
        opset=13,
    )
    np.testing.assert_array_equal(y[0], x)
    assert y[1].all()
    if runtime:  # a non-zero ratio fed at run time is refused then
        m = make_model("Dropout", {"x": x, **params}, 2, input_order=["x", "r", "t"], opset=13)
        with pytest.raises(runnx.UnsupportedOp, match="training_mode"):
            run_runnx(m, {"x": x, "r": np.array(0.5, np.float32), "t": np.array(True)})


def test_views_in_a_chain():
    """Reshape -> Squeeze -> Unsqueeze -> Flatten chained: views of views keep the bytes alive."""
    from onnx import TensorProto, helper

    x = rand((2, 1, 6))
    nodes = [
        helper.make_node("Reshape", ["x", "s"], ["a"]),
        helper.make_node("Squeeze", ["a", "sq"], ["b"]),
        helper.make_node("Unsqueeze", ["b", "sq"], ["c"]),
        helper.make_node("Flatten", ["c"], ["y"], axis=2),
    ]
    g = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            helper.make_tensor("s", TensorProto.INT64, [3], [3, 1, 4]),
            helper.make_tensor("sq", TensorProto.INT64, [1], [1]),
        ],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    sess = runnx.InferenceSession(m.SerializeToString())
    for _ in range(3):  # the second and later runs use the cached memory plan
        y = sess.run(None, {"x": x})[0]
        np.testing.assert_array_equal(y, x.reshape(3, 1, 4).reshape(3, 4))
