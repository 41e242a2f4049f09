"""1x1 convolutions on the NCHW GEMM path (W packed at load, X packed per column slice) with their
epilogue finished in the GEMM's registers: bias, a residual whose buffer the output takes over,
ReLU / Clip / none, on shapes around the 6x16 register tile and the GEMM's column slices: output
planes that are not a multiple of 16 pixels, 64 input channels (the short-K row-groups-outer
tiles), 256 and 300 (one K-block and two), output channels off the 6-row group, batch 1 and 3,
one and two threads. Against a float64 numpy reference."""

import numpy as np
import pytest
import runnx
from helpers import rand, threads
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(20261130)

# (N, C, M, H, W): C = K of the GEMM, M its rows, H * W its columns (> 64: not the transposed path)
SHAPES = [
    (1, 64, 70, 19, 19),  # 361 pixels: 22 full panels and a 9-column edge; 70 rows = 11 groups + 4
    (3, 64, 256, 9, 13),  # 117 pixels, batch 3: whole images per task
    (1, 256, 64, 17, 17),  # K = 256, one K-block: the residual read in place
    (2, 300, 13, 10, 11),  # K over one K-block: partial sums in C, each tile's residual copied
    (1, 5, 33, 40, 41),  # short K, 1640 pixels: several column slices
]
ACTS = {"": lambda v: v, "Relu": lambda v: np.maximum(v, 0), "Clip": lambda v: np.clip(v, -0.5, 1.5)}


def np_pointwise(x, w, b=None):
    y = np.einsum("nchw,mc->nmhw", x.astype(np.float64), w[:, :, 0, 0].astype(np.float64))
    return y if b is None else y + b.astype(np.float64)[None, :, None, None]


def fused_model(x_shape, r_shape, w, b, w_in, w_out, act):
    """z = Conv(r, w_in), f = FusedConv(x, w, b, z) with `act`, y = Conv(f, w_out): z and f are
    intermediates, so f may take over z's buffer (the residual read in place)."""
    attrs = {"activation": act} if act else {}
    if act == "Clip":
        attrs["activation_params"] = [-0.5, 1.5]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w_in, "w_in"),
             numpy_helper.from_array(w_out, "w_out")]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "b"))
    nodes = [
        helper.make_node("Conv", ["r", "w_in"], ["z"]),
        helper.make_node("FusedConv", ["x", "w", "b" if b is not None else "", "z"], ["f"], domain="com.runnx",
                         kernel_shape=[1, 1], **attrs),
        helper.make_node("Conv", ["f", "w_out"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "pointwise_epilogue",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, r_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.runnx", 1)])
    model.ir_version = 8
    return model


def check(y, ref, k):
    scale = max(1.0, float(np.abs(ref).max()))
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=2e-5 * scale * max(1.0, np.sqrt(k) / 4))


def run_fused(shape, act, with_bias, n_threads):
    """FusedConv(x, w, b, z) on `shape` with z = Conv(r, w_in) in its output's buffer, twice (the
    second run is on the plan), against float64."""
    n, c, m, h, w_ = shape
    x = rand((n, c, h, w_), rng=RNG)
    r = rand((n, 7, h, w_), rng=RNG)
    w = rand((m, c, 1, 1), rng=RNG, low=-0.5, high=0.5)
    w_in = rand((m, 7, 1, 1), rng=RNG, low=-0.5, high=0.5)
    w_out = rand((5, m, 1, 1), rng=RNG, low=-0.5, high=0.5)
    b = rand((m,), rng=RNG) if with_bias else None
    sess = runnx.InferenceSession(fused_model(x.shape, r.shape, w, b, w_in, w_out, act).SerializeToString(),
                                  threads(n_threads))
    ref = np_pointwise(ACTS[act](np_pointwise(x, w, b) + np_pointwise(r, w_in)), w_out)
    for _ in range(2):
        check(sess.run(None, {"x": x, "r": r})[0], ref, c + 7 + m)
    assert sess.memory_stats()["inplace_nodes"] == 1  # the residual is the output's own buffer


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("shape", SHAPES)
def test_pointwise_bias_residual_act(shape, act, n_threads):
    run_fused(shape, act, True, n_threads)


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_pointwise_residual_without_bias(shape):
    run_fused(shape, "Relu", False, 2)


@pytest.mark.parametrize("shape", SHAPES)
def test_pointwise_bias_only(shape):
    # A plain Conv with bias (ResNet-50's downsample convs): bias in the registers, no activation.
    n, c, m, h, w_ = shape
    x = rand((n, c, h, w_), rng=RNG)
    w = rand((m, c, 1, 1), rng=RNG, low=-0.5, high=0.5)
    b = rand((m,), rng=RNG)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = runnx.InferenceSession(model.SerializeToString(), threads(2))
    check(sess.run(None, {"x": x})[0], np_pointwise(x, w, b), c)
