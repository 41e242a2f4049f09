"""CUDA data movement (transpose.h, copy.h): Transpose, NCHW <-> NHWC, Slice, Expand, Concat,
Gather against numpy (exact: the bytes are copied)."""

import os
import sys

import numpy as np
import pytest
import runnx

sys.path.insert(0, os.path.dirname(__file__))
import helpers
from helpers import rand
from kernel_ref import (
    T,
    kernel_path,  # noqa: F401  (the fixture)
)

# One dtype per element size, plus bool.
DTYPES = [np.int8, np.float16, np.float32, np.int64, np.bool_]

TRANSPOSE_CASES = [
    ((5, 7), [1, 0]),  # tiled 2-D
    ((64, 33), [1, 0]),
    ((1, 40), [1, 0]),
    ((3, 37, 65), [0, 2, 1]),  # tiled batched
    ((2, 3, 4, 5), [0, 1, 3, 2]),  # last two swapped after merging the leading dims
    ((2, 3, 4, 5), [0, 2, 1, 3]),  # BERT's head split (general)
    ((2, 3, 4, 5), [3, 2, 1, 0]),
    ((2, 1, 3), [2, 1, 0]),
    ((4, 5), [0, 1]),  # identity
    ((0, 3), [1, 0]),
    ((2, 3, 2, 3, 2, 3, 2), [6, 0, 5, 1, 4, 2, 3]),  # rank 7
    ((), []),
]


@pytest.mark.parametrize("shape,perm", TRANSPOSE_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "unaligned"])
@pytest.mark.usefixtures("kernel_path")
def test_transpose(shape, perm, dtype, offset):
    x = rand(shape, dtype, -100, 100, rng=np.random.default_rng(len(shape)))
    np.testing.assert_array_equal(T.transpose(x, perm, offset), np.transpose(x, perm))


def test_transpose_rejects_bad_perm():
    with pytest.raises(Exception, match="permutation"):
        T.transpose(np.zeros((2, 3), np.float32), [0, 0])


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 32, 8, 8), (3, 1, 1, 1), (1, 17, 33, 2)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.usefixtures("kernel_path")
def test_layout_convert(shape, dtype):
    x = rand(shape, dtype, rng=np.random.default_rng(1))
    nhwc = T.layout_convert(x, "nchw")
    np.testing.assert_array_equal(nhwc, x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(T.layout_convert(nhwc, "nhwc"), x)


SLICES = [
    ((10,), (slice(2, 9, 3),)),
    ((10,), (slice(8, 0, -2),)),
    ((5, 7), (slice(1, 4), slice(None, None, -1))),
    ((2, 8, 6), (slice(None), slice(0, 8, 4), slice(5, None))),
    ((1, 3, 128), (slice(None), slice(None), slice(0, 64))),  # BERT-style prefix slice
    ((4, 4), (slice(1, 1), slice(None))),  # empty
]


@pytest.mark.parametrize("shape,index", SLICES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.usefixtures("kernel_path")
def test_slice(shape, index, dtype):
    x = rand(shape, dtype, -100, 100, rng=np.random.default_rng(2))
    want = x[index]
    starts, steps = [], []
    for d, s in enumerate(index):
        start, _, step = s.indices(shape[d])
        starts.append(min(start, shape[d] - 1) if shape[d] else 0)
        steps.append(step)
    np.testing.assert_array_equal(T.slice(x, starts, steps, list(want.shape)), want)


def test_slice_rejects_reads_outside_the_input():
    with pytest.raises(Exception, match="outside"):
        T.slice(np.zeros((4,), np.float32), [2], [1], [3])


EXPANDS = [((3, 1), (3, 4)), ((1,), (2, 3)), ((), (5,)), ((2, 1, 3), (4, 2, 5, 3)), ((4,), (0, 4)),
           ((1, 1), (1, 1)), ((2, 3), (2, 3))]


@pytest.mark.parametrize("shape,out", EXPANDS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.usefixtures("kernel_path")
def test_expand(shape, out, dtype):
    x = rand(shape, dtype, -100, 100, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(T.expand(x, list(out)), np.broadcast_to(x, out))


def test_expand_rejects_a_shape_that_is_not_the_broadcast():
    with pytest.raises(Exception, match="broadcast"):
        T.expand(np.zeros((3, 2), np.float32), [3, 1])


CONCATS = [
    ([(2, 3), (2, 5)], 1),
    ([(1, 4), (3, 4), (2, 4)], 0),
    ([(2, 3, 4), (2, 1, 4), (2, 0, 4)], 1),  # an empty input
    ([(5, 8), (5, 8)], -1),  # 16-byte rows for fp32: the widest unit
    ([(3, 1), (3, 1), (3, 1)], 1),
    ([(2, 2, 7)], 2),
]


@pytest.mark.parametrize("shapes,axis", CONCATS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "unaligned"])
@pytest.mark.usefixtures("kernel_path")
def test_concat(shapes, axis, dtype, offset):
    rng = np.random.default_rng(4)
    xs = [rand(s, dtype, -100, 100, rng=rng) for s in shapes]
    np.testing.assert_array_equal(T.concat(xs, axis, offset), np.concatenate(xs, axis))


GATHERS = [
    ((30, 16), (2, 5), 0),  # embedding lookup
    ((7,), (3,), 0),
    ((4, 6, 5), (2,), 1),
    ((4, 6, 5), (3, 2), 2),
    ((3, 9), (), 1),  # scalar index
    ((5, 3), (0,), 0),
    ((2, 128), (1,), 0),
]


@pytest.mark.parametrize("shape,idx_shape,axis", GATHERS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "unaligned"])
@pytest.mark.usefixtures("kernel_path")
def test_gather(shape, idx_shape, axis, dtype, idx_dtype, offset):
    rng = np.random.default_rng(5)
    data = rand(shape, dtype, -100, 100, rng=rng)
    n = shape[axis]
    idx = np.asarray(rng.integers(-n, n, size=idx_shape), dtype=idx_dtype)  # negatives count from the end
    y, flag = T.gather(data, idx, axis, offset)
    np.testing.assert_array_equal(y, np.take(data, idx, axis=axis))
    assert flag == 0


def test_gather_out_of_range_sets_the_flag_and_writes_zeros():
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    y, flag = T.gather(data, np.array([1, 4, -5, -1], np.int64), 0)
    assert flag == 1
    np.testing.assert_array_equal(y, [[3, 4, 5], [0, 0, 0], [0, 0, 0], [9, 10, 11]])


PADS = [
    ((5,), [2], [3]),
    ((3, 4), [1, 0], [2, 3]),
    ((2, 3, 4), [0, 1, 1], [0, 1, 1]),
    ((1, 2, 5, 5), [0, 0, 3, 1], [0, 0, 1, 6]),  # pads longer than the dim (reflect folds again)
    ((4, 6), [-1, 2], [0, -2]),  # negative pads crop
    ((3, 2), [0, 0], [0, 0]),
    ((1, 4), [2, 1], [1, 0]),  # a single row reflects to itself
]


def cpu_pad(x, begin, end, mode, value):
    model = helpers.make_model("Pad", {"x": x}, attrs={"mode": mode}, opset=19,
                               initializers={"pads": np.array(begin + end, np.int64), "value": value})
    return runnx.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


@pytest.mark.parametrize("shape,begin,end", PADS, ids=str)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int8])
@pytest.mark.usefixtures("kernel_path")
def test_pad(shape, begin, end, mode, dtype):
    """Against the CPU kernel (numpy's pad has no negative widths)."""
    x = rand(shape, dtype, -100, 100, rng=np.random.default_rng(6))
    value = np.array(7, dtype)
    np.testing.assert_array_equal(T.pad(x, begin, end, mode, value), cpu_pad(x, begin, end, mode, value))


def test_pad_refuses_to_edge_pad_an_empty_dim():
    with pytest.raises(Exception, match="empty"):
        T.pad(np.zeros((0, 3), np.float32), [1, 0], [0, 0], "edge", np.array(0, np.float32))
