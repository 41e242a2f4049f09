"""MatMul, Gemm and Einsum against onnx.reference (numpy)."""

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


def check_threads(op, inputs, n_threads=3, k=1, **kw):
    """Like check_against_reference, with a multi-threaded session (parallel GEMM paths) and an
    absolute tolerance that grows with the reduction length k (float32 sums of k products)."""
    model = make_model(op, inputs, **kw)
    expected = run_reference(model, inputs)
    actual = run_runnx(model, inputs, sess_options=threads(n_threads) if n_threads else None)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5 * max(k, 1))


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((7,), (7, 3)),  # 1-D A: row vector, dim dropped
    ((5, 7), (7,)),  # 1-D B: column vector, dim dropped
    ((9,), (9,)),  # 0-d result
    ((2, 3, 4), (4, 5)),  # unbatched B: folded into one tall GEMM
    ((4, 5), (3, 5, 2)),  # unbatched A, batched B
    ((2, 1, 3, 4), (5, 4, 6)),  # batch broadcasting both ways
    ((3, 1, 9, 17), (1, 4, 17, 33)),
    ((6, 40), (40, 1)),  # narrow B: dot-product path
    ((6, 40), (40, 3)),
    ((2, 5, 130), (2, 130, 2)),
    ((70, 300), (300, 260)),  # crosses the K and N tile edges
    ((0, 4), (4, 5)),  # empty M
    ((3, 0), (0, 5)),  # K = 0: zeros
    ((2, 0, 3), (3, 4)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_float32(sa, sb):
    check_threads("MatMul", {"a": rand(sa), "b": rand(sb)}, n_threads=None, k=sa[-1], opset=13)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64])
@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 17), (17,)), ((2, 6, 20), (1, 20, 2))])
def test_matmul_dtypes(dtype, sa, sb):
    check_against_reference(
        "MatMul", {"a": rand(sa, dtype, -5, 5), "b": rand(sb, dtype, -5, 5)}, opset=13
    )


def test_matmul_int32_wraps_like_numpy():
    a = np.full((2, 2), 2**20, np.int32)
    check_against_reference("MatMul", {"a": a, "b": a.copy()}, opset=13)


@pytest.mark.parametrize("opset", [7, 9, 13, 21])
def test_matmul_opsets_and_constant_b(opset):
    check_against_reference(
        "MatMul", {"a": rand((2, 5, 8))}, initializers={"b": rand((8, 11))}, opset=opset
    )


@pytest.mark.parametrize(
    "sa,sb", [((64, 96), (96, 80)), ((8, 33, 40), (8, 40, 20)), ((3, 50, 64), (64, 2))]
)
def test_matmul_multithreaded(sa, sb):
    check_threads("MatMul", {"a": rand(sa), "b": rand(sb)}, k=sa[-1], opset=13)


@pytest.mark.parametrize(
    "sa,sb,match",
    [((3, 4), (5, 6), "inner dimensions"), ((2, 3, 4), (3, 4, 5), "broadcast"), ((), (3,), "rank")],
)
def test_matmul_bad_shapes(sa, sb, match):
    a = np.ones(sa, np.float32)
    b = np.ones(sb, np.float32)
    expect_invalid("MatMul", {"a": a, "b": b}, match, opset=13)


def test_matmul_unsupported_dtype():
    a = np.ones((2, 2), np.int8)
    with pytest.raises(runnx.UnsupportedOp, match="int8"):
        run_runnx(make_model("MatMul", {"a": a, "b": a}, opset=13), {"a": a, "b": a})


# ---------------------------------------------------------------------------------------- Gemm

C_SHAPES = [None, (), (1,), (11,), (1, 11), (6, 1), (6, 11)]


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", C_SHAPES)
def test_gemm_transposes_and_c_broadcast(trans_a, trans_b, c_shape):
    M, K, N = 6, 5, 11
    a = rand((K, M) if trans_a else (M, K))
    b = rand((N, K) if trans_b else (K, N))
    inputs = {"a": a, "b": b}
    if c_shape is not None:
        inputs["c"] = rand(c_shape)
    attrs = {"transA": trans_a, "transB": trans_b, "alpha": 0.75, "beta": 1.5}
    check_against_reference("Gemm", inputs, attrs=attrs, opset=13)


@pytest.mark.parametrize(
    "alpha,beta", [(1.0, 1.0), (1.0, 0.0), (2.0, 0.0), (-0.5, 3.0), (1.0, -1.0)]
)
@pytest.mark.parametrize("const_b", [False, True])
def test_gemm_alpha_beta_constant_b(alpha, beta, const_b):
    a, b, c = rand((9, 20)), rand((17, 20)), rand((17,))
    attrs = {"transB": 1, "alpha": alpha, "beta": beta}
    if const_b:
        check_against_reference(
            "Gemm", {"a": a}, initializers={"b": b, "c": c}, attrs=attrs, opset=13
        )
    else:
        check_against_reference("Gemm", {"a": a, "b": b, "c": c}, attrs=attrs, opset=13)


@pytest.mark.parametrize("opset", [7, 9, 11, 13, 21])
def test_gemm_opsets(opset):
    check_against_reference(
        "Gemm",
        {"a": rand((4, 3)), "b": rand((3, 7)), "c": rand((4, 7))},
        attrs={"beta": 0.5},
        opset=opset,
    )


@pytest.mark.parametrize("opset", [11, 13])
def test_gemm_without_c(opset):
    check_against_reference(
        "Gemm", {"a": rand((4, 3)), "b": rand((5, 3))}, attrs={"transB": 1}, opset=opset
    )


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64])
def test_gemm_dtypes(dtype):
    inputs = {
        "a": rand((3, 4), dtype, -4, 4),
        "b": rand((4, 5), dtype, -4, 4),
        "c": rand((5,), dtype, -4, 4),
    }
    check_against_reference("Gemm", inputs, attrs={"transA": 0}, opset=13)


def test_gemm_empty_and_zero_k():
    check_against_reference(
        "Gemm", {"a": rand((0, 3)), "b": rand((3, 4)), "c": rand((4,))}, opset=13
    )
    check_against_reference(
        "Gemm", {"a": rand((2, 0)), "b": rand((0, 4)), "c": rand((2, 4))}, opset=13
    )


def test_gemm_multithreaded_linear_layer():
    a, b, c = rand((33, 300)), rand((270, 300)), rand((270,))
    model = make_model(
        "Gemm", {"a": a}, initializers={"b": b, "c": c}, attrs={"transB": 1}, opset=13
    )
    (y,) = run_runnx(model, {"a": a}, sess_options=threads(3))
    np.testing.assert_allclose(y, a @ b.T + c, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "sa,sb,sc,match",
    [
        ((3, 4), (5, 6), None, "inner dimensions"),
        ((3, 4), (4, 6), (5,), "broadcast"),
        ((3, 4), (4, 6), (2, 3, 6), "rank"),
        ((2, 3, 4), (4, 6), None, "2-D"),
    ],
)
def test_gemm_bad_shapes(sa, sb, sc, match):
    inputs = {"a": np.ones(sa, np.float32), "b": np.ones(sb, np.float32)}
    if sc:
        inputs["c"] = np.ones(sc, np.float32)
    expect_invalid("Gemm", inputs, match, opset=13)


# -------------------------------------------------------------------------------------- Einsum

EINSUM_CASES = [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 5, 8), (2, 3, 7, 8)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 5, 7), (2, 3, 7, 8)]),
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,kj->ik", [(3, 4), (5, 4)]),
    ("ij,jk->ki", [(3, 4), (4, 5)]),  # permuted output
    ("ij->ji", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i->", [(33,), (33,)]),
    ("i,i", [(5,), (5,)]),  # implicit output: scalar
    ("ij,jk", [(3, 4), (4, 5)]),  # implicit output "ik"
    ("ba", [(3, 4)]),  # implicit output "ab": a transpose
    ("ii->i", [(4, 4)]),  # diagonal
    ("ii", [(4, 4)]),  # trace
    ("...ii->...i", [(2, 3, 3)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),  # ellipsis broadcasting
    ("bij,bjk->bk", [(2, 3, 4), (2, 4, 5)]),  # summed over A alone
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),  # three operands
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("Ab,bc->Ac", [(3, 4), (4, 2)]),  # upper-case labels
    ("ij,jk->ik", [(0, 4), (4, 5)]),  # empty
    ("ij,jk->ik", [(3, 0), (0, 5)]),  # empty contraction: zeros
]


@pytest.mark.parametrize("eq,shapes", EINSUM_CASES)
def test_einsum(eq, shapes):
    inputs = {f"x{i}": rand(s) for i, s in enumerate(shapes)}
    check_against_reference("Einsum", inputs, attrs={"equation": eq}, opset=13)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64])
@pytest.mark.parametrize(
    "eq,shapes", [("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ij->i", [(3, 4)])]
)
def test_einsum_dtypes(dtype, eq, shapes):
    inputs = {f"x{i}": rand(s, dtype, -5, 5) for i, s in enumerate(shapes)}
    check_against_reference("Einsum", inputs, attrs={"equation": eq}, opset=12)


def test_einsum_spaces_and_multithreaded():
    inputs = {"x0": rand((16, 4, 20, 16)), "x1": rand((16, 4, 24, 16))}
    check_threads(
        "Einsum", inputs, k=16, attrs={"equation": "b h q d , b h k d -> b h q k"}, opset=13
    )


@pytest.mark.parametrize(
    "eq,n_inputs,match",
    [
        ("ij,jk->i$", 2, "invalid character"),
        ("ij->ii", 1, "repeats output label"),
        ("ij->k", 1, "does not appear"),
        ("ij,jk,kl->il", 2, "3 operand"),
        ("i...j...->ij", 1, "two ellipses"),
        ("", 1, "missing"),
    ],
)
def test_einsum_bad_equation(eq, n_inputs, match):
    inputs = {f"x{i}": rand((3, 3)) for i in range(n_inputs)}
    with pytest.raises(runnx.InvalidModel, match=match):
        run_runnx(make_model("Einsum", inputs, attrs={"equation": eq}, opset=13), inputs)


@pytest.mark.parametrize("eq,shapes", [("ij,jk->ik", [(3, 4), (5, 6)]), ("ijk->i", [(3, 4)])])
def test_einsum_bad_shapes(eq, shapes):
    inputs = {f"x{i}": rand(s) for i, s in enumerate(shapes)}
    expect_invalid("Einsum", inputs, "disagree|does not match", attrs={"equation": eq}, opset=13)
