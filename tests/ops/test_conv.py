"""Conv and ConvTranspose against onnx.reference and a direct numpy scatter reference."""

import itertools

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
    threads,
)


def compare(model, feeds, expected, k=1, **kw):
    (y,) = run_runnx(model, feeds, **kw)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5 * max(k, 1))


def conv_case(
    x_shape, w_shape, bias=True, const_w=False, dtype=np.float32, opset=13, n_threads=None, **attrs
):
    x, w = rand(x_shape, dtype), rand(w_shape, dtype)
    inputs, inits = {"x": x}, {}
    (inits if const_w else inputs)["w"] = w
    if bias:
        (inits if const_w else inputs)["b"] = rand((w_shape[0],), dtype)
    model = make_model(
        "Conv",
        inputs,
        initializers=inits,
        attrs=attrs,
        opset=opset,
        input_order=["x", "w"] + (["b"] if bias else []),
    )
    (expected,) = run_reference(model, inputs)
    k = int(np.prod(w_shape[1:]))
    compare(
        model,
        inputs,
        expected.astype(dtype),
        k=k,
        sess_options=threads(n_threads) if n_threads else None,
    )


CONV_CASES = [
    # x shape, w shape, attrs
    ((1, 1, 5, 5), (1, 1, 3, 3), {}),
    ((2, 3, 7, 9), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 3, 7, 9), (4, 3, 3, 2), {"pads": [1, 0, 2, 1], "strides": [2, 3]}),
    ((1, 2, 10, 11), (3, 2, 3, 3), {"dilations": [2, 3], "pads": [2, 1, 0, 3]}),
    ((1, 4, 6, 6), (6, 2, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),
    ((2, 4, 9, 8), (4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),  # depthwise
    (
        (1, 4, 9, 8),
        (8, 1, 3, 3),
        {"group": 4, "strides": [2, 2], "pads": [1, 0, 1, 2]},
    ),  # multiplier 2
    ((1, 3, 11, 10), (3, 1, 5, 3), {"group": 3, "strides": [1, 3], "dilations": [2, 1]}),
    ((2, 5, 4, 7), (3, 5, 1, 1), {}),  # pointwise: X is the col matrix
    ((1, 5, 7, 7), (3, 5, 1, 1), {"strides": [2, 2]}),
    ((1, 3, 7, 8), (2, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 7, 8), (2, 3, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ((1, 3, 7, 8), (2, 3, 3, 3), {"auto_pad": "VALID", "strides": [2, 1]}),
    ((1, 3, 7, 8), (2, 3, 3, 3), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ((2, 3, 17), (4, 3, 5), {"pads": [2, 1], "strides": [2]}),  # 1-D
    ((1, 4, 19), (4, 1, 3), {"group": 4, "dilations": [3]}),  # 1-D depthwise
    ((1, 2, 5, 6, 7), (3, 2, 3, 2, 3), {"pads": [1, 0, 1, 1, 1, 0], "strides": [1, 2, 2]}),  # 3-D
    ((1, 4, 4, 5, 6), (4, 1, 3, 3, 3), {"group": 4, "pads": [1] * 6}),  # 3-D depthwise
    ((0, 3, 5, 5), (2, 3, 3, 3), {}),  # empty batch
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv(x_shape, w_shape, attrs, bias):
    conv_case(x_shape, w_shape, bias=bias, **attrs)


@pytest.mark.parametrize("opset", [7, 11, 22])
def test_conv_opsets_constant_weights(opset):
    conv_case((1, 3, 8, 8), (5, 3, 3, 3), const_w=True, opset=opset, pads=[1, 1, 1, 1])


def test_conv_float64():
    conv_case((2, 4, 6, 7), (6, 2, 3, 3), dtype=np.float64, group=2, pads=[1, 1, 1, 1])
    conv_case((1, 3, 6, 7), (3, 1, 3, 3), dtype=np.float64, group=3)


@pytest.mark.parametrize(
    "x_shape,w_shape,attrs",
    [
        ((1, 16, 40, 40), (8, 16, 3, 3), {"pads": [1, 1, 1, 1]}),  # one image: tiles per thread
        ((5, 8, 12, 12), (8, 8, 3, 3), {"strides": [2, 2]}),  # parallel over images
        ((1, 64, 40, 64), (4, 64, 3, 3), {"pads": [1, 1, 1, 1]}),  # col buffer split in tiles
        ((2, 32, 20, 20), (32, 1, 3, 3), {"group": 32, "pads": [1, 1, 1, 1]}),
    ],
)
def test_conv_multithreaded(x_shape, w_shape, attrs):
    conv_case(x_shape, w_shape, n_threads=3, **attrs)


@pytest.mark.parametrize(
    "x_shape,w_shape,attrs,err,match",
    [
        ((1, 3, 5, 5), (2, 4, 3, 3), {}, runnx.InvalidArgument, "group"),
        ((1, 4, 5, 5), (3, 2, 3, 3), {"group": 2}, runnx.InvalidArgument, "group"),
        ((1, 3, 2, 2), (2, 3, 3, 3), {}, runnx.InvalidArgument, "smaller than the window"),
        (
            (1, 3, 5, 5),
            (2, 3, 3, 3),
            {"kernel_shape": [2, 2]},
            runnx.InvalidArgument,
            "kernel_shape",
        ),
        ((1, 3, 5, 5), (2, 3, 3), {}, runnx.InvalidArgument, "same rank"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"group": 0}, runnx.InvalidModel, "group"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"auto_pad": "SAME"}, runnx.InvalidModel, "auto_pad"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"strides": [0, 1]}, runnx.InvalidModel, "strides"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"pads": [1, 1]}, runnx.InvalidModel, "pads"),
        ((1, 1, 3, 3, 3, 3), (1, 1, 1, 1, 1, 1), {}, runnx.UnsupportedOp, "spatial dims"),
    ],
)
def test_conv_errors(x_shape, w_shape, attrs, err, match):
    inputs = {"x": np.ones(x_shape, np.float32), "w": np.ones(w_shape, np.float32)}
    if err is runnx.InvalidArgument:  # contradictory static shapes: refused at load as well
        return expect_invalid("Conv", inputs, match, attrs=attrs, opset=13)
    with pytest.raises(err, match=match):
        run_runnx(make_model("Conv", inputs, attrs=attrs, opset=13), inputs)


def test_conv_bad_bias_shape():
    inputs = {"x": rand((1, 3, 5, 5)), "w": rand((2, 3, 3, 3)), "b": rand((3,))}
    expect_invalid("Conv", inputs, "B must have shape", opset=13)


# ------------------------------------------------------------------------------- ConvTranspose


def conv_transpose_ref(x, w, b, strides, dilations, pads_begin, out_shape, group):
    """Direct scatter: every input pixel adds x * w[c] at out = in * stride - pad + k * dilation."""
    n_img, c_in = x.shape[:2]
    cg, mg = c_in // group, w.shape[1]
    y = np.zeros((n_img, mg * group, *out_shape), np.float64)
    for gi, c in itertools.product(range(group), range(cg)):
        ci = gi * cg + c
        for pos in np.ndindex(*x.shape[2:]):
            for kk in np.ndindex(*w.shape[2:]):
                o = [
                    p * s - pb + k * d
                    for p, s, pb, k, d in zip(pos, strides, pads_begin, kk, dilations)
                ]
                if all(0 <= oi < os for oi, os in zip(o, out_shape)):
                    y[(slice(None), slice(gi * mg, (gi + 1) * mg), *o)] += (
                        x[(slice(None), ci, *pos)][:, None] * w[(ci, slice(None), *kk)][None, :]
                    )
    if b is not None:
        y += b.reshape((1, -1) + (1,) * len(out_shape))
    return y.astype(x.dtype)


def ct_geometry(
    in_shape, k_shape, strides, dilations, pads, output_padding, output_shape, auto_pad
):
    """The ONNX spec's output size / pads formulas (floor division as in the spec's Python)."""
    nd = len(in_shape)
    pb, out = [], []
    for i in range(nd):
        natural = (
            strides[i] * (in_shape[i] - 1) + output_padding[i] + (k_shape[i] - 1) * dilations[i] + 1
        )
        if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = output_shape[i] if output_shape else in_shape[i] * strides[i]
            total = natural - o
            pb.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
            out.append(o)
        else:
            pb.append(pads[i])
            out.append(natural - pads[i] - pads[i + nd])
    return pb, out


CT_CASES = [
    # x shape, w shape, attrs
    ((1, 1, 3, 3), (1, 2, 3, 3), {}),
    ((2, 3, 4, 5), (3, 2, 3, 3), {"strides": [2, 2]}),
    ((1, 2, 4, 5), (2, 3, 3, 2), {"strides": [3, 2], "pads": [1, 0, 2, 1]}),
    (
        (1, 2, 4, 4),
        (2, 2, 3, 3),
        {"strides": [2, 2], "dilations": [2, 1], "output_padding": [1, 1]},
    ),
    ((1, 4, 3, 4), (4, 2, 3, 3), {"group": 2, "strides": [2, 1], "pads": [1, 1, 1, 1]}),
    (
        (2, 6, 3, 3),
        (6, 1, 4, 4),
        {"group": 6, "strides": [2, 2], "pads": [1, 1, 1, 1]},
    ),  # depthwise
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}),
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [2, 2], "output_shape": [5, 6]}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "VALID"}),
    ((2, 3, 6), (3, 2, 4), {"strides": [2], "pads": [1, 2]}),  # 1-D
    ((1, 2, 2, 3, 3), (2, 2, 2, 3, 2), {"strides": [2, 1, 2], "pads": [0, 1, 0, 1, 0, 1]}),  # 3-D
    ((1, 3, 5, 5), (3, 4, 1, 1), {}),  # 1x1
    ((0, 2, 3, 3), (2, 2, 3, 3), {}),  # empty batch
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CT_CASES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("const_w", [False, True])
def test_conv_transpose(x_shape, w_shape, attrs, bias, const_w):
    x, w = rand(x_shape), rand(w_shape)
    group = attrs.get("group", 1)
    b = rand((w_shape[1] * group,)) if bias else None
    nd = len(x_shape) - 2
    strides = attrs.get("strides", [1] * nd)
    dilations = attrs.get("dilations", [1] * nd)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    pads = attrs.get("pads", [0] * 2 * nd) if auto_pad == "NOTSET" else [0] * 2 * nd
    pb, out = ct_geometry(
        x_shape[2:],
        w_shape[2:],
        strides,
        dilations,
        pads,
        attrs.get("output_padding", [0] * nd),
        attrs.get("output_shape"),
        auto_pad,
    )
    expected = conv_transpose_ref(x, w, b, strides, dilations, pb, out, group)
    inputs, inits = {"x": x}, {}
    (inits if const_w else inputs)["w"] = w
    if bias:
        (inits if const_w else inputs)["b"] = b
    model = make_model(
        "ConvTranspose",
        inputs,
        initializers=inits,
        attrs=attrs,
        opset=13,
        input_order=["x", "w"] + (["b"] if bias else []),
    )
    compare(model, inputs, expected, k=x_shape[1])
    if group == 1 and x_shape[0] > 0 and "output_shape" not in attrs:
        # onnx.reference agrees where its ConvTranspose is exact (it mishandles group > 1).
        (ref,) = run_reference(model, inputs)
        np.testing.assert_allclose(expected, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("opset", [7, 11, 22])
def test_conv_transpose_opsets(opset):
    check_against_reference(
        "ConvTranspose",
        {"x": rand((1, 2, 3, 3)), "w": rand((2, 3, 3, 3))},
        attrs={"strides": [2, 2]},
        opset=opset,
    )


def test_conv_transpose_float64_and_threads():
    x, w, b = (
        rand((3, 8, 9, 10), np.float64),
        rand((8, 4, 3, 3), np.float64),
        rand((8,), np.float64),
    )
    attrs = {"strides": [2, 2], "pads": [1, 1, 1, 1], "group": 2}
    pb, out = ct_geometry(
        x.shape[2:], w.shape[2:], [2, 2], [1, 1], [1, 1, 1, 1], [0, 0], None, "NOTSET"
    )
    expected = conv_transpose_ref(x, w, b, [2, 2], [1, 1], pb, out, 2)
    model = make_model("ConvTranspose", {"x": x, "w": w, "b": b}, attrs=attrs, opset=13)
    for n in (1, 3):
        (y,) = run_runnx(model, {"x": x, "w": w, "b": b}, sess_options=threads(n))
        np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "x_shape,w_shape,attrs,err,match",
    [
        ((1, 3, 5, 5), (2, 2, 3, 3), {}, runnx.InvalidArgument, "group"),
        ((1, 3, 5, 5), (3, 2, 3, 3), {"group": 2}, runnx.InvalidArgument, "group"),
        (
            (1, 1, 2, 2),
            (1, 1, 3, 3),
            {"pads": [3, 3, 3, 3]},
            runnx.InvalidArgument,
            "negative output",
        ),
        ((1, 1, 2, 2), (1, 1, 3, 3), {"output_shape": [4]}, runnx.InvalidModel, "output_shape"),
        (
            (1, 1, 2, 2),
            (1, 1, 3, 3),
            {"output_padding": [-1, 0]},
            runnx.InvalidModel,
            "output_padding",
        ),
    ],
)
def test_conv_transpose_errors(x_shape, w_shape, attrs, err, match):
    inputs = {"x": np.ones(x_shape, np.float32), "w": np.ones(w_shape, np.float32)}
    if err is runnx.InvalidArgument:  # contradictory static shapes: refused at load as well
        return expect_invalid("ConvTranspose", inputs, match, attrs=attrs, opset=13)
    with pytest.raises(err, match=match):
        run_runnx(make_model("ConvTranspose", inputs, attrs=attrs, opset=13), inputs)
