"""Passes on float16 graphs (a model converted for the GPU by runnx.quantize.to_fp16): Conv +
BatchNormalization folds with the folded weights kept in float16, the decomposed LayerNorm fuses
with float16 parameters. The CPU has no float16 Conv or LayerNorm kernels, so these run the passes
alone (runnx._C._testing.optimized_graph) and check the rewritten graph and its constants against
numpy; tests/cuda/test_provider.py runs such models on the GPU against the float32 CPU path."""

import os
import sys

import numpy as np
import pytest
import runnx
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(__file__))
from pass_helpers import graph_model, layernorm_inits, layernorm_nodes

HALF = TensorProto.FLOAT16
f16 = np.float16


def optimized(model, level=99):
    return runnx._C._testing.optimized_graph(model.SerializeToString(), level)


def conv_bn_model(bias: bool, params_dtype=f16, m=5, c=3):
    rng = np.random.default_rng(m + c + bias)
    inits = {
        "w": rng.uniform(-1, 1, (m, c, 3, 3)).astype(f16),
        "scale": rng.uniform(0.5, 1.5, m).astype(params_dtype),
        "shift": rng.standard_normal(m).astype(params_dtype),
        "mean": rng.standard_normal(m).astype(params_dtype),
        "var": rng.uniform(0.2, 2.0, m).astype(params_dtype),
    }
    if bias:
        inits["b"] = rng.standard_normal(m).astype(f16)
    nodes = [
        helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["y"], epsilon=1e-3),
    ]
    return graph_model(nodes, [("x", HALF, [1, c, 6, 7])], [("y", HALF, None)], inits), inits


@pytest.mark.parametrize("bias", [False, True])
def test_float16_batchnorm_folds_into_the_conv(bias):
    model, inits = conv_bn_model(bias)
    g = optimized(model)
    assert g["passes"].get("conv_bn_folding") == 1
    (op, _, ins, outs), = g["nodes"]  # the BatchNormalization is gone
    assert op == "Conv" and outs == ["y"] and len(ins) == 3
    w, b = g["initializers"][ins[1]], g["initializers"][ins[2]]
    assert w.dtype == f16 and b.dtype == f16 and w.shape == inits["w"].shape and b.shape == (5,)
    p = {k: inits[k].astype(np.float64) for k in ("scale", "shift", "mean", "var")}
    s = p["scale"] / np.sqrt(p["var"] + np.float64(np.float32(1e-3)))
    want_w = inits["w"].astype(np.float64) * s[:, None, None, None]
    b0 = inits["b"].astype(np.float64) if bias else 0.0
    want_b = (b0 - p["mean"]) * s + p["shift"]
    # Computed in double, rounded once (b' through float32 first): within one float16 ulp.
    np.testing.assert_allclose(w.astype(np.float64), want_w, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(b.astype(np.float64), want_b, rtol=1e-3, atol=1e-7)


def test_mixed_float16_conv_and_float32_batchnorm_is_left_alone():
    model, _ = conv_bn_model(True, params_dtype=np.float32)
    g = optimized(model)
    assert "conv_bn_folding" not in g["passes"]
    assert [n[0] for n in g["nodes"]] == ["Conv", "BatchNormalization"]


def test_float16_layernorm_fuses_with_float16_parameters():
    inits = layernorm_inits(37, np.random.default_rng(3), f16)
    model = graph_model(layernorm_nodes("x", "y"), [("x", HALF, [2, 37])], [("y", HALF, None)], inits)
    g = optimized(model)
    assert g["passes"].get("layernorm_fusion") == 1
    (op, _, ins, outs), = g["nodes"]
    assert op == "LayerNormalization" and ins == ["x", "gamma", "beta"] and outs == ["y"]
    np.testing.assert_array_equal(g["initializers"]["gamma"], inits["gamma"])


def test_layernorm_with_float16_scale_and_float32_bias_is_left_alone():
    inits = layernorm_inits(8, np.random.default_rng(4), f16, beta_dtype=np.float32)
    model = graph_model(layernorm_nodes("x", "y"), [("x", HALF, [2, 8])], [("y", HALF, None)], inits)
    assert "layernorm_fusion" not in optimized(model)["passes"]


def test_the_passes_hook_rejects_bytes_that_are_no_model():
    with pytest.raises(runnx.InvalidModel):
        runnx._C._testing.optimized_graph(b"\x08\x07\x12\xff not a model")
