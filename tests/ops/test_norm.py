"""BatchNormalization (inference), InstanceNormalization and LayerNormalization against numpy /
onnx.reference, over opsets, shapes, dtypes, parameters as initializers or run-time inputs."""

from __future__ import annotations

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
)


def bn_ref(x, scale, bias, mean, var, eps=1e-5):
    shape = (-1,) + (1,) * (x.ndim - 2)
    xd = x.astype(np.float64)
    r = [np.asarray(p, np.float64).reshape(shape) for p in (scale, bias, mean, var)]
    return ((xd - r[2]) / np.sqrt(r[3] + eps) * r[0] + r[1]).astype(x.dtype)


def bn_params(c, dtype=np.float32, per=None):
    shape = (c,) if per is None else per
    return {
        "scale": rand(shape, dtype, 0.5, 2),
        "bias": rand(shape, dtype),
        "mean": rand(shape, dtype),
        "var": rand(shape, dtype, 0.1, 3),
    }


def run_bn(x, params, opset, attrs=None, runtime=False, n_outputs=1):
    inputs, inits = ({"x": x, **params}, {}) if runtime else ({"x": x}, params)
    order = ["x", "scale", "bias", "mean", "var"]
    model = make_model(
        "BatchNormalization",
        inputs,
        n_outputs,
        attrs=attrs,
        initializers=inits,
        opset=opset,
        input_order=order,
    )
    return model, run_runnx(model, inputs)


# --- BatchNormalization ----------------------------------------------------------------------


@pytest.mark.parametrize("opset", [7, 9, 14, 15, 21])
@pytest.mark.parametrize(
    "shape", [(2, 3), (2, 3, 5), (1, 4, 3, 7), (3, 2, 1, 1, 9), (0, 3, 4), (2, 3, 0)]
)
@pytest.mark.parametrize("runtime", [False, True])
def test_batchnorm_inference(opset, shape, runtime):
    x = rand(shape)
    p = bn_params(shape[1])
    _, (y,) = run_bn(x, p, opset, runtime=runtime)
    assert_close(y, bn_ref(x, **p))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_matches_onnx_reference(dtype):
    x = rand((2, 5, 4, 3), dtype)
    p = bn_params(5, dtype)
    model, (y,) = run_bn(x, p, 15, attrs={"epsilon": 1e-3})
    assert_close(y, run_reference(model, {"x": x})[0])


def test_batchnorm_opset15_mixed_param_types():
    # Opset 15 lets scale/B (T1) and mean/var (T2) differ from X's type.
    x = rand((2, 3, 4))
    p = bn_params(3, np.float64)
    _, (y,) = run_bn(x, p, 15)
    assert y.dtype == np.float32
    assert_close(y, bn_ref(x, **p))


def test_batchnorm_momentum_is_ignored_in_inference():
    # Exporters set momentum; inference uses the running statistics regardless.
    x = rand((4, 3, 5))
    p = bn_params(3)
    _, (y,) = run_bn(x, p, 9, attrs={"momentum": 0.9})
    assert_close(y, bn_ref(x, **p))


def test_batchnorm_non_spatial_opset7():
    x = rand((2, 3, 4))
    p = bn_params(3, per=(3, 4))
    _, (y,) = run_bn(x, p, 7, attrs={"spatial": 0})
    xd = x.astype(np.float64)
    expected = (xd - p["mean"]) / np.sqrt(p["var"] + 1e-5) * p["scale"] + p["bias"]
    assert_close(y, expected.astype(np.float32))


def test_batchnorm_training_mode_is_unsupported():
    x = rand((2, 3, 4))
    with pytest.raises(runnx.UnsupportedOp, match="training_mode"):
        run_bn(x, bn_params(3), 15, attrs={"training_mode": 1}, n_outputs=3)


def test_batchnorm_training_outputs_are_unsupported():
    x = rand((2, 3, 4))
    with pytest.raises(runnx.UnsupportedOp, match="training"):
        run_bn(x, bn_params(3), 9, n_outputs=3)


def test_batchnorm_param_size_mismatch():
    x = rand((2, 3, 4))
    feeds = {"x": x, **bn_params(3), "scale": rand((4,))}
    order = ["x", "scale", "bias", "mean", "var"]
    expect_invalid(
        "BatchNormalization",
        feeds,
        r"scale has shape \[4\], expected 3",
        input_order=order,
        opset=15,
    )


def test_batchnorm_multithreaded():
    x = rand((8, 16, 33, 35))
    p = bn_params(16)
    so = runnx.SessionOptions()
    so.intra_op_num_threads = 4
    model = make_model(
        "BatchNormalization",
        {"x": x},
        initializers=p,
        opset=15,
        input_order=["x", "scale", "bias", "mean", "var"],
    )
    (y,) = run_runnx(model, {"x": x}, sess_options=so)
    assert_close(y, bn_ref(x, **p))


# --- InstanceNormalization -------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(2, 3, 5), (1, 2, 4, 4), (3, 1, 17), (2, 3), (2, 4, 1, 1), (0, 3, 4), (2, 3, 300)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opset", [7, 22])
def test_instancenorm(shape, dtype, opset):
    c = shape[1]
    x = rand(shape, dtype, -3, 5)
    params = {"scale": rand((c,), dtype, 0.5, 2), "B": rand((c,), dtype)}
    check_against_reference(
        "InstanceNormalization", {"x": x}, initializers=params, attrs={"epsilon": 1e-4}, opset=opset
    )


def test_instancenorm_params_at_runtime():
    x = rand((2, 3, 7))
    inputs = {"x": x, "scale": rand((3,)), "B": rand((3,))}
    check_against_reference("InstanceNormalization", inputs, opset=6 + 7)


def test_instancenorm_large_offset_is_accurate():
    # A two-pass variance keeps precision when the mean is far from 0.
    x = (rand((1, 2, 1000), np.float32, -1, 1) + 1000).astype(np.float32)
    params = {"scale": np.ones(2, np.float32), "B": np.zeros(2, np.float32)}
    (y,) = run_runnx(make_model("InstanceNormalization", {"x": x}, initializers=params), {"x": x})
    xd = x.astype(np.float64)
    m = xd.mean(-1, keepdims=True)
    expected = (xd - m) / np.sqrt(((xd - m) ** 2).mean(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_instancenorm_scale_mismatch():
    x = rand((2, 3, 4))
    inputs = {"x": x, "scale": rand((2,)), "B": rand((3,))}
    expect_invalid("InstanceNormalization", inputs, "scale")


# --- LayerNormalization ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((4, 7), -1),
        ((2, 3, 17), -1),
        ((2, 3, 17), 1),
        ((2, 3, 17), 0),
        ((2, 3, 17), -2),
        ((5,), 0),
        ((3, 1, 33), 2),
        ((0, 8), -1),
        ((2, 4, 1000), -1),
    ],
)
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layernorm(shape, axis, n_outputs, with_bias):
    x = rand(shape, np.float32, -3, 5)
    norm_shape = shape[axis % len(shape) :]
    params = {"scale": rand(norm_shape, np.float32, 0.5, 2)}
    if with_bias:
        params["B"] = rand(norm_shape)
    check_against_reference(
        "LayerNormalization",
        {"x": x},
        n_outputs,
        initializers=params,
        attrs={"axis": axis, "epsilon": 1e-3},
        opset=17,
    )


@pytest.mark.parametrize("opset", [17, 18, 21, 22])
def test_layernorm_float64_and_opsets(opset):
    x = rand((3, 4, 6), np.float64)
    params = {"scale": rand((4, 6), np.float64), "B": rand((4, 6), np.float64)}
    check_against_reference(
        "LayerNormalization", {"x": x}, 3, initializers=params, attrs={"axis": 1}, opset=opset
    )


def test_layernorm_only_mean_output():
    # Outputs may be omitted in the middle: Y and Mean asked for, InvStdDev not.
    x = rand((3, 8))
    params = {"scale": rand((8,))}
    model = make_model("LayerNormalization", {"x": x}, 2, initializers=params)
    model.graph.node[0].output.append("")
    y, mean = run_runnx(model, {"x": x})
    np.testing.assert_allclose(mean, x.mean(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert mean.dtype == np.float32 and mean.shape == (3, 1)
    assert y.shape == x.shape


@pytest.mark.parametrize("scale_shape", [(1,), (1, 6), (4, 1), (6,), (1, 4, 6)])
def test_layernorm_broadcast_scale(scale_shape):
    x = rand((3, 4, 6))
    params = {"scale": rand(scale_shape, np.float32, 0.5, 2), "B": rand(scale_shape[-1:])}
    (y,) = run_runnx(
        make_model("LayerNormalization", {"x": x}, initializers=params, attrs={"axis": 1}), {"x": x}
    )
    xd = x.astype(np.float64)
    m = xd.mean((1, 2), keepdims=True)
    v = ((xd - m) ** 2).mean((1, 2), keepdims=True)
    expected = (xd - m) / np.sqrt(v + 1e-5) * params["scale"] + params["B"]
    assert_close(y, expected.astype(np.float32))


def test_layernorm_params_at_runtime_multithreaded():
    x = rand((256, 384))
    inputs = {"x": x, "scale": rand((384,)), "B": rand((384,))}
    so = runnx.SessionOptions()
    so.intra_op_num_threads = 4
    model = make_model("LayerNormalization", inputs, 3)
    got = run_runnx(model, inputs, sess_options=so)
    for a, e in zip(got, run_reference(model, inputs)):
        assert_close(a, e)


def test_layernorm_bad_scale_shape():
    x = rand((3, 8))
    inputs = {"x": x, "scale": rand((7,))}
    expect_invalid("LayerNormalization", inputs, "Scale of shape")


def test_layernorm_constant_scale_of_the_right_size_but_wrong_shape():
    # Scale and B read once at load must still be checked against X's normalised shape on every run.
    x = rand((3, 4, 6))
    expect_invalid("LayerNormalization", {"x": x}, "Scale of shape",
                   initializers={"scale": rand((6, 4))}, attrs={"axis": 1})


def test_layernorm_overridden_constant_params():
    # Scale and B that are initializers and graph inputs: a fed value replaces the one read at load.
    from onnx import helper

    x = rand((5, 12), np.float32, -3, 5)
    init = {"scale": rand((12,), np.float32, 0.5, 2), "B": rand((12,))}
    model = make_model("LayerNormalization", {"x": x}, initializers=init)
    for name in init:
        model.graph.input.append(helper.make_tensor_value_info(name, 1, [12]))
    sess = runnx.InferenceSession(model.SerializeToString())
    fed = {"scale": rand((12,), np.float32, 0.5, 2), "B": rand((12,))}
    xd = x.astype(np.float64)
    norm = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
    for params, feeds in ((init, {"x": x}), (fed, {"x": x, **fed}), ({**init, "B": fed["B"]}, {"x": x, "B": fed["B"]})):
        (y,) = sess.run(None, feeds)
        assert_close(y, (norm * params["scale"] + params["B"]).astype(np.float32))


def test_layernorm_bad_stash_type():
    x = rand((3, 8))
    with pytest.raises(runnx.InvalidModel, match="stash_type"):
        run_runnx(
            make_model(
                "LayerNormalization",
                {"x": x},
                initializers={"s": rand((8,))},
                attrs={"stash_type": 7},
            ),
            {"x": x},
        )


def test_layernorm_axis_out_of_range():
    x = rand((3, 8))
    expect_invalid(
        "LayerNormalization",
        {"x": x},
        "axis 2 is out of range",
        initializers={"s": rand((8,))},
        attrs={"axis": 2},
    )
