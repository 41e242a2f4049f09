"""Static inference for Conv, ConvTranspose and the pools: a symbolic H/W stays an expression
that evaluates right for every size, the run-time check passes on awkward sizes, and
contradictions are refused at load."""

import math

import numpy as np
import pytest
import runnx
from infer_helpers import eval_dim, eval_dims, inferred, run_checked, session, sym_model

F32 = np.float32
rng = np.random.default_rng(11)


def rand(*shape):
    return rng.standard_normal(shape).astype(F32)


def conv_out(n, k, s=1, d=1, pb=0, pe=0):
    return (n + pb + pe - d * (k - 1) - 1) // s + 1


def test_conv_symbolic_hw():
    model = sym_model(
        "Conv",
        {"x": (F32, ["N", 3, "H", "W"])},
        initializers={"w": rand(16, 3, 3, 3), "b": rand(16)},
        attrs={"pads": [1, 1, 1, 1], "strides": [2, 2]},
    )
    sess = session(model)
    dtype, dims, _ = inferred(sess)
    assert dtype == "float" and dims[:2] == ["N", 16]
    assert isinstance(dims[2], str) and "H" in dims[2]
    for h in range(1, 14):
        assert eval_dim(dims[2], {"H": h}) == conv_out(h, 3, s=2, pb=1, pe=1)
    for n, h, w in [(1, 1, 1), (2, 7, 12), (0, 5, 3), (1, 17, 2)]:
        (y,) = run_checked(sess, {"x": rand(n, 3, h, w)})
        assert (
            y.shape
            == eval_dims(dims, {"N": n, "H": h, "W": w})
            == (n, 16, conv_out(h, 3, 2, 1, 1, 1), conv_out(w, 3, 2, 1, 1, 1))
        )


@pytest.mark.parametrize(
    "attrs,w_shape",
    [
        ({"auto_pad": "SAME_UPPER", "strides": [2, 3]}, (4, 2, 3, 2)),
        ({"auto_pad": "SAME_LOWER", "strides": [3, 1], "dilations": [2, 1]}, (4, 2, 3, 3)),
        ({"auto_pad": "VALID", "strides": [1, 2]}, (4, 2, 2, 1)),
        ({"pads": [0, 2, 1, 0], "dilations": [2, 3], "kernel_shape": [2, 2]}, (4, 2, 2, 2)),
        ({"group": 2}, (6, 1, 3, 3)),
    ],
)
def test_conv_variants(attrs, w_shape):
    sess = session(
        sym_model(
            "Conv",
            {"x": (F32, ["N", 2, "H", "W"])},
            initializers={"w": rand(*w_shape)},
            attrs=attrs,
        )
    )
    dims = inferred(sess)[1]
    assert dims[1] == w_shape[0]
    for h, w in [(7, 9), (8, 11), (13, 6), (5, 8)]:
        (y,) = run_checked(sess, {"x": rand(2, 2, h, w)})
        assert y.shape == eval_dims(dims, {"N": 2, "H": h, "W": w})


@pytest.mark.parametrize("rank", [1, 3])
def test_conv_1d_3d(rank):
    x_dims = ["N", 2] + ["S"] * rank
    sess = session(
        sym_model(
            "Conv",
            {"x": (F32, x_dims)},
            initializers={"w": rand(3, 2, *[2] * rank)},
            attrs={"strides": [2] * rank},
        )
    )
    dims = inferred(sess)[1]
    for s in (2, 5, 6):
        (y,) = run_checked(sess, {"x": rand(1, 2, *[s] * rank)})
        assert y.shape == eval_dims(dims, {"N": 1, "S": s}) == (1, 3) + (conv_out(s, 2, 2),) * rank


def convt_out(n, k, s=1, d=1, pb=0, pe=0, op=0):
    return s * (n - 1) + op + (k - 1) * d + 1 - pb - pe


@pytest.mark.parametrize(
    "attrs,expect",
    [
        (
            {"strides": [2, 2], "pads": [1, 0, 1, 0], "output_padding": [1, 0]},
            lambda h, w: (convt_out(h, 3, 2, 1, 1, 1, 1), convt_out(w, 3, 2)),
        ),
        (
            {"strides": [2, 3], "dilations": [2, 1]},
            lambda h, w: (convt_out(h, 3, 2, 2), convt_out(w, 3, 3)),
        ),
        ({"strides": [2, 2], "auto_pad": "SAME_UPPER"}, lambda h, w: (2 * h, 2 * w)),
        ({"strides": [2, 2], "output_shape": [9, 9]}, lambda h, w: (9, 9)),
    ],
)
def test_conv_transpose(attrs, expect):
    sess = session(
        sym_model(
            "ConvTranspose",
            {"x": (F32, ["N", 4, "H", "W"])},
            initializers={"w": rand(4, 3, 3, 3), "b": rand(6)},
            attrs={**attrs, "group": 2},
        )
    )
    dtype, dims, _ = inferred(sess)
    assert dtype == "float" and dims[1] == 6
    for h, w in [(4, 4), (5, 5), (4, 5)]:
        (y,) = run_checked(sess, {"x": rand(1, 4, h, w)})
        assert y.shape == eval_dims(dims, {"N": 1, "H": h, "W": w}) == (1, 6) + expect(h, w)


def pool_out(n, k, s, pb, pe, ceil_mode):
    span = n + pb + pe - k
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + pb:  # the last window starts inside the padded input
        out -= 1
    return out


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize(
    "k,s,pads", [(3, 2, [1, 1]), (2, 2, [0, 0]), (3, 3, [1, 2]), (2, 3, [0, 3])]
)
def test_pool_symbolic(op, ceil_mode, k, s, pads):
    n_out = 2 if op == "MaxPool" else 1
    attrs = {"kernel_shape": [k], "strides": [s], "pads": pads, "ceil_mode": ceil_mode}
    sess = session(sym_model(op, {"x": (F32, ["N", "C", "L"])}, n_out, attrs=attrs, opset=12))
    dtype, dims, _ = inferred(sess)
    assert dtype == "float" and dims[:2] == ["N", "C"]
    if n_out == 2:
        assert inferred(sess, "y1")[:2] == ("int64", dims)
    for length in range(max(1, k - sum(pads)), 15):
        assert eval_dim(dims[2], {"L": length}) == pool_out(
            length, k, s, pads[0], pads[1], ceil_mode
        )
    for length in (max(1, k - sum(pads)), 7, 10):
        outs = run_checked(sess, {"x": rand(2, 3, length)})
        assert outs[0].shape == (2, 3, pool_out(length, k, s, pads[0], pads[1], ceil_mode))


def test_pool_same_and_2d():
    sess = session(
        sym_model(
            "MaxPool",
            {"x": (F32, [1, 2, "H", "W"])},
            attrs={"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
        )
    )
    dims = inferred(sess)[1]
    for h, w in [(5, 4), (6, 7), (1, 1)]:
        (y,) = run_checked(sess, {"x": rand(1, 2, h, w)})
        assert y.shape == eval_dims(dims, {"H": h, "W": w}) == (1, 2, -(-h // 2), -(-w // 2))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op):
    sess = session(sym_model(op, {"x": (F32, ["N", "C", "H", "W"])}))
    assert inferred(sess)[:2] == ("float", ["N", "C", 1, 1])
    (y,) = run_checked(sess, {"x": rand(2, 3, 5, 1)})
    assert y.shape == (2, 3, 1, 1)


def test_unknown_rank_degrades():
    sess = session(sym_model("Conv", {"x": (F32, None)}, initializers={"w": rand(4, 2, 3, 3)}))
    dims = inferred(sess)[1]
    assert len(dims) == 4 and dims[1] == 4
    run_checked(sess, {"x": rand(1, 2, 5, 6)})
    for op, attrs in [("MaxPool", {"kernel_shape": [2, 2]}), ("GlobalAveragePool", {})]:
        sess = session(sym_model(op, {"x": (F32, None)}, attrs=attrs))
        assert inferred(sess)[:2] == ("float", None)
        run_checked(sess, {"x": rand(1, 2, 5, 6)})


@pytest.mark.parametrize(
    "op,x_dims,w_shape,attrs,match",
    [
        ("Conv", ["N", 3, "H", "W"], (4, 2, 3, 3), {}, "do not fit group"),
        ("Conv", ["N", 4, "H", "W"], (6, 2, 3, 3), {"group": 4}, "do not fit group"),
        ("Conv", ["N", 2, 2, "W"], (4, 2, 3, 3), {}, "smaller than the window extent"),
        (
            "Conv",
            ["N", 2, "H", "W"],
            (4, 2, 3, 3),
            {"kernel_shape": [3, 2]},
            "kernel_shape attribute",
        ),
        ("Conv", ["N", 2, "H", "W"], (4, 2, 3, 3), {"strides": [1, 1, 1]}, "lengths do not match"),
        ("Conv", ["N", 2, "H"], (4, 2, 3, 3), {}, "same rank"),
        ("ConvTranspose", ["N", 3, "H", "W"], (4, 2, 3, 3), {}, "do not fit group"),
        (
            "ConvTranspose",
            ["N", 4, 1, 1],
            (4, 2, 1, 1),
            {"pads": [1, 1, 1, 1]},
            "negative output size",
        ),
        (
            "ConvTranspose",
            ["N", 4, "H", "W"],
            (4, 2, 3, 3),
            {"output_padding": [1]},
            "output_padding",
        ),
        (
            "MaxPool",
            ["N", 3, "H"],
            None,
            {"kernel_shape": [2, 2]},
            "does not match a 2-D kernel_shape",
        ),
        (
            "AveragePool",
            ["N", 3, 2, 2],
            None,
            {"kernel_shape": [3, 3]},
            "smaller than the window extent",
        ),
    ],
)
def test_contradictions_fail_at_load(op, x_dims, w_shape, attrs, match):
    inits = {"w": rand(*w_shape)} if w_shape else {}
    with pytest.raises(runnx.InvalidModel, match=match):
        session(sym_model(op, {"x": (F32, x_dims)}, initializers=inits, attrs=attrs))
