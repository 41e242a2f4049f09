"""Element-wise unary, binary, variadic, Where and Cast ops against onnx.reference."""

import numpy as np
import pytest
import runnx
from helpers import (
    AWKWARD_SHAPES,
    assert_close,
    check_against_reference,
    expect_invalid,
    make_model,
    rand,
    run_reference,
    run_runnx,
)

# op -> (input domain low, high, attrs, opset)
UNARY = {
    "Neg": (-3, 3, {}, 13), "Abs": (-3, 3, {}, 13), "Sign": (-3, 3, {}, 13), "Relu": (-3, 3, {}, 14),
    "Sqrt": (0.01, 4, {}, 13), "Reciprocal": (0.5, 4, {}, 13), "Exp": (-5, 5, {}, 13),
    "Log": (0.01, 5, {}, 13), "Erf": (-3, 3, {}, 13), "Tanh": (-5, 5, {}, 13),
    "Sigmoid": (-20, 20, {}, 13), "Softplus": (-5, 5, {}, 13), "Softsign": (-5, 5, {}, 13),
    "LeakyRelu": (-3, 3, {"alpha": 0.2}, 16), "Elu": (-3, 3, {"alpha": 0.7}, 13),
    "Selu": (-3, 3, {}, 13), "HardSigmoid": (-5, 5, {"alpha": 0.3, "beta": 0.4}, 13),
    "HardSwish": (-5, 5, {}, 14), "Floor": (-5, 5, {}, 13), "Ceil": (-5, 5, {}, 13),
    "Round": (-5, 5, {}, 11), "Sin": (-3, 3, {}, 7), "Cos": (-3, 3, {}, 7),
    "ThresholdedRelu": (-3, 3, {"alpha": 0.5}, 10), "Celu": (-3, 3, {"alpha": 1.5}, 12),
    "Mish": (-4, 4, {}, 18), "Tan": (-1.2, 1.2, {}, 7), "Asin": (-0.9, 0.9, {}, 7),
    "Acos": (-0.9, 0.9, {}, 7), "Atan": (-3, 3, {}, 7), "Sinh": (-3, 3, {}, 9),
    "Cosh": (-3, 3, {}, 9), "Asinh": (-3, 3, {}, 9), "Acosh": (1.1, 4, {}, 9),
    "Atanh": (-0.9, 0.9, {}, 9), "Shrink": (-2, 2, {"lambd": 0.7, "bias": 0.2}, 9),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("shape", AWKWARD_SHAPES)
def test_unary_float32(op, shape):
    lo, hi, attrs, opset = UNARY[op]
    x = rand(shape, np.float32, lo, hi)
    if op == "Softsign" and shape == ():
        # onnx.reference's Softsign rejects 0-d inputs; numpy gives the reference instead.
        (y,) = run_runnx(make_model(op, {"x": x}, opset=opset), {"x": x})
        assert_close(y, (x / (1 + np.abs(x))).astype(np.float32))
        return
    check_against_reference(op, {"x": x}, attrs=attrs, opset=opset)


@pytest.mark.parametrize("op", ["Exp", "Sqrt", "Tanh", "Sigmoid", "Relu", "Abs"])
def test_unary_float64(op):
    lo, hi, attrs, opset = UNARY[op]
    check_against_reference(op, {"x": rand((5, 9), np.float64, lo, hi)}, attrs=attrs, opset=opset)


@pytest.mark.parametrize("op", ["Neg", "Abs", "Relu", "Sign"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8])
def test_unary_integers(op, dtype):
    check_against_reference(op, {"x": rand((4, 7), dtype, -50, 50)}, opset=UNARY[op][3])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(), (17,), (2, 3, 33)])
def test_gelu(approximate, shape):
    check_against_reference(
        "Gelu", {"x": rand(shape, np.float32, -4, 4)}, attrs={"approximate": approximate}, opset=20
    )


def test_gelu_bad_approximate_is_invalid_model():
    model = make_model("Gelu", {"x": rand((3,))}, attrs={"approximate": "fast"}, opset=20)
    with pytest.raises(runnx.InvalidModel, match="approximate"):
        runnx.InferenceSession(model.SerializeToString())


def test_isnan_isinf_not():
    x = np.array([0.0, np.nan, np.inf, -np.inf, 1.5], np.float32)
    check_against_reference("IsNaN", {"x": x}, opset=13)
    check_against_reference("IsInf", {"x": x}, opset=10)
    check_against_reference("IsInf", {"x": x}, attrs={"detect_negative": 0}, opset=10)
    check_against_reference("Not", {"x": rand((3, 5), np.bool_)})


BROADCAST_PAIRS = [
    ((), ()), ((7,), ()), ((), (7,)), ((3, 5), (3, 5)), ((3, 1), (1, 5)), ((2, 3, 17), (17,)),
    ((2, 1, 17), (3, 1)), ((0, 3), (1, 3)), ((4, 1, 1), (1, 1)), ((1, 33), (9, 1)),
]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_arithmetic_broadcast(op, shapes):
    a = rand(shapes[0])
    b = rand(shapes[1], low=0.5, high=2.0)
    check_against_reference(op, {"a": a, "b": b}, opset=14)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Mod"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_integer_arithmetic(op, dtype):
    a = rand((5, 6), dtype, -40, 40)
    b = rand((6,), dtype, 1, 9) * np.where(np.arange(6) % 2 == 0, 1, -1).astype(dtype)
    check_against_reference(op, {"a": a, "b": b}, opset=14)


def test_integer_division_by_zero_is_an_error_not_a_crash():
    a = np.array([1, 2, 3], np.int64)
    b = np.array([1, 0, 1], np.int64)
    with pytest.raises(runnx.InvalidArgument, match="division by zero"):
        run_runnx(make_model("Div", {"a": a, "b": b}), {"a": a, "b": b})


def test_mod_float_takes_the_divisor_sign():
    a = np.array([-4.5, 7.25, -3.0, 5.5, 0.0], np.float32)
    b = np.array([2.0, -2.0, 3.0, 2.5, -1.0], np.float32)
    (y,) = run_runnx(make_model("Mod", {"a": a, "b": b}, opset=13), {"a": a, "b": b})
    assert_close(y, np.mod(a, b))


def test_mod_fmod_float():
    a, b = rand((4, 5), low=-5, high=5), rand((5,), low=0.5, high=3)
    check_against_reference("Mod", {"a": a, "b": b}, attrs={"fmod": 1}, opset=13)


@pytest.mark.parametrize("shapes", [((3, 4), ()), ((2, 3), (3,)), ((5,), (5,))])
def test_pow(shapes):
    check_against_reference("Pow", {"a": rand(shapes[0], low=0.1, high=3), "b": rand(shapes[1])}, opset=15)


def test_pow_float_base_int_exponent():
    a = rand((3, 4), low=0.1, high=3)
    b = np.array(3, np.int64)
    check_against_reference("Pow", {"a": a, "b": b}, opset=15)


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_compare(op, dtype):
    a = rand((3, 1, 5), dtype, -3, 3)
    b = rand((4, 1), dtype, -3, 3)
    check_against_reference(op, {"a": a, "b": b}, opset=16)


def test_equal_bool():
    check_against_reference("Equal", {"a": rand((6,), np.bool_), "b": rand((6,), np.bool_)}, opset=13)


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic(op):
    check_against_reference(op, {"a": rand((3, 1, 4), np.bool_), "b": rand((5, 1), np.bool_)})


@pytest.mark.parametrize("op", ["Min", "Max", "Sum", "Mean"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_variadic(op, n):
    shapes = [(3, 1, 5), (4, 1), (5,)][:n]
    feeds = {f"x{i}": rand(s) for i, s in enumerate(shapes)}
    if op != "Mean":
        check_against_reference(op, feeds, opset=13)
        return
    # onnx.reference's Mean does not broadcast; numpy is the reference here.
    (y,) = run_runnx(make_model(op, feeds, opset=13), feeds)
    assert_close(y, (sum(feeds.values()) / n).astype(np.float32))


def test_min_max_int():
    check_against_reference("Max", {"a": rand((4,), np.int64, -9, 9), "b": rand((4,), np.int64, -9, 9)})


@pytest.mark.parametrize("shapes", [((3, 5), (3, 5), (3, 5)), ((3, 1), (1, 5), ()), ((0, 2), (2,), (1,))])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_where(shapes, dtype):
    c = rand(shapes[0], np.bool_)
    check_against_reference("Where", {"c": c, "x": rand(shapes[1], dtype), "y": rand(shapes[2], dtype)})


@pytest.mark.parametrize("shape", [(3, 7), (1,), ()])
def test_prelu(shape):
    x = rand(shape + (4,))
    slope = rand((4,), low=0, high=1)
    check_against_reference("PRelu", {"x": x}, initializers={"slope": slope}, opset=16)


CAST_TYPES = [np.float32, np.float64, np.int64, np.int32, np.int8, np.uint8, np.bool_, np.float16]


@pytest.mark.parametrize("src", CAST_TYPES)
@pytest.mark.parametrize("dst", CAST_TYPES)
def test_cast(src, dst):
    from helpers import onnx_type

    x = rand((3, 5), src, -100, 100)
    if np.dtype(src).kind == "f":
        x = x.astype(np.float32).round(1).astype(src)  # keep float->int conversions exact
        if np.dtype(dst).kind == "u":
            x = np.abs(x)
    model = make_model("Cast", {"x": x}, attrs={"to": onnx_type(dst)}, opset=13)
    expected = x.astype(dst)
    (actual,) = run_runnx(model, {"x": x})
    assert_close(actual, expected)


def test_castlike():
    x = rand((2, 3), np.float32)
    like = np.zeros((1,), np.int64)
    x = x.round()
    check_against_reference("CastLike", {"x": x, "like": like}, opset=15)


def test_binary_incompatible_shapes_are_invalid_argument():
    a, b = rand((3, 4)), rand((5,))
    expect_invalid("Add", {"a": a, "b": b}, "broadcast")


def test_elementwise_chain_reuses_buffers_in_place():
    """Relu(Exp(x)) + planning: the second run uses the plan and gives the same numbers."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Relu", ["e"], ["r"]),
             helper.make_node("Neg", ["r"], ["y"])]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = runnx.InferenceSession(model.SerializeToString())
    x = rand((1000,))
    expected = run_reference(model, {"x": x})[0]
    for _ in range(3):
        assert_close(sess.run(None, {"x": x})[0], expected)
    stats = sess.memory_stats()
    assert stats["plans"] == 1
    assert stats["inplace_nodes"] >= 1


@pytest.mark.parametrize("shape", [(), (7,), (3, 17)])
@pytest.mark.parametrize("bounds", [(None, None), (-0.5, None), (None, 0.5), (-0.5, 0.5)])
def test_clip_inputs_form(shape, bounds):
    x = rand(shape)
    inits, order = {}, ["x"]
    for name, v in zip(["lo", "hi"], bounds):
        if v is not None:
            inits[name] = np.array(v, np.float32)
        order.append(name if v is not None else "")
    while order[-1] == "":
        order.pop()
    check_against_reference("Clip", {"x": x}, initializers=inits, input_order=order, opset=13)


def test_clip_bounds_as_runtime_inputs_and_ints():
    x = rand((4, 5), np.int64, -10, 10)
    lo, hi = np.array(-3, np.int64), np.array(4, np.int64)
    check_against_reference("Clip", {"x": x, "lo": lo, "hi": hi}, opset=13)


def test_clip_attribute_form():
    check_against_reference("Clip", {"x": rand((3, 9))}, attrs={"min": -0.25, "max": 0.75}, opset=10)
