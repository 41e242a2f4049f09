"""BitwiseAnd/Or/Xor/Not and BitShift on integer types."""

import helpers
import numpy as np
import pytest
import runnx
from helpers import check_against_reference, expect_invalid, make_model, run_runnx

# The shared helper's type table lacks these integer types.
for _dt, _code in [(np.int16, 5), (np.uint16, 4), (np.uint32, 12), (np.uint64, 13)]:
    helpers._NP_TO_ONNX.setdefault(np.dtype(_dt), _code)

RNG = np.random.default_rng(3)
INT_TYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def _ints(shape, dtype):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", INT_TYPES)
@pytest.mark.parametrize("sa,sb", [((7,), (7,)), ((3, 5), (5,)), ((2, 1, 17), (3, 1)), ((), (4,)),
                                   ((0, 3), (3,)), ((1, 1, 33), (1, 1, 33))])
def test_bitwise_binary(op, dtype, sa, sb):
    check_against_reference(op, {"a": _ints(sa, dtype), "b": _ints(sb, dtype)}, opset=18)


@pytest.mark.parametrize("dtype", INT_TYPES)
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 17), (0, 3)])
def test_bitwise_not(dtype, shape):
    check_against_reference("BitwiseNot", {"x": _ints(shape, dtype)}, opset=18)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", INT_TYPES)
def test_bitshift(direction, dtype):
    bits = np.iinfo(dtype).bits
    x = _ints((3, 11), dtype)
    lo = -3 if np.issubdtype(dtype, np.signedinteger) else 0
    y = RNG.integers(lo, bits + 3, size=(11,)).astype(dtype)  # includes out-of-range amounts
    check_against_reference("BitShift", {"x": x, "y": y}, attrs={"direction": direction}, opset=28)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_opset11_unsigned(direction):
    x = np.array([1, 4, 255, 7], np.uint8)
    y = np.array([1, 2, 3, 0], np.uint8)
    check_against_reference("BitShift", {"x": x, "y": y}, attrs={"direction": direction}, opset=11)


def test_bitwise_errors():
    feeds = {"a": np.ones(3, np.float32), "b": np.ones(3, np.float32)}
    with pytest.raises(runnx.InvalidArgument, match="integer"):
        run_runnx(make_model("BitwiseAnd", feeds, opset=18), feeds)
    feeds = {"a": np.ones(3, np.int32), "b": np.ones(4, np.int32)}
    expect_invalid("BitwiseOr", feeds, "broadcast", opset=18)
    feeds = {"a": np.ones(3, np.int32), "b": np.ones(3, np.int64)}
    expect_invalid("BitwiseXor", feeds, "types differ", opset=18)
    feeds = {"x": np.ones(3, np.uint8), "y": np.ones(3, np.uint8)}
    with pytest.raises(runnx.InvalidModel, match="direction"):
        run_runnx(make_model("BitShift", feeds, attrs={"direction": "UP"}, opset=11), feeds)
