"""MatMulInteger, QLinearMatMul and com.runnx QGemm against onnx.reference, onnxruntime and a
numpy model of the spec: exact equality (integer math; requantizing in float32 as onnxruntime)."""

import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import runnx
from helpers import make_model, onnx_type, run_reference, run_runnx, threads
from onnx import helper, numpy_helper

RNG = np.random.default_rng(7)
QTYPES = [np.uint8, np.int8]

# (A shape, B shape): tails off every tile size, size 1, 1-D operands, broadcast batches, empty.
MATMUL_SHAPES = [
    ((1, 1), (1, 1)),
    ((5, 7), (7, 3)),
    ((3, 33), (33, 17)),
    ((50, 257), (257, 40)),
    ((2, 3, 5, 9), (9, 19)),
    ((2, 1, 4, 6), (3, 6, 5)),
    ((4, 6), (2, 6, 18)),
    ((7,), (7, 5)),
    ((4, 7), (7,)),
    ((3, 0), (0, 4)),
    ((0, 5), (5, 3)),
]


def q(shape, qtype):
    info = np.iinfo(qtype)
    return RNG.integers(info.min, info.max + 1, size=shape).astype(qtype)


def w8(shape, qtype):
    """Weights onnxruntime computes exactly: its AVX2 u8*s8 kernel sums pairs of products in
    saturating int16 (vpmaddubsw), so int8 weights stay within 7 bits as its quantizer's
    reduce_range keeps them. runnx itself is exact on the full range (the tests against numpy)."""
    return q(shape, qtype) // 2 if qtype == np.int8 else q(shape, qtype)


def ort_run(model, feeds, out_dtype):
    """onnxruntime without graph optimisations (it needs the output typed)."""
    model.graph.output[0].type.tensor_type.elem_type = onnx_type(out_dtype)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def int_matmul(a, b, za, zb):
    """(A - za) @ (B - zb) in int64 (wrapped to int32 as the spec's int32 would)."""
    return (np.matmul(a.astype(np.int64) - za, b.astype(np.int64) - zb)).astype(np.int32)


def requantize(acc, mult, yz, qtype):
    """onnxruntime's requantization: float32 product, round half to even, saturate."""
    info = np.iinfo(qtype)
    v = np.rint(acc.astype(np.float32) * np.float32(mult)) + np.float32(yz)
    return np.clip(v, info.min, info.max).astype(qtype)


# ----------------------------------------------------------------------------- MatMulInteger


@pytest.mark.parametrize("ashape,bshape", MATMUL_SHAPES)
@pytest.mark.parametrize("at,bt", [(np.uint8, np.int8), (np.int8, np.uint8), (np.uint8, np.uint8), (np.int8, np.int8)])
def test_matmul_integer_scalar_zero_points(ashape, bshape, at, bt):
    a, b = q(ashape, at), q(bshape, bt)
    za, zb = q((), at), q((), bt)
    model = make_model("MatMulInteger", {"a": a, "b": b}, initializers={"za": za, "zb": zb}, opset=10)
    expected = run_reference(model, {"a": a, "b": b})[0]
    np.testing.assert_array_equal(expected, int_matmul(a, b, za, zb))
    for n in (1, 4):
        (got,) = run_runnx(model, {"a": a, "b": b}, sess_options=threads(n))
        assert got.dtype == np.int32 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("ashape,bshape", [((5, 7), (7, 3)), ((50, 257), (257, 40)), ((4, 7), (7,))])
@pytest.mark.parametrize("at,bt", [(np.uint8, np.int8), (np.uint8, np.uint8)])
def test_matmul_integer_matches_onnxruntime(ashape, bshape, at, bt):
    a, b = q(ashape, at), w8(bshape, bt)
    za, zb = q((), at), q((), bt)
    model = make_model("MatMulInteger", {"a": a}, initializers={"b": b, "za": za, "zb": zb},
                       input_order=["a", "b", "za", "zb"], opset=10)
    np.testing.assert_array_equal(run_runnx(model, {"a": a})[0], ort_run(model, {"a": a}, np.int32)[0])


@pytest.mark.parametrize("constant_b", [False, True])
def test_matmul_integer_per_column_b_zero_point(constant_b):
    a, b = q((6, 35), np.uint8), q((35, 21), np.int8)
    zb = q((21,), np.int8)
    feeds = {"a": a} if constant_b else {"a": a, "b": b}
    inits = {"b": b, "zb": zb} if constant_b else {"zb": zb}
    model = make_model("MatMulInteger", feeds, initializers=inits, input_order=["a", "b", "", "zb"], opset=10)
    np.testing.assert_array_equal(run_runnx(model, feeds)[0], int_matmul(a, b, 0, zb))
    np.testing.assert_array_equal(run_runnx(model, feeds)[0], run_reference(model, feeds)[0])


def test_matmul_integer_per_row_and_batched_zero_points():
    # The spec's per-row A zero point ([M], or [..., M, 1]) and per-column B ([..., 1, N]).
    # onnx.reference broadcasts a 1-D A zero point along K, so the numpy model is the reference.
    a, b = q((2, 5, 9), np.int8), q((2, 9, 4), np.uint8)
    for za, zb, za_b, zb_b in [
        (q((5,), np.int8), q((4,), np.uint8), lambda z: z[:, None], lambda z: z),
        (q((2, 5, 1), np.int8), q((2, 1, 4), np.uint8), lambda z: z, lambda z: z),
        (q((1, 5, 1), np.int8), q((1, 1, 4), np.uint8), lambda z: z, lambda z: z),
    ]:
        model = make_model("MatMulInteger", {"a": a, "b": b}, initializers={"za": za, "zb": zb}, opset=10)
        got = run_runnx(model, {"a": a, "b": b})[0]
        np.testing.assert_array_equal(got, int_matmul(a, b, za_b(za.astype(np.int64)), zb_b(zb.astype(np.int64))))


def test_matmul_integer_long_k_wraps_like_int32():
    # 255 * 255 * 40000 overflows int32: the sum wraps as the spec's int32 arithmetic does.
    a = np.full((2, 40000), 255, np.uint8)
    b = np.full((40000, 3), 255, np.uint8)
    model = make_model("MatMulInteger", {"a": a, "b": b}, opset=10)
    np.testing.assert_array_equal(run_runnx(model, {"a": a, "b": b})[0], int_matmul(a, b, 0, 0))


def test_matmul_integer_errors():
    a, b = q((3, 4), np.uint8), q((4, 2), np.int8)
    with pytest.raises((runnx.UnsupportedOp, runnx.InvalidModel), match="int8 or uint8"):
        f = a.astype(np.float32)
        run_runnx(make_model("MatMulInteger", {"a": f, "b": b}, opset=10), {"a": f, "b": b})
    with pytest.raises((runnx.InvalidArgument, runnx.InvalidModel), match="zero point type|types differ"):
        m = make_model("MatMulInteger", {"a": a, "b": b}, initializers={"za": q((), np.int8)}, opset=10,
                       dynamic=True)
        run_runnx(m, {"a": a, "b": b})
    with pytest.raises(runnx.InvalidArgument, match="per row"):
        m = make_model("MatMulInteger", {"a": a, "b": b}, initializers={"za": q((5,), np.uint8)},
                       opset=10, dynamic=True)
        run_runnx(m, {"a": a, "b": b})
    with pytest.raises((runnx.InvalidArgument, runnx.InvalidModel), match="inner dimensions"):
        bb = q((5, 2), np.int8)
        run_runnx(make_model("MatMulInteger", {"a": a, "b": bb}, opset=10), {"a": a, "b": bb})


# ----------------------------------------------------------------------------- QLinearMatMul


def qlinear_model(a, b, scales, zps, yt, const_b=False, opset=10):
    a_s, b_s, y_s = (np.asarray(s, np.float32) for s in scales)
    za, zb, zy = zps
    inits = {"as": a_s, "za": za, "bs": b_s, "zb": zb, "ys": y_s, "zy": zy.astype(yt)}
    feeds = {"a": a}
    if const_b:
        inits["b"] = b
    else:
        feeds["b"] = b
    model = make_model("QLinearMatMul", feeds, initializers=inits,
                       input_order=["a", "as", "za", "b", "bs", "zb", "ys", "zy"], opset=opset)
    return model, feeds


@pytest.mark.parametrize("ashape,bshape", MATMUL_SHAPES)
@pytest.mark.parametrize("at,bt,yt", [(np.uint8, np.int8, np.uint8), (np.int8, np.int8, np.int8),
                                      (np.uint8, np.uint8, np.uint8), (np.uint8, np.uint8, np.int8)])
def test_qlinear_matmul_matches_onnxruntime(ashape, bshape, at, bt, yt):
    a, b = q(ashape, at), w8(bshape, bt)
    k = max(ashape[-1], 1)
    # y_scale chosen so results spread over the output range and some saturate.
    scales = (0.02, 0.013, 0.02 * 0.013 * 40 * np.sqrt(k))
    zps = (q((), at), q((), bt), q((), yt))
    model, feeds = qlinear_model(a, b, scales, zps, yt, const_b=len(bshape) == 2)
    mult = np.float32(scales[0]) * np.float32(scales[1]) / np.float32(scales[2])
    expected = requantize(int_matmul(a, b, zps[0], zps[1]), mult, zps[2], yt)
    # onnxruntime has no uint8 x uint8 -> int8 kernel, and with K = 0 it returns 0, not y_zero.
    if (at, bt, yt) != (np.uint8, np.uint8, np.int8) and ashape[-1] > 0:
        np.testing.assert_array_equal(ort_run(model, feeds, yt)[0], expected)
    for n in (1, 3):
        got = run_runnx(model, feeds, sess_options=threads(n))[0]
        assert got.dtype == yt
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("opset", [10, 21])
@pytest.mark.parametrize("ashape,bshape", [((5, 7), (7, 3)), ((2, 3, 5, 9), (9, 19)), ((2, 1, 4, 6), (3, 6, 5))])
def test_qlinear_matmul_matches_reference(opset, ashape, bshape):
    # Power-of-two scales make the float32 (onnxruntime) and float64 (onnx.reference) products
    # identical, ties included, so the reference can be matched exactly. The reference rounds
    # after adding y_zero_point, QuantizeLinear and onnxruntime before; an even zero point makes
    # the two agree on ties too.
    a, b = q(ashape, np.uint8), q(bshape, np.int8)
    a[..., 0] = 3  # plenty of exact .5 products: ties round to even
    zy = np.uint8(q((), np.uint8) & 0xFE)
    model, feeds = qlinear_model(a, b, (0.5, 0.25, 16.0), (q((), np.uint8), q((), np.int8), zy),
                                 np.uint8, opset=opset)
    np.testing.assert_array_equal(run_runnx(model, feeds)[0], run_reference(model, feeds)[0])


def model_zp(model, name):
    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name).astype(np.int64)


@pytest.mark.parametrize("const_b", [False, True])
def test_qlinear_matmul_per_column_b(const_b):
    a, b = q((9, 40), np.uint8), w8((40, 19), np.int8)
    b_s = RNG.uniform(0.005, 0.03, 19).astype(np.float32)
    zb = q((19,), np.int8)
    model, feeds = qlinear_model(a, b, (0.03, b_s, 0.5), (q((), np.uint8), zb, q((), np.uint8)), np.uint8,
                                 const_b=const_b)
    got = run_runnx(model, feeds)[0]
    np.testing.assert_array_equal(got, ort_run(model, feeds, np.uint8)[0])
    mult = np.float32(0.03) * b_s / np.float32(0.5)
    np.testing.assert_array_equal(got, requantize(int_matmul(a, b, model_zp(model, "za"), zb), mult, model_zp(model, "zy"), np.uint8))


def test_qlinear_matmul_errors():
    a, b = q((3, 4), np.uint8), q((4, 2), np.int8)
    model, feeds = qlinear_model(a, b, (0.1, np.ones(5), 1.0), (q((), np.uint8), q((), np.int8), q((), np.uint8)),
                                 np.uint8)
    with pytest.raises(runnx.InvalidArgument, match="b_scale"):
        run_runnx(model, feeds)
    model, feeds = qlinear_model(a, b, (np.ones(3), 0.1, 1.0), (q((), np.uint8), q((), np.int8), q((), np.uint8)),
                                 np.uint8)
    with pytest.raises(runnx.UnsupportedOp, match="a_scale"):
        run_runnx(model, feeds)


# ----------------------------------------------------------------------------- com.runnx QGemm


def qgemm_model(a, w, bias, scales, zps, yt, trans_b):
    inits = {"as": np.float32(scales[0]), "za": zps[0], "w": w, "ws": np.asarray(scales[1], np.float32),
             "zw": zps[1], "ys": np.float32(scales[2]), "zy": zps[2].astype(yt)}
    order = ["a", "as", "za", "w", "ws", "zw", "", "ys", "zy"]
    if bias is not None:
        inits["c"] = bias
        order[6] = "c"
    model = make_model("QGemm", {"a": a}, initializers=inits, input_order=order, domain="com.runnx", opset=1,
                       attrs={"transB": int(trans_b)})
    model.opset_import.append(helper.make_opsetid("", 17))
    return model


@pytest.mark.parametrize("ashape,n", [((1, 64), 32), ((7, 33), 17), ((2, 3, 5), 1), ((0, 9), 4), ((9,), 6)])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("per_column", [False, True])
def test_qgemm(ashape, n, trans_b, with_bias, per_column):
    k = ashape[-1]
    a = q(ashape, np.uint8)
    w = q((n, k) if trans_b else (k, n), np.int8)
    ws = RNG.uniform(0.01, 0.03, n).astype(np.float32) if per_column else np.float32(0.02)
    zw = q((n,), np.int8) if per_column else q((), np.int8)
    bias = RNG.integers(-5000, 5000, n).astype(np.int32) if with_bias else None
    scales, zps = (0.05, ws, 0.3), (q((), np.uint8), zw, q((), np.uint8))
    model = qgemm_model(a, w, bias, scales, zps, np.uint8, trans_b)
    wk = (w.T if trans_b else w).astype(np.int64) - zw.astype(np.int64)
    acc = (np.matmul(a.astype(np.int64) - zps[0], wk) + (0 if bias is None else bias)).astype(np.int32)
    expected = requantize(acc, np.float32(0.05) * np.asarray(ws, np.float32) / np.float32(0.3), zps[2], np.uint8)
    for t in (1, 2):
        np.testing.assert_array_equal(run_runnx(model, {"a": a}, sess_options=threads(t))[0], expected)


def test_describe_names_the_isa():
    a, b = q((3, 4), np.uint8), q((4, 2), np.int8)
    model = make_model("MatMulInteger", {"a": a}, initializers={"b": b}, opset=10)
    (choice,) = runnx.InferenceSession(model.SerializeToString())._sess.kernel_choices()
    assert "int8 gemm" in choice[-1] and "B packed at load" in choice[-1]
    assert ("portable" in choice[-1]) == (os.environ.get("RUNNX_DISABLE_AVX2") == "1")


@pytest.mark.skipif(os.environ.get("RUNNX_DISABLE_AVX2") == "1", reason="already portable")
def test_portable_paths():
    """This file again with the AVX2 tile disabled (cpuid is read once per process)."""
    env = dict(os.environ, RUNNX_DISABLE_AVX2="1")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-x", "-p", "no:cacheprovider", "-k",
         "matmul_integer or qgemm or describe"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
