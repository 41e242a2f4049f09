"""`runnx inspect` prints the optimised graph with kernel choices, the passes that fired, FLOPs
and the memory plan; its FLOP count is checked against the closed form for a known model."""

import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from runnx.cli import main

MODELS = os.path.join(os.path.dirname(__file__), "..", "models")


def test_inspect_bert_tiny(capsys):
    assert main(["inspect", os.path.join(MODELS, "bert_tiny.onnx"), "--dim", "sequence=16", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "gemm_fusion x13" in out and "attention_fusion x2" in out and "layernorm_fusion x5" in out
    assert "com.runnx.FusedGemm" in out and "B packed at load" in out
    assert "com.runnx.ScaledDotProductAttention" in out
    assert "memory plan (sequence=16, batch=1)" in out
    assert "total matrix-product FLOPs" in out


def test_inspect_flops_and_levels(tmp_path, capsys):
    # y = Relu(x[3, 5] @ w[5, 7] + b): 2*3*5*7 = 210 FLOPs in one FusedGemm at level 99.
    w = numpy_helper.from_array(np.ones((5, 7), np.float32), "w")
    b = numpy_helper.from_array(np.ones(7, np.float32), "b")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
         helper.make_node("Relu", ["a"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    assert main(["inspect", str(path), "--batch", "3"]) == 0
    out = capsys.readouterr().out
    assert "gemm_fusion x1" in out and "optimised graph: 1 nodes (com.runnx.FusedGemm 1)" in out
    assert "epilogue: bias, Relu" in out
    assert "total matrix-product FLOPs: 2.1e-07 GFLOP" in out and "0.00021 MFLOP" in out
    assert main(["inspect", str(path), "--level", "0"]) == 0
    out = capsys.readouterr().out
    assert "passes fired (graph_optimization_level 0): none" in out and "optimised graph: 3 nodes" in out
