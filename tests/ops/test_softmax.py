"""Softmax, LogSoftmax, Hardmax against onnx.reference: both axis semantics (opset < 13 coerces
to 2-D at `axis`, opset >= 13 normalises one axis), awkward shapes, stability, errors."""

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

OPS = ["Softmax", "LogSoftmax", "Hardmax"]

# (shape, axis); axis None means the attribute is omitted (default 1 before 13, -1 from 13).
CASES = [
    ((7,), 0),
    ((7,), None),
    ((3, 5), 0),
    ((3, 5), 1),
    ((3, 5), -1),
    ((2, 3, 17), 0),
    ((2, 3, 17), 1),
    ((2, 3, 17), -2),
    ((2, 3, 17), None),
    ((1, 1, 33), 1),
    ((2, 3, 300), 1),  # strided columns beyond one 256-wide chunk (opset 13)
    ((4, 1, 5, 2), 2),
    ((0, 3), 1),
    ((3, 0), 0),
]


def _attrs(axis):
    return {} if axis is None else {"axis": axis}


def numpy_ref(op, x, axis, opset):
    """float64 reference for both semantics (onnx.reference implements only opset 13's)."""
    rank = x.ndim
    axis = (1 if opset < 13 else -1) if axis is None else axis
    axis = axis + rank if axis < 0 else axis
    if x.size == 0:
        return x.copy()
    xd = x.astype(np.float64)
    if opset < 13:
        rows = int(np.prod(x.shape[:axis]))
        xd = xd.reshape(rows, -1)
        ax = 1
    else:
        ax = axis
    if op == "Hardmax":
        idx = np.expand_dims(np.argmax(xd, axis=ax), ax)
        y = np.zeros_like(xd)
        np.put_along_axis(y, idx, 1, axis=ax)
    else:
        m = xd.max(axis=ax, keepdims=True)
        lse = np.log(np.exp(xd - m).sum(axis=ax, keepdims=True)) + m
        y = xd - lse if op == "LogSoftmax" else np.exp(xd - lse)
    return y.reshape(x.shape).astype(x.dtype)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("shape, axis", CASES)
def test_softmax_matches_reference(op, opset, shape, axis):
    if opset < 13 and axis is None and len(shape) < 2:
        pytest.skip("the old default axis 1 needs rank >= 2")
    x = rand(shape, np.float32, -4, 4)
    model = make_model(op, {"x": x}, attrs=_attrs(axis), opset=opset)
    (y,) = run_runnx(model, {"x": x})
    assert_close(y, numpy_ref(op, x, axis, opset))
    if opset >= 13:
        assert_close(y, run_reference(model, {"x": x})[0])


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [7, 11, 13, 21])
def test_softmax_float64(op, opset):
    x = rand((3, 4, 9), np.float64, -4, 4)
    (y,) = run_runnx(make_model(op, {"x": x}, attrs={"axis": 1}, opset=opset), {"x": x})
    assert_close(y, numpy_ref(op, x, 1, opset))


def test_old_and_new_semantics_differ():
    x = rand((2, 3, 4), np.float32)
    (old,) = run_runnx(make_model("Softmax", {"x": x}, attrs={"axis": 1}, opset=11), {"x": x})
    (new,) = run_runnx(make_model("Softmax", {"x": x}, attrs={"axis": 1}, opset=13), {"x": x})
    # Opset 11 normalises each 12-element row; opset 13 each 3-element column.
    np.testing.assert_allclose(old.reshape(2, 12).sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(new.sum(1), 1, rtol=1e-5)
    assert not np.allclose(old, new)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_large_logits_are_stable(op, axis):
    x = rand((5, 40), np.float32, -1, 1) * 1000
    (y,) = run_runnx(make_model(op, {"x": x}, attrs={"axis": axis}, opset=13), {"x": x})
    assert np.isfinite(y).all()
    assert_close(y, numpy_ref(op, x, axis, 13))


def test_softmax_masked_with_minus_inf():
    x = rand((4, 12), np.float32)
    x[:, 5:] = -np.inf
    (y,) = check_against_reference("Softmax", {"x": x}, opset=13)
    assert (y[:, 5:] == 0).all()


def test_softmax_float32_accuracy_against_float64():
    x = rand((8, 1000), np.float32, -30, 30)
    (y,) = run_runnx(make_model("Softmax", {"x": x}, opset=13), {"x": x})
    xd = x.astype(np.float64)
    e = np.exp(xd - xd.max(-1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(-1, keepdims=True), rtol=2e-6, atol=1e-12)


def test_hardmax_ties_pick_first():
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2]], np.float32)
    (y,) = check_against_reference("Hardmax", {"x": x}, opset=13)
    assert_close(y, np.array([[0, 1, 0, 0], [1, 0, 0, 0]], np.float32))


@pytest.mark.parametrize("axis", [-1, 1])
def test_softmax_multithreaded(axis):
    x = rand((64, 300, 3), np.float32, -5, 5)
    so = runnx.SessionOptions()
    so.intra_op_num_threads = 4
    model = make_model("Softmax", {"x": x}, attrs={"axis": axis}, opset=13)
    (y,) = run_runnx(model, {"x": x}, sess_options=so)
    assert_close(y, run_reference(model, {"x": x})[0])


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_axis_out_of_range(opset):
    x = rand((2, 3), np.float32)
    with pytest.raises((runnx.InvalidModel, runnx.InvalidArgument), match="axis 2 is out of range"):
        run_runnx(make_model("Softmax", {"x": x}, attrs={"axis": 2}, opset=opset), {"x": x})


def test_softmax_rejects_int_input():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    with pytest.raises(runnx.UnsupportedOp, match="int32"):
        run_runnx(make_model("Softmax", {"x": x}, opset=13), {"x": x})


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_nan_and_inf_rows_match_reference(op, axis):
    # A NaN (or +inf) in a row makes the whole row NaN, as numpy computes it; other rows unaffected.
    x = rand((4, 9), np.float32)
    x[1, 3] = np.nan
    x[2, 5] = np.inf
    x[3, :] = -np.inf if axis == -1 else x[3, :]
    model = make_model(op, {"x": x}, attrs={"axis": axis}, opset=13)
    (y,) = run_runnx(model, {"x": x})
    with np.errstate(invalid="ignore"):
        (ref,) = run_reference(model, {"x": x})
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
