"""Static inference for the normalisations: X's type on symbolic inputs (LayerNormalization's
statistics with their reduced dims), the run-time check, and parameter contradictions refused at
load."""

import numpy as np
import pytest
import runnx
from infer_helpers import eval_dims, inferred, run_checked, session, sym_model

F32 = np.float32
rng = np.random.default_rng(5)


def rand(*shape, dtype=F32):
    return rng.standard_normal(shape).astype(dtype)


X = ["N", 4, "H", "W"]


@pytest.mark.parametrize(
    "op,inits,attrs,opset",
    [
        (
            "BatchNormalization",
            {"s": rand(4), "b": rand(4), "m": rand(4), "v": np.abs(rand(4)) + 0.5},
            {},
            15,
        ),
        (
            "BatchNormalization",
            {"s": rand(4), "b": rand(4), "m": rand(4), "v": np.abs(rand(4)) + 0.5},
            {},
            7,
        ),
        ("InstanceNormalization", {"s": rand(4), "b": rand(4)}, {}, 17),
        ("GroupNormalization", {"s": rand(4), "b": rand(4)}, {"num_groups": 2}, 21),
        ("LRN", {}, {"size": 3}, 17),
        ("MeanVarianceNormalization", {}, {}, 17),
        ("LpNormalization", {}, {"axis": 1}, 17),
        ("RMSNormalization", {"s": rand(1)}, {}, 23),
    ],
)
def test_same_type_as_input(op, inits, attrs, opset):
    sess = session(sym_model(op, {"x": (F32, X)}, initializers=inits, attrs=attrs, opset=opset))
    assert inferred(sess)[:2] == ("float", X)
    for n, h, w in [(1, 1, 1), (2, 3, 5), (3, 7, 2)]:
        (y,) = run_checked(sess, {"x": rand(n, 4, h, w)})
        assert y.shape == (n, 4, h, w)


@pytest.mark.parametrize("axis,stats", [(-1, ["N", "S", 1]), (1, ["N", 1, 1]), (0, [1, 1, 1])])
@pytest.mark.parametrize("dtype,stat_dtype", [(np.float32, "float"), (np.float64, "double")])
def test_layer_norm_statistics(axis, stats, dtype, stat_dtype):
    norm_len = {-1: [6], 1: ["S", 6], 0: ["N", "S", 6]}[axis]
    scale = rand(6, dtype=dtype) if axis == -1 else None
    inputs = {"x": (dtype, ["N", "S", 6])}
    inits = {}
    if scale is None:
        inputs["s"] = (dtype, norm_len)
    else:
        inits["s"] = scale
    sess = session(
        sym_model("LayerNormalization", inputs, 3, initializers=inits, attrs={"axis": axis})
    )
    name = stat_dtype
    assert inferred(sess, "y0")[:2] == (name, ["N", "S", 6])
    assert inferred(sess, "y1")[:2] == (stat_dtype, stats)
    assert inferred(sess, "y2")[:2] == (stat_dtype, stats)
    for n, s in [(1, 1), (2, 5), (3, 0)]:
        feeds = {"x": rand(n, s, 6, dtype=dtype)}
        if scale is None:
            feeds["s"] = rand(*[{"N": n, "S": s}.get(d, d) for d in norm_len], dtype=dtype)
        _y, mean, inv = run_checked(sess, feeds)
        assert mean.shape == inv.shape == eval_dims(stats, {"N": n, "S": s})


def test_unknown_rank_degrades():
    sess = session(
        sym_model("LayerNormalization", {"x": (F32, None)}, 2, initializers={"s": rand(5)})
    )
    assert inferred(sess, "y0")[1] is None and inferred(sess, "y1")[:2] == ("float", None)
    run_checked(sess, {"x": rand(2, 5)})
    sess = session(
        sym_model(
            "BatchNormalization",
            {"x": (F32, None)},
            initializers={"s": rand(3), "b": rand(3), "m": rand(3), "v": rand(3) ** 2},
        )
    )
    run_checked(sess, {"x": rand(2, 3, 4)})


@pytest.mark.parametrize(
    "op,x_dims,inits,attrs,opset,match",
    [
        (
            "BatchNormalization",
            ["N", 3, "H"],
            {"s": rand(4), "b": rand(3), "m": rand(3), "v": rand(3)},
            {},
            15,
            r"scale has shape \[4\], expected 3",
        ),
        (
            "InstanceNormalization",
            ["N", 3, "H"],
            {"s": rand(3), "b": rand(2)},
            {},
            17,
            "B has shape",
        ),
        ("LayerNormalization", ["N", 8], {"s": rand(7)}, {}, 17, "Scale of shape"),
        ("LayerNormalization", ["N", 8], {"s": rand(8)}, {"axis": 2}, 17, "axis 2 is out of range"),
        (
            "GroupNormalization",
            ["N", 6, "L"],
            {"s": rand(6), "b": rand(6)},
            {"num_groups": 4},
            21,
            "multiple",
        ),
        (
            "GroupNormalization",
            ["N", 6, "L"],
            {"s": rand(5), "b": rand(6)},
            {"num_groups": 3},
            21,
            "scale",
        ),
        ("LRN", ["N", 6], {}, {"size": 3}, 17, "rank >= 3"),
        ("RMSNormalization", ["N", 4], {"s": rand(3)}, {}, 23, "broadcast"),
        ("RMSNormalization", ["N", 4], {"s": rand(4, dtype=np.float64)}, {}, 23, "type"),
    ],
)
def test_contradictions_fail_at_load(op, x_dims, inits, attrs, opset, match):
    with pytest.raises(runnx.InvalidModel, match=match):
        session(sym_model(op, {"x": (F32, x_dims)}, initializers=inits, attrs=attrs, opset=opset))
