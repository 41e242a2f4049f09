"""Level-1 passes (identity/dropout removal, constant folding with static shapes, dead nodes):
each fires where it should, leaves what it must, and the optimised graph computes what the
unoptimised one does."""

import os
import sys

import numpy as np
import pytest
import runnx
from helpers import assert_close, rand
from onnx import helper

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from pass_helpers import FLOAT, INT64, graph_model, run_both, session

from bench.models import zoo


def test_identity_chain_removed_and_output_name_kept():
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Identity", ["b"], ["c"]),
        helper.make_node("Identity", ["c"], ["y"]),
    ]
    m = graph_model(nodes, [("x", FLOAT, [3, 5])], [("y", FLOAT, None)])
    x = rand((3, 5))
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("identity_elimination") == 3
    assert_close(opt, np.maximum(x, 0))
    assert_close(opt, plain)


def test_identity_between_graph_input_and_output_stays():
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [4])], [("y", FLOAT, None)])
    x = rand((4,))
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert "identity_elimination" not in fired
    assert_close(opt, x)


def test_identity_feeding_two_graph_outputs():
    # y1 = Relu(x) is itself a graph output, and also passes through an Identity to y2.
    nodes = [helper.make_node("Relu", ["x"], ["y1"]), helper.make_node("Identity", ["y1"], ["y2"])]
    m = graph_model(nodes, [("x", FLOAT, [6])], [("y1", FLOAT, None), ("y2", FLOAT, None)])
    x = rand((6,))
    plain, opt, fired = run_both(m, {"x": x})
    for a, b in zip(opt, plain):
        assert_close(a, b)
    assert_close(opt[1], np.maximum(x, 0))


def test_dropout_removed_unless_mask_read_or_training():
    x = rand((2, 7))
    # Mask unused: removed.
    m = graph_model([helper.make_node("Dropout", ["x"], ["d"], ratio=0.3), helper.make_node("Neg", ["d"], ["y"])],
                    [("x", FLOAT, [2, 7])], [("y", FLOAT, None)], opset=10)
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("identity_elimination") == 1
    assert_close(opt, -x)
    # Mask is a graph output: stays.
    m = graph_model([helper.make_node("Dropout", ["x"], ["d", "mask"]), helper.make_node("Neg", ["d"], ["y"])],
                    [("x", FLOAT, [2, 7])], [("y", FLOAT, None), ("mask", 9, None)], opset=13)
    _, _, fired = run_both(m, {"x": x})
    assert "identity_elimination" not in fired
    # training_mode a constant false: removed; fed at run time: stays.
    nodes = [helper.make_node("Dropout", ["x", "", "t"], ["d"]), helper.make_node("Neg", ["d"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [2, 7])], [("y", FLOAT, None)], {"t": np.array(False)}, opset=13)
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("identity_elimination") == 1
    assert_close(opt, -x)
    m = graph_model(nodes, [("x", FLOAT, [2, 7]), ("t", 9, [])], [("y", FLOAT, None)], opset=13)
    sess = session(m, 99)
    assert "identity_elimination" not in sess._passes_fired()


def test_constant_subgraph_folded_with_kernels():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    scale = np.array(0.5, np.float32)
    nodes = [
        helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),     # (3, 5)
        helper.make_node("Mul", ["wt", "s"], ["ws"]),
        helper.make_node("MatMul", ["x", "ws"], ["y"]),
    ]
    m = graph_model(nodes, [("x", FLOAT, ["n", 3])], [("y", FLOAT, None)], {"w": w, "s": scale})
    x = rand((4, 3), rng=rng)
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("constant_folding") == 2
    assert_close(opt, plain)
    assert_close(opt, x @ (w.T * 0.5))


def test_overridable_initializer_not_folded():
    # 'w' is an initializer and a graph input: a feed may replace it, so nothing folds.
    nodes = [helper.make_node("Neg", ["w"], ["nw"]), helper.make_node("Add", ["x", "nw"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [3]), ("w", FLOAT, [3])], [("y", FLOAT, None)],
                    {"w": np.array([1, 2, 3], np.float32)})
    sess = session(m, 99)
    assert "constant_folding" not in sess._passes_fired()
    x = rand((3,))
    assert_close(sess.run(None, {"x": x})[0], x - np.array([1, 2, 3], np.float32))
    w2 = rand((3,))
    assert_close(sess.run(None, {"x": x, "w": w2})[0], x - w2)


def _torch_style_reshape(dims):
    """x -> reshape to (x.shape[0], -1) through Shape/Gather/Unsqueeze/Concat, as torch exports."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes"], ["bu"]),
        helper.make_node("Concat", ["bu", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    inits = {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    return graph_model(nodes, [("x", FLOAT, dims)], [("y", FLOAT, None)], inits)


def test_shape_arithmetic_folded_when_shape_static():
    m = _torch_style_reshape([2, 3, 5])
    x = rand((2, 3, 5))
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("constant_folding") == 4  # Shape, Gather, Unsqueeze, Concat
    assert_close(opt, np.maximum(x.reshape(2, -1), 0))
    assert_close(opt, plain)


def test_shape_arithmetic_kept_when_dims_symbolic():
    m = _torch_style_reshape(["batch", 3, 5])
    sess = session(m, 99)
    assert "constant_folding" not in sess._passes_fired()
    for batch in (1, 4):
        x = rand((batch, 3, 5))
        assert_close(sess.run(None, {"x": x})[0], np.maximum(x.reshape(batch, -1), 0))


def test_shape_with_start_end_folded():
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1, end=-1),
             helper.make_node("Size", ["x"], ["n"])]
    m = graph_model(nodes, [("x", FLOAT, [2, 3, 4, 5])], [("s", INT64, None), ("n", INT64, None)])
    x = rand((2, 3, 4, 5))
    plain, opt, fired = run_both(m, {"x": x})
    assert fired.get("constant_folding") == 2
    assert opt[0].tolist() == [3, 4] and int(opt[1]) == 120
    for a, b in zip(opt, plain):
        assert_close(a, b)


def test_folding_error_reported_as_without_passes():
    # Reshape of a constant to an impossible shape: folding swallows nothing and crashes nothing;
    # the error is the one level 0 gives, naming the node.
    nodes = [helper.make_node("Reshape", ["c", "shape"], ["r"], name="bad"),
             helper.make_node("Add", ["x", "r"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [4])], [("y", FLOAT, None)],
                    {"c": np.ones(4, np.float32), "shape": np.array([3], np.int64)})
    errors = []
    for level in (0, 99):
        with pytest.raises(runnx.RunnxError, match="Reshape node 'bad'") as e:
            session(m, level).run(None, {"x": rand((4,))})
        errors.append(type(e.value))
    assert errors[0] is errors[1]


def test_large_expansions_not_folded():
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["z"]), helper.make_node("Add", ["x", "z"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [1])], [("y", FLOAT, None)],
                    {"shape": np.array([1024, 1024], np.int64)})
    sess = session(m, 99)
    assert "constant_folding" not in sess._passes_fired()
    assert sess.run(None, {"x": np.ones(1, np.float32)})[0].shape == (1024, 1024)


def test_dead_nodes_and_initializers_removed():
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Exp", ["x"], ["unused1"]),
        helper.make_node("Add", ["unused1", "w"], ["unused2"]),
    ]
    m = graph_model(nodes, [("x", FLOAT, [3])], [("y", FLOAT, None)], {"w": np.ones(3, np.float32)})
    x = rand((3,))
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("dead_node_elimination") == 2
    assert_close(opt, np.maximum(x, 0))


def test_level_switches_passes():
    m = _torch_style_reshape([2, 3, 5])
    assert session(m, 0)._passes_fired() == {}
    assert session(m, 1)._passes_fired().get("constant_folding") == 4


def test_invalid_graph_left_to_validation():
    # Two nodes produce 'a': the load error names both, as without passes.
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["a"]),
             helper.make_node("Identity", ["a"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [3])], [("y", FLOAT, None)])
    with pytest.raises(runnx.InvalidModel, match="produced by both"):
        session(m, 99)
    # A cycle through an Identity.
    nodes = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Identity", ["a"], ["b"]),
             helper.make_node("Relu", ["a"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [3])], [("y", FLOAT, None)])
    with pytest.raises(runnx.InvalidModel, match="cycle"):
        session(m, 99)


@pytest.mark.parametrize("name", ["mlp", "resnet50", "mobilenetv2", "bert"])
def test_zoo_models_same_outputs_at_all_levels(name):
    path = os.path.join(os.path.dirname(__file__), "..", "models", f"{name}_tiny.onnx")
    feeds = zoo.sample_inputs(name, batch=3, scale="tiny", seed=11)
    expected = session(path, 0).run(None, feeds)
    for level in (1, 2, 99):
        got = session(path, level).run(None, feeds)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("p1,p2", [([0, 2, 1, 3], [0, 2, 1, 3]), ([0, 2, 3, 1], [1, 0, 3, 2]), ([3, 2, 1, 0], [2, 0, 3, 1])])
def test_transpose_chains_folded(p1, p2):
    nodes = [helper.make_node("Transpose", ["x"], ["t1"], perm=p1), helper.make_node("Transpose", ["t1"], ["t2"], perm=p2),
             helper.make_node("Neg", ["t2"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [2, 3, 4, 5])], [("y", FLOAT, None)])
    x = rand((2, 3, 4, 5))
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("transpose_reshape_folding", 0) >= 1
    assert_close(opt, -x.transpose(p1).transpose(p2))
    assert_close(opt, plain)


def test_identity_transpose_and_reshape_chain():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 1, 2]),
             helper.make_node("Reshape", ["t", "s1"], ["r1"]), helper.make_node("Reshape", ["r1", "s2"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [2, 3, 4])], [("y", FLOAT, None)],
                    {"s1": np.array([6, 4], np.int64), "s2": np.array([4, -1], np.int64)})
    x = rand((2, 3, 4))
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("transpose_reshape_folding") == 2 and fired.get("identity_elimination") == 1
    assert_close(opt, x.reshape(4, -1))
    # A 0 in the outer shape copies a dim of the intermediate: not folded.
    m = graph_model(nodes[1:], [("t", FLOAT, [2, 3, 4])], [("y", FLOAT, None)],
                    {"s1": np.array([6, 4], np.int64), "s2": np.array([0, 2, 2], np.int64)})
    t = rand((2, 3, 4))
    (plain,), (opt,), fired = run_both(m, {"t": t})
    assert "transpose_reshape_folding" not in fired
    assert_close(opt, t.reshape(6, 2, 2))
