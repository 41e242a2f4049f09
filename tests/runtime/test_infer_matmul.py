"""Static inference for MatMul, Gemm and Einsum: symbolic output types, the run-time check on
awkward sizes, and contradictions refused at load."""

import numpy as np
import pytest
import runnx
from infer_helpers import eval_dims, inferred, run_checked, session, sym_model

F32 = np.float32
rng = np.random.default_rng(7)


def rand(*shape):
    return rng.standard_normal(shape).astype(F32)


@pytest.mark.parametrize(
    "a_dims,b_dims,want",
    [
        (["B", "S", 8], [8, 16], ["B", "S", 16]),
        ([8], ["b", 8, "n"], ["b", "n"]),  # 1-D A: its added dim is dropped
        (["b", "m", 8], [8], ["b", "m"]),  # 1-D B
        ([5], [5], []),
        ([1, "b", "m", 4], ["c", 1, 4, "n"], ["c", "b", "m", "n"]),  # batch broadcast
    ],
)
def test_matmul_symbolic(a_dims, b_dims, want):
    sess = session(sym_model("MatMul", {"a": (F32, a_dims), "b": (F32, b_dims)}, opset=13))
    dtype, dims, _ = inferred(sess)
    assert dtype == "float" and dims == want
    for env in (
        {"B": 1, "S": 7, "b": 3, "m": 1, "n": 5, "c": 2},
        {"B": 2, "S": 0, "b": 1, "m": 6, "n": 1, "c": 3},
    ):
        a = rand(*[env.get(d, d) for d in a_dims])
        b = rand(*[env.get(d, d) for d in b_dims])
        (y,) = run_checked(sess, {"a": a, "b": b})
        assert y.shape == eval_dims(dims, env) == np.matmul(a, b).shape
        np.testing.assert_allclose(y, np.matmul(a, b), rtol=1e-4, atol=1e-4)


def test_matmul_symbolic_batch_broadcast_of_two_symbols():
    sess = session(
        sym_model("MatMul", {"a": (F32, ["p", 2, 3]), "b": (F32, ["q", 3, 4])}, opset=13)
    )
    dims = inferred(sess)[1]
    for p, q in [(1, 5), (4, 1), (3, 3)]:
        a, b = rand(p, 2, 3), rand(q, 3, 4)
        (y,) = run_checked(sess, {"a": a, "b": b})
        assert y.shape == eval_dims(dims, {"p": p, "q": q})


@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("c_dims", [None, ["n"], [1, "n"], ["m", 1], []])
def test_gemm_symbolic(trans_a, trans_b, c_dims):
    a_dims = ["k", "m"] if trans_a else ["m", "k"]
    b_dims = ["n", "k"] if trans_b else ["k", "n"]
    inputs = {"a": (F32, a_dims), "b": (F32, b_dims)}
    if c_dims is not None:
        inputs["c"] = (F32, c_dims)
    sess = session(
        sym_model("Gemm", inputs, attrs={"transA": trans_a, "transB": trans_b}, opset=13)
    )
    dtype, dims, _ = inferred(sess)
    assert dtype == "float" and dims == ["m", "n"]
    for m, k, n in [(1, 1, 1), (3, 5, 7), (0, 2, 3)]:
        env = {"m": m, "k": k, "n": n}
        feeds = {name: rand(*[env.get(d, d) for d in ds]) for name, (_, ds) in inputs.items()}
        (y,) = run_checked(sess, feeds)
        assert y.shape == (m, n)


def test_gemm_constant_c_fixes_a_symbolic_dim():
    sess = session(
        sym_model(
            "Gemm", {"a": (F32, ["m", 4]), "b": (F32, [4, "n"])}, initializers={"c": rand(3, 1)}
        )
    )
    assert inferred(sess)[1] == [3, "n"]
    run_checked(sess, {"a": rand(3, 4), "b": rand(4, 6)})


@pytest.mark.parametrize(
    "eq,shapes,want",
    [
        ("bij,bjk->bik", [["b", "i", 4], ["b", 4, "k"]], ["b", "i", "k"]),
        ("...ij,...jk->...ik", [["x", "y", "i", 4], [4, "k"]], ["x", "y", "i", "k"]),
        ("...ij,jk", [["x", "i", 4], [4, "k"]], ["x", "i", "k"]),  # implicit output
        ("ij,jk", [["i", 3], [3, "k"]], ["i", "k"]),
        ("ij,ij->ij", [[1, "n"], ["m", "n"]], ["m", "n"]),  # a size-1 label broadcasts
        ("ii->i", [["n", "n"]], ["n"]),
        ("bhqd,bhkd->bhqk", [["b", 2, "q", 8], ["b", 2, "k", 8]], ["b", 2, "q", "k"]),
        ("i,j->ij", [["i"], ["j"]], ["i", "j"]),
        ("ij->", [["i", "j"]], []),
    ],
)
def test_einsum_symbolic(eq, shapes, want):
    inputs = {f"x{i}": (F32, s) for i, s in enumerate(shapes)}
    sess = session(sym_model("Einsum", inputs, attrs={"equation": eq}, opset=13))
    dtype, dims, _ = inferred(sess)
    assert dtype == "float" and dims == want
    for env in (
        {"b": 2, "i": 3, "k": 5, "x": 1, "y": 2, "m": 3, "n": 3, "q": 1, "j": 4},
        {"b": 1, "i": 1, "k": 2, "x": 3, "y": 1, "m": 1, "n": 5, "q": 3, "j": 1},
    ):
        feeds = {f"x{i}": rand(*[env.get(d, d) for d in s]) for i, s in enumerate(shapes)}
        (y,) = run_checked(sess, feeds)
        expected = np.einsum(eq, *feeds.values())
        assert y.shape == expected.shape == eval_dims(dims, env)
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_unknown_rank_degrades():
    for op, attrs in [("MatMul", {}), ("Gemm", {}), ("Einsum", {"equation": "ij,jk->ik"})]:
        sess = session(
            sym_model(op, {"a": (F32, None), "b": (F32, [4, "n"])}, attrs=attrs, opset=13)
        )
        dtype, dims, _ = inferred(sess)
        assert dtype == "float"
        assert dims is None if op == "MatMul" else (len(dims) == 2 and dims[1] == "n")
        (y,) = run_checked(sess, {"a": rand(3, 4), "b": rand(4, 2)})
        assert y.shape == (3, 2)


@pytest.mark.parametrize(
    "op,shapes,attrs,match",
    [
        ("MatMul", [[3, 4], [5, 6]], {}, "inner dimensions differ"),
        ("MatMul", [["b", 3, 4], [2, 4, 5]], {}, None),  # fine: b may be 1 or 2
        ("MatMul", [[3, 3, 4], [2, 4, 5]], {}, "broadcast"),
        ("MatMul", [[], [3]], {}, "rank"),
        ("Gemm", [["m", 4], [5, "n"]], {}, "inner dimensions differ"),
        ("Gemm", [[4, "m"], [5, "n"]], {"transA": 1}, "inner dimensions differ"),
        ("Gemm", [[2, 3, 4], [4, 6]], {}, "2-D"),
        ("Gemm", [[3, 4], [4, 6], [5]], {}, "broadcast"),
        ("Einsum", [[3, 4], [5, 6]], {"equation": "ij,jk->ik"}, "disagree"),
        ("Einsum", [[3, 4]], {"equation": "ijk->i"}, "does not match an operand of rank"),
    ],
)
def test_contradictions_fail_at_load(op, shapes, attrs, match):
    model = sym_model(op, {f"x{i}": (F32, s) for i, s in enumerate(shapes)}, attrs=attrs, opset=13)
    if match is None:
        session(model)
        return
    with pytest.raises(runnx.InvalidModel, match=match):
        session(model)
