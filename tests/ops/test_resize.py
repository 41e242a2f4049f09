"""Resize (opset 10-22) and Upsample (7-9) against onnx.reference: every mode, nearest_mode and
coordinate_transformation_mode, scales and sizes (as initializers and run-time inputs), axes and
keep_aspect_ratio_policy (18), antialias, tf_crop_and_resize with roi, and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import runnx
from helpers import assert_close, expect_invalid, make_model, rand, run_reference, run_runnx

F32 = np.float32
COORD_MODES = ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def resize_model(x, *, scales=None, sizes=None, roi=None, runtime=False, opset=19, **attrs):
    """A one-node Resize; scales/sizes/roi become run-time graph inputs or initializers."""
    given = {"roi": roi, "scales": scales, "sizes": sizes}
    inputs, inits, order = {"x": x}, {}, ["x"]
    for name, value in given.items():
        if value is None:
            order.append("")
            continue
        (inputs if runtime else inits)[name] = value
        order.append(name)
    while order[-1] == "":
        order.pop()
    return make_model(
        "Resize", inputs, attrs=attrs, initializers=inits, opset=opset, input_order=order
    ), inputs


def check(x, **kw):
    model, feeds = resize_model(x, **kw)
    expected = run_reference(model, feeds)[0]
    actual = run_runnx(model, feeds)[0]
    assert_close(actual, expected)
    return actual


def scales_for(x, hw):
    return np.array([1.0] * (x.ndim - len(hw)) + list(hw), F32)


@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize("nearest", NEAREST_MODES)
@pytest.mark.parametrize("hw", [(2.0, 3.0), (0.5, 0.6), (1.7, 0.8), (1.0, 2.5)])
def test_nearest_scales(coord, nearest, hw):
    x = rand((1, 2, 5, 7))
    check(
        x,
        scales=scales_for(x, hw),
        mode="nearest",
        coordinate_transformation_mode=coord,
        nearest_mode=nearest,
    )


@pytest.mark.parametrize("coord", COORD_MODES + ["half_pixel_symmetric"])
@pytest.mark.parametrize("sizes", [(9, 4), (3, 11), (1, 1), (5, 7)])
@pytest.mark.parametrize("runtime", [False, True])
def test_nearest_sizes(coord, sizes, runtime):
    x = rand((2, 1, 5, 7))
    check(
        x,
        sizes=np.array([2, 1, *sizes], np.int64),
        runtime=runtime,
        mode="nearest",
        coordinate_transformation_mode=coord,
    )


@pytest.mark.parametrize("coord", COORD_MODES + ["half_pixel_symmetric"])
@pytest.mark.parametrize("hw", [(2.0, 2.0), (0.5, 0.6), (1.7, 0.8), (3.0, 1.0), (0.3, 2.2)])
@pytest.mark.parametrize("runtime", [False, True])
def test_linear_scales(coord, hw, runtime):
    x = rand((2, 3, 6, 5))
    check(
        x,
        scales=scales_for(x, hw),
        runtime=runtime,
        mode="linear",
        coordinate_transformation_mode=coord,
    )


@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize(
    "shape, sizes",
    [
        ((7,), (15,)),
        ((3, 8), (5, 3)),
        ((2, 3, 4, 5, 6), (2, 3, 7, 3, 9)),
        ((1, 1, 1, 4), (1, 1, 3, 1)),
    ],
)
def test_linear_sizes_any_rank(coord, shape, sizes):
    x = rand(shape)
    check(x, sizes=np.array(sizes, np.int64), mode="linear", coordinate_transformation_mode=coord)


@pytest.mark.parametrize("a", [-0.75, -0.5])
@pytest.mark.parametrize("exclude_outside", [0, 1])
@pytest.mark.parametrize("hw", [(2.0, 1.5), (0.6, 0.75), (1.0, 3.0)])
@pytest.mark.parametrize("coord", ["half_pixel", "align_corners", "asymmetric"])
def test_cubic(a, exclude_outside, hw, coord):
    x = rand((1, 2, 6, 7))
    check(
        x,
        scales=scales_for(x, hw),
        mode="cubic",
        cubic_coeff_a=a,
        exclude_outside=exclude_outside,
        coordinate_transformation_mode=coord,
    )


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("hw", [(0.5, 0.4), (0.3, 1.0), (0.77, 2.0)])
def test_antialias(mode, hw):
    x = rand((1, 2, 11, 13))
    check(x, scales=scales_for(x, hw), mode=mode, antialias=1, opset=18)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
# ROIs chosen so no source coordinate sits on an inexact .5 (nearest would then depend on the
# reference's float precision, which differs between numpy 1.x and 2.x).
@pytest.mark.parametrize("roi", [[0.13, 0.2, 0.93, 0.7], [-0.2, 0.0, 1.3, 0.5], [0.4, 0.4, 0.6, 0.6]])
def test_tf_crop_and_resize(mode, roi):
    x = rand((1, 1, 6, 8))
    roi4 = np.array([0, 0, roi[0], roi[1], 1, 1, roi[2], roi[3]], F32)
    check(
        x,
        roi=roi4,
        sizes=np.array([1, 1, 5, 4], np.int64),
        mode=mode,
        coordinate_transformation_mode="tf_crop_and_resize",
        extrapolation_value=-9.0,
    )


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("axes", [[2, 3], [3], [3, 1]])
@pytest.mark.parametrize("use_sizes", [False, True])
def test_axes_opset18(mode, axes, use_sizes):
    x = rand((2, 3, 5, 6))
    kw = (
        {"sizes": np.array([7, 4, 9][: len(axes)], np.int64)}
        if use_sizes
        else {"scales": np.array([1.5, 0.5, 2.0][: len(axes)], F32)}
    )
    y = check(x, axes=axes, mode=mode, opset=18, **kw)
    # Negative axes name the same dims (the reference cannot run them).
    model, feeds = resize_model(x, axes=[a - 4 for a in axes], mode=mode, opset=18, **kw)
    np.testing.assert_array_equal(run_runnx(model, feeds)[0], y)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_keep_aspect_ratio_policy(policy, mode):
    x = rand((1, 1, 6, 9))
    y = check(
        x,
        sizes=np.array([8, 8], np.int64),
        axes=[2, 3],
        mode=mode,
        keep_aspect_ratio_policy=policy,
        opset=18,
    )
    assert (
        y.shape
        == {"stretch": (1, 1, 8, 8), "not_larger": (1, 1, 5, 8), "not_smaller": (1, 1, 8, 12)}[
            policy
        ]
    )


@pytest.mark.parametrize("opset", [11, 13, 18, 19, 22])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_opsets(opset, mode):
    x = rand((1, 3, 4, 4))
    # Opset 11-12 requires roi and scales positions even when sizes is used.
    roi = np.array([], F32) if opset < 13 else None
    scales = np.array([], F32) if opset < 13 else None
    check(x, roi=roi, scales=scales, sizes=np.array([1, 3, 7, 2], np.int64), mode=mode, opset=opset)
    check(x, roi=roi, scales=np.array([1, 1, 2, 0.5], F32), mode=mode, opset=opset)


def test_tf_half_pixel_for_nn_opset11():
    x = rand((1, 1, 4, 6))
    s = np.array([1, 1, 1.5, 0.7], F32)
    model, feeds = resize_model(
        x,
        roi=np.array([], F32),
        scales=s,
        mode="nearest",
        coordinate_transformation_mode="tf_half_pixel_for_nn",
        opset=11,
    )
    y = run_runnx(model, feeds)[0]

    # x_orig = (i + 0.5) / scale, then round_prefer_floor (the reference lacks this opset-11 mode).
    def index(n_in, n_out, scale):
        c = (np.arange(n_out) + 0.5) / np.float64(scale)
        i = np.where(c - np.floor(c) <= 0.5, np.floor(c), np.floor(c) + 1)
        return np.clip(i, 0, n_in - 1).astype(int)

    rows, cols = index(4, 6, s[2]), index(6, 4, s[3])
    np.testing.assert_array_equal(y, x[:, :, rows][:, :, :, cols])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64, np.float64])
@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_filter_dtypes(dtype, mode):
    x = rand((1, 2, 5, 6), dtype, low=-100 if dtype != np.uint8 else 0, high=100)
    model, feeds = resize_model(x, scales=scales_for(x, (1.6, 0.7)), mode=mode)
    expected = run_reference(model, feeds)[0]
    actual = run_runnx(model, feeds)[0]
    if dtype == np.float64 and mode == "cubic":
        # The reference evaluates cubic weights in float32 (cubic_coeff_a is a float32).
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)
    else:
        assert_close(actual, expected)


@pytest.mark.parametrize("dtype", [np.float16, np.uint8, np.int64, np.int8])
def test_nearest_dtypes(dtype):
    x = rand((1, 2, 5, 6), dtype)
    check(x, scales=scales_for(x, (1.6, 0.7)), mode="nearest")


def test_nearest_bool():
    x = rand((1, 2, 5, 6), np.bool_)
    model, feeds = resize_model(x, scales=scales_for(x, (1.6, 0.7)), mode="nearest")
    y = run_runnx(model, feeds)[0]
    model, feeds = resize_model(
        x.astype(np.uint8), scales=scales_for(x, (1.6, 0.7)), mode="nearest"
    )
    assert y.dtype == np.bool_
    np.testing.assert_array_equal(y, run_reference(model, feeds)[0].astype(bool))


def test_empty_and_identity():
    x = rand((0, 3, 4, 4))
    y = check(x, scales=np.array([1, 1, 2, 2], F32), mode="linear")
    assert y.shape == (0, 3, 8, 8)
    x = rand((2, 3, 4, 4))
    y = check(x, scales=np.array([1, 1, 1, 1], F32), mode="linear")
    np.testing.assert_array_equal(y, x)
    y = check(x, sizes=np.array([2, 3, 0, 4], np.int64), mode="nearest")
    assert y.shape == (2, 3, 0, 4)


def test_large_multithreaded():
    x = rand((2, 16, 40, 48))
    for mode in ["nearest", "linear", "cubic"]:
        model, feeds = resize_model(x, scales=np.array([1, 1, 2.0, 1.5], F32), mode=mode)
        expected = run_reference(model, feeds)[0]
        for threads in (1, 4):
            opts = runnx.SessionOptions()
            opts.intra_op_num_threads = threads
            assert_close(run_runnx(model, feeds, sess_options=opts)[0], expected)


# --- The old forms: Resize-10 and Upsample-7/9 (asymmetric coordinates, nearest by floor) ----


def old_form_expected(x, scales, mode):
    """Opset 11 with the old semantics spelled out, run by the reference."""
    model, feeds = resize_model(
        x,
        roi=np.array([], F32),
        scales=np.array(scales, F32),
        opset=11,
        mode=mode,
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    return run_reference(model, feeds)[0]


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 3], [1, 1, 1.7, 2.5], [1, 2, 1, 1]])
def test_resize_opset10(mode, scales):
    x = rand((1, 2, 3, 4))
    m = make_model(
        "Resize",
        {"x": x},
        initializers={"s": np.array(scales, F32)},
        attrs={"mode": mode},
        opset=10,
    )
    assert_close(run_runnx(m, {"x": x})[0], old_form_expected(x, scales, mode))


@pytest.mark.parametrize("mode", ["nearest", "linear", "bilinear"])
@pytest.mark.parametrize("opset", [7, 9])
def test_upsample(mode, opset):
    x = rand((1, 2, 3, 4))
    scales = [1.0, 1.0, 2.0, 3.0]
    if opset == 7:
        m = make_model("Upsample", {"x": x}, attrs={"mode": mode, "scales": scales}, opset=7)
    else:
        m = make_model(
            "Upsample",
            {"x": x},
            initializers={"s": np.array(scales, F32)},
            attrs={"mode": mode},
            opset=9,
        )
    y = run_runnx(m, {"x": x})[0]
    assert_close(y, old_form_expected(x, scales, "nearest" if mode == "nearest" else "linear"))
    if mode == "nearest" and opset == 9:  # the reference runs only this Upsample form
        assert_close(y, run_reference(m, {"x": x})[0])


# --- Errors ----------------------------------------------------------------------------------


def test_errors():
    x = rand((1, 1, 4, 4))
    # Contradictions refused at load (static inference) and, with dynamic shapes, at run time.
    scales, sizes = np.array([1, 1, 2, 2], F32), np.array([1, 1, 8, 8], np.int64)
    feeds = {"x": x, "scales": scales, "sizes": sizes}
    order = ["x", "", "scales", "sizes"]
    expect_invalid("Resize", feeds, "exactly one of scales and sizes", input_order=order, opset=19)
    feeds = {"x": x, "scales": np.array([2, 2], F32)}
    expect_invalid("Resize", feeds, "scales must have 4 entries", input_order=order[:3], opset=19)
    feeds = {"x": x, "scales": np.array([1, 1, -2, 2], F32)}
    expect_invalid(
        "Resize",
        {"x": x},
        "must be positive",
        initializers={"s": feeds["scales"]},
        input_order=["x", "", "s"],
        opset=19,
    )
    with pytest.raises(runnx.InvalidArgument, match="must be positive"):
        run_runnx(*resize_model(x, scales=feeds["scales"], runtime=True))
    for attrs in [
        {"mode": "bicubic"},
        {"coordinate_transformation_mode": "nope"},
        {"nearest_mode": "up"},
        {"keep_aspect_ratio_policy": "fit"},
    ]:
        with pytest.raises(runnx.InvalidModel):
            m, f = resize_model(x, scales=np.array([1, 1, 2, 2], F32), **attrs)
            run_runnx(m, f)
    # half_pixel_symmetric arrived in opset 19
    with pytest.raises(runnx.InvalidModel, match="coordinate_transformation_mode"):
        m, f = resize_model(
            x,
            scales=np.array([1, 1, 2, 2], F32),
            coordinate_transformation_mode="half_pixel_symmetric",
            opset=18,
        )
        run_runnx(m, f)
    with pytest.raises(runnx.UnsupportedOp):
        m, f = resize_model(
            rand((1, 1, 4, 4), np.float16), scales=np.array([1, 1, 2, 2], F32), mode="linear"
        )
        run_runnx(m, f)


def test_hostile_sizes():
    x = rand((0, 4))
    model, feeds = resize_model(x, sizes=np.array([0, 1 << 40], np.int64), mode="nearest")
    assert run_runnx(model, feeds)[0].shape == (0, 1 << 40)
    x = rand((2, 4))
    model, feeds = resize_model(x, sizes=np.array([2, 1 << 40], np.int64), mode="linear")
    with pytest.raises(runnx.ResourceExhausted):
        run_runnx(model, feeds)
    model, feeds = resize_model(x, scales=np.array([1, 1e30], F32), mode="nearest")
    with pytest.raises(runnx.ResourceExhausted):
        run_runnx(model, feeds)
