"""Helpers for the static inference tests (test_infer_*.py): one-node models over symbolic
inputs, the inferred types a session reports, and evaluation of a symbolic dim's text
(SymDim::str(): + - * and / (floor), ceil(a/b), max, min, bcast) under symbol bindings."""

from __future__ import annotations

import ast

import numpy as np
import onnx
import runnx
from helpers import one_node_model, onnx_type
from onnx import helper


def sym_model(
    op_type: str,
    inputs: dict[str, tuple],
    n_outputs: int = 1,
    *,
    attrs: dict | None = None,
    initializers: dict[str, np.ndarray] | None = None,
    input_order: list[str] | None = None,
    opset: int = 17,
    domain: str = "",
) -> onnx.ModelProto:
    """One-node model whose graph inputs are (numpy dtype, dims) with dims ints, names or None
    for an unknown rank."""
    initializers = initializers or {}
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return one_node_model(
        op_type,
        [helper.make_tensor_value_info(k, onnx_type(dt), dims) for k, (dt, dims) in inputs.items()],
        n_outputs,
        attrs=attrs,
        initializers=initializers,
        order=input_order or list(inputs) + list(initializers),
        domain=domain,
        opset_imports=opsets,
        graph_name=f"infer_{op_type}",
    )


def session(model: onnx.ModelProto) -> runnx.InferenceSession:
    return runnx.InferenceSession(model.SerializeToString())


def inferred(sess: runnx.InferenceSession, name: str = "y0"):
    """(dtype name or None, dims (int or str) or None, tracked values or None)."""
    return sess._sess.inferred_types()[name]


def _split_ceil(text: str) -> str:
    """ceil(a/b) -> ceil((a),(b)), split at the last top-level '/' inside the call."""
    out, i = "", 0
    while (j := text.find("ceil(", i)) >= 0:
        depth, slash, end = 0, -1, len(text)
        for m in range(j + 4, len(text)):
            if text[m] == "(":
                depth += 1
            elif text[m] == ")":
                depth -= 1
                if depth == 0:
                    end = m
                    break
            elif text[m] == "/" and depth == 1:
                slash = m
        num, den = _split_ceil(text[j + 5 : slash]), _split_ceil(text[slash + 1 : end])
        out += text[i:j] + f"ceil(({num}),({den}))"
        i = end + 1
    return out + text[i:]


def eval_dim(dim, env: dict[str, int]) -> int:
    if isinstance(dim, int):
        return dim
    assert "?" not in dim, f"dim {dim} is not known at load"

    def ev(n):
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            return env[n.id]
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        if isinstance(n, ast.BinOp):
            a, b = ev(n.left), ev(n.right)
            ops = {
                ast.Add: lambda: a + b,
                ast.Sub: lambda: a - b,
                ast.Mult: lambda: a * b,
                ast.Div: lambda: a // b,
            }
            return ops[type(n.op)]()
        if isinstance(n, ast.Call):
            f = n.func.id
            if f == "ceil":
                return -(-ev(n.args[0]) // ev(n.args[1]))
            a, b = ev(n.args[0]), ev(n.args[1])
            return {"max": max(a, b), "min": min(a, b), "bcast": b if a == 1 else a}[f]
        raise ValueError(f"cannot evaluate {dim}")

    return ev(ast.parse(_split_ceil(dim), mode="eval").body)


def eval_dims(dims, env: dict[str, int]) -> tuple[int, ...]:
    return tuple(eval_dim(d, env) for d in dims)


def run_checked(sess: runnx.InferenceSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Runs once (the first run of a shape signature checks every value against its inferred
    type; RUNNX_CHECK_INFERENCE=1 from conftest makes a mismatch raise) and returns the outputs."""
    out = sess.run(None, feeds)
    assert sess._sess.stats()["inference_mismatches"] == 0
    return out
