"""Static inference for Resize, Upsample and Pad: scales (float constants), sizes and pads
(tracked integers, also computed from Shape), axes, the run-time check, and contradictions
refused at load."""

import numpy as np
import pytest
import runnx
from infer_helpers import eval_dims, inferred, run_checked, session, sym_model
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32
I64 = np.int64
rng = np.random.default_rng(3)


def rand(*shape):
    return rng.standard_normal(shape).astype(F32)


X = ["N", "C", "H", "W"]
SIZES = [(1, 2, 5, 7), (2, 1, 4, 1), (1, 3, 9, 6)]


@pytest.mark.parametrize(
    "hw,want",
    [((2.0, 3.0), ["H*2", "W*3"]), ((0.5, 1.5), ["H/2", "W*3/2"]), ((1.0, 0.25), ["H", "W/4"])],
)
def test_resize_scales_symbolic(hw, want):
    model = sym_model(
        "Resize",
        {"x": (F32, X)},
        initializers={"s": np.array([1, 1, *hw], F32)},
        input_order=["x", "", "s"],
        attrs={"mode": "nearest"},
        opset=13,
    )
    sess = session(model)
    dtype, dims, _ = inferred(sess)
    assert dtype == "float" and dims == ["N", "C", *want]
    for n, c, h, w in SIZES:
        (y,) = run_checked(sess, {"x": rand(n, c, h, w)})
        assert y.shape == eval_dims(dims, {"N": n, "C": c, "H": h, "W": w})
        assert y.shape == (n, c, int(np.floor(h * hw[0])), int(np.floor(w * hw[1])))


def test_resize_scale_not_dyadic_is_unknown_but_checked():
    model = sym_model(
        "Resize",
        {"x": (F32, X)},
        initializers={"s": np.array([1, 1, 0.6, 1.7], F32)},
        input_order=["x", "", "s"],
        attrs={"mode": "linear"},
        opset=13,
    )
    sess = session(model)
    dims = inferred(sess)[1]
    assert dims[:2] == ["N", "C"] and "?" in dims[2] and "?" in dims[3]
    for n, c, h, w in SIZES:
        run_checked(sess, {"x": rand(n, c, h, w)})
    # The same scales on a fixed input give exact dims.
    fixed = sym_model(
        "Resize",
        {"x": (F32, [1, 2, 5, 7])},
        initializers={"s": np.array([1, 1, 0.6, 1.7], F32)},
        input_order=["x", "", "s"],
        attrs={"mode": "linear"},
        opset=13,
    )
    sess = session(fixed)
    (y,) = run_checked(sess, {"x": rand(1, 2, 5, 7)})
    assert inferred(sess)[1] == list(y.shape) == [1, 2, 3, 11]


def test_resize_sizes_from_shape_chain():
    """sizes = Shape(x)[2:] * [2, 3] with axes [2, 3]: symbolic sizes through tracked contents."""
    nodes = [
        helper.make_node("Shape", ["x"], ["hw"], start=2),
        helper.make_node("Mul", ["hw", "k"], ["sizes"]),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest", axes=[2, 3]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, X)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([2, 3], I64), "k")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 8
    sess = session(model)
    dims = inferred(sess, "y")[1]
    assert dims == ["N", "C", "H*2", "W*3"]
    for n, c, h, w in SIZES:
        (y,) = run_checked(sess, {"x": rand(n, c, h, w)})
        assert y.shape == (n, c, 2 * h, 3 * w)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_resize_sizes_constant(policy):
    model = sym_model(
        "Resize",
        {"x": (F32, [2, 3, 5, 7])},
        initializers={"z": np.array([8, 9], I64)},
        input_order=["x", "", "", "z"],
        attrs={"axes": [2, 3], "keep_aspect_ratio_policy": policy, "mode": "nearest"},
        opset=19,
    )
    sess = session(model)
    (y,) = run_checked(sess, {"x": rand(2, 3, 5, 7)})
    assert inferred(sess)[1] == list(y.shape)
    sym = sym_model(
        "Resize",
        {"x": (F32, ["N", 3, "H", "W"])},
        initializers={"z": np.array([8, 9], I64)},
        input_order=["x", "", "", "z"],
        attrs={"axes": [2, 3], "keep_aspect_ratio_policy": policy, "mode": "nearest"},
        opset=19,
    )
    sess = session(sym)
    dims = inferred(sess)[1]
    assert dims[:2] == ["N", 3] and (dims[2:] == [8, 9] if policy == "stretch" else "?" in dims[2])
    for h, w in [(4, 4), (5, 9), (16, 3)]:
        run_checked(sess, {"x": rand(1, 3, h, w)})


@pytest.mark.parametrize("opset", [7, 9, 10])
def test_upsample_and_old_resize(opset):
    scales = [1.0, 1.0, 2.0, 3.0]
    if opset == 7:
        model = sym_model("Upsample", {"x": (F32, X)}, attrs={"scales": scales}, opset=7)
    else:
        model = sym_model(
            "Upsample" if opset == 9 else "Resize",
            {"x": (F32, X)},
            initializers={"s": np.array(scales, F32)},
            opset=opset,
        )
    sess = session(model)
    assert inferred(sess)[1] == ["N", "C", "H*2", "W*3"]
    for n, c, h, w in SIZES:
        (y,) = run_checked(sess, {"x": rand(n, c, h, w)})
        assert y.shape == (n, c, 2 * h, 3 * w)


def test_resize_runtime_scales_unknown():
    model = sym_model(
        "Resize", {"x": (F32, X), "s": (F32, [4])}, input_order=["x", "", "s"], opset=13
    )
    sess = session(model)
    dims = inferred(sess)[1]
    assert len(dims) == 4 and all("?" in d for d in dims)
    run_checked(sess, {"x": rand(1, 2, 3, 4), "s": np.array([1, 1, 2, 0.5], F32)})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_symbolic(mode):
    pads = np.array([0, 1, 2, 0, 0, 3, 1, 0], I64)
    sess = session(
        sym_model("Pad", {"x": (F32, X)}, initializers={"p": pads}, attrs={"mode": mode}, opset=19)
    )
    assert inferred(sess)[:2] == ("float", ["N", "C+4", "H+3", "W"])
    for n, c, h, w in [(1, 4, 3, 2), (2, 5, 4, 1), (0, 6, 3, 3)]:
        (y,) = run_checked(sess, {"x": rand(n, c, h, w)})
        assert y.shape == (n, c + 4, h + 3, w)


def test_pad_negative_axes_and_attribute_form():
    pads = np.array([1, -1, 2, 0], I64)
    sess = session(
        sym_model(
            "Pad",
            {"x": (F32, X)},
            initializers={"p": pads, "v": np.array(0.5, F32), "a": np.array([-1, 1], I64)},
            opset=18,
        )
    )
    dims = inferred(sess)[1]
    assert dims == ["N", "C-1", "H", "W+3"]
    for n, c, h, w in SIZES:
        (y,) = run_checked(sess, {"x": rand(n, c, h, w)})
        assert y.shape == eval_dims(dims, {"N": n, "C": c, "H": h, "W": w}) == (n, c - 1, h, w + 3)
    sess = session(
        sym_model("Pad", {"x": (F32, ["N", "L"])}, attrs={"pads": [0, 2, 1, 3]}, opset=2)
    )
    assert inferred(sess)[1] == ["N+1", "L+5"]
    (y,) = run_checked(sess, {"x": rand(3, 4)})
    assert y.shape == (4, 9)


def test_pad_runtime_pads_unknown():
    sess = session(sym_model("Pad", {"x": (F32, X), "p": (I64, [8])}, opset=13))
    dims = inferred(sess)[1]
    assert len(dims) == 4 and all("?" in d for d in dims)
    (y,) = run_checked(sess, {"x": rand(1, 2, 3, 4), "p": np.array([0, 1, 0, 2, 0, 0, 3, 0], I64)})
    assert y.shape == (1, 3, 6, 6)


def test_unknown_rank_degrades():
    for model in [
        sym_model("Pad", {"x": (F32, None)}, initializers={"p": np.array([1, 1], I64)}, opset=13),
        sym_model(
            "Resize",
            {"x": (F32, None)},
            initializers={"s": np.array([2.0], F32)},
            input_order=["x", "", "s"],
            opset=13,
        ),
    ]:
        sess = session(model)
        assert inferred(sess)[:2] == ("float", None)
        (y,) = run_checked(sess, {"x": rand(3)})
        assert y.shape in {(5,), (6,)}


@pytest.mark.parametrize(
    "model_args,match",
    [
        (
            (
                "Resize",
                {"x": (F32, X)},
                {
                    "initializers": {"s": np.array([2, 2], F32)},
                    "input_order": ["x", "", "s"],
                    "opset": 13,
                },
            ),
            "scales must have 4 entries",
        ),
        (
            (
                "Resize",
                {"x": (F32, X), "s": (F32, [2])},
                {"input_order": ["x", "", "s"], "opset": 13},
            ),
            "scales must have 4 entries",
        ),
        (
            (
                "Resize",
                {"x": (F32, X)},
                {
                    "initializers": {"s": np.array([1, 1, -2, 2], F32)},
                    "input_order": ["x", "", "s"],
                    "opset": 13,
                },
            ),
            "must be positive",
        ),
        (
            (
                "Resize",
                {"x": (F32, X)},
                {
                    "initializers": {"s": np.ones(4, F32), "z": np.ones(4, I64)},
                    "input_order": ["x", "", "s", "z"],
                    "opset": 13,
                },
            ),
            "exactly one of scales and sizes",
        ),
        (
            ("Pad", {"x": (F32, X)}, {"initializers": {"p": np.zeros(6, I64)}, "opset": 13}),
            "2 entries per padded axis",
        ),
        (
            (
                "Pad",
                {"x": (F32, ["N", 2])},
                {"initializers": {"p": np.array([0, -2, 0, -1], I64)}, "opset": 13},
            ),
            "remove more",
        ),
        (
            (
                "Pad",
                {"x": (F32, [0, "L"])},
                {
                    "initializers": {"p": np.array([1, 0, 0, 0], I64)},
                    "attrs": {"mode": "edge"},
                    "opset": 13,
                },
            ),
            "empty axis",
        ),
    ],
)
def test_contradictions_fail_at_load(model_args, match):
    op, inputs, kw = model_args
    with pytest.raises(runnx.InvalidModel, match=match):
        session(sym_model(op, inputs, **kw))


def test_pad_beyond_any_size_is_left_to_the_kernel():
    pads = np.array([1 << 62, 0, 1 << 62, 0], I64)
    sess = session(sym_model("Pad", {"x": (F32, ["N", 2])}, initializers={"p": pads}, opset=13))
    dims = inferred(sess)[1]
    assert "?" in dims[0] and dims[1] == 2
    with pytest.raises(runnx.InvalidArgument, match="too large"):
        sess.run(None, {"x": rand(1, 2)})
