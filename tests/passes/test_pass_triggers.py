"""The pass driver skips a pass while the graph holds none of its trigger ops, and constant folding
and dead-node elimination take a cheap first look before their full pass. A skipped pass must
still fire as soon as it can: when an earlier pass of the same round made its op, and on every
pattern its cheap look would be tempted to miss."""

import os
import subprocess
import sys
import textwrap

import numpy as np
from helpers import assert_close, rand
from onnx import helper

sys.path.insert(0, os.path.dirname(__file__))
from pass_helpers import FLOAT, graph_model, run_both, session


def _values(sess):
    return set(sess._sess.inferred_types())


_PASSES_RUN = textwrap.dedent(
    """
    import sys
    import runnx
    so = runnx.SessionOptions()
    so.graph_optimization_level = runnx.GraphOptimizationLevel(99)
    runnx.InferenceSession(open(sys.argv[1], "rb").read(), so)
    """
)


def _passes_run(model, tmp_path):
    """Names of the passes that ran (fired or not) when a session is made at level 99: the
    `pass <name>` phases of the load profile (a skipped pass opens none)."""
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    env = dict(os.environ, RUNNX_LOAD_PROFILE="1", PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-c", _PASSES_RUN, str(tmp_path / "m.onnx")], capture_output=True,
                       text=True, env=env, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    phases = [line.split("faults", 1)[1].strip() for line in p.stderr.splitlines() if "faults" in line]
    return {ph[len("pass "):] for ph in phases if ph.startswith("pass ")}


def test_no_trigger_ops_nothing_fires(tmp_path):
    m = graph_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["r"], ["y"])],
                    [("x", FLOAT, [3, 5])], [("y", FLOAT, None)])
    x = rand((3, 5))
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired == {}
    assert_close(opt, plain)
    assert_close(opt, 1 / (1 + np.exp(-np.maximum(x, 0))))
    # Only the passes without trigger ops ran (they looked and found nothing); the others were skipped.
    assert _passes_run(m, tmp_path) == {"constant_folding", "dead_node_elimination"}
    # With a Conv in the graph, the conv passes run too (and fire).
    rng = np.random.default_rng(2)
    conv = graph_model([helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
                       [("x", FLOAT, [1, 3, 4, 4])], [("y", FLOAT, None)],
                       {"w": rng.standard_normal((2, 3, 1, 1)).astype(np.float32)})
    ran = _passes_run(conv, tmp_path)
    assert {"conv_activation_fusion", "nhwc_layout"} <= ran and "gelu_fusion" not in ran and "qdq_fusion" not in ran


def test_op_made_earlier_in_the_round_triggers_a_later_pass():
    # The Transpose pair composes to an identity perm (transpose_reshape_folding makes an Identity
    # the graph did not hold); identity_elimination, later in the same round, removes it; the
    # conv's Relu then fuses and the chain goes channels-last (FusedConv -> NhwcConv).
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Transpose", ["x"], ["t1"], perm=[0, 2, 3, 1]),
             helper.make_node("Transpose", ["t1"], ["t2"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t2", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "b": rng.standard_normal(4).astype(np.float32)}
    m = graph_model(nodes, [("x", FLOAT, [2, 3, 7, 5])], [("y", FLOAT, None)], inits)
    x = rand((2, 3, 7, 5))
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("transpose_reshape_folding") == 2 and fired.get("identity_elimination") == 1
    assert fired.get("conv_activation_fusion") == 1
    # In the same round: the op-type set was refreshed after the Transpose edit, not at the next round.
    rounds = session(m, 99)._sess.passes_first_round()
    assert rounds["transpose_reshape_folding"] == rounds["identity_elimination"] == 0
    assert_close(opt, plain)


def test_fold_starts_at_a_node_with_only_constant_inputs():
    # Among many nodes reading the feed, one reads only initializers (and an omitted input).
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Clip", ["a", "", "hi"], ["c"]),
             helper.make_node("Add", ["r", "c"], ["y"])]
    m = graph_model(nodes, [("x", FLOAT, [4])], [("y", FLOAT, None)],
                    {"a": np.array([1, 5, -2, 9], np.float32), "hi": np.float32(4)})
    x = rand((4,))
    (plain,), (opt,), fired = run_both(m, {"x": x}, level=1)
    assert fired.get("constant_folding") == 1
    assert_close(opt, plain)
    assert_close(opt, np.maximum(x, 0) + np.array([1, 4, -2, 4], np.float32))


def test_initializer_read_only_as_a_graph_input_default_is_not_folded():
    # "a" is overridable (also a graph input): not a constant, so nothing folds.
    nodes = [helper.make_node("Neg", ["a"], ["y"])]
    m = graph_model(nodes, [("a", FLOAT, [2])], [("y", FLOAT, None)], {"a": np.ones(2, np.float32)})
    sess = session(m, 99)
    assert "constant_folding" not in sess._passes_fired()
    assert_close(sess.run(None, {"a": np.array([2, 3], np.float32)})[0], np.array([-2, -3], np.float32))


def test_unread_initializer_dropped_without_dead_nodes():
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    inits = {"w": np.ones(3, np.float32), "unread": np.zeros((2, 2), np.float32)}
    m = graph_model(nodes, [("x", FLOAT, [3])], [("y", FLOAT, None)], inits)
    assert "unread" in _values(session(m, 0))
    opt = session(m, 1)
    assert "unread" not in _values(opt) and "w" in _values(opt)
    assert opt._passes_fired() == {}  # dropping initializers is not counted as a rewrite
    x = rand((3,))
    assert_close(opt.run(None, {"x": x})[0], x + 1)


def test_unread_initializer_that_is_a_graph_input_stays_without_dead_nodes():
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    inits = {"w": np.ones(3, np.float32), "unread": np.zeros((2, 2), np.float32), "fed": np.ones(2, np.float32)}
    m = graph_model(nodes, [("x", FLOAT, [3]), ("fed", FLOAT, [2])], [("y", FLOAT, None)], inits)
    opt = session(m, 1)
    assert "unread" not in _values(opt) and {"w", "fed"} <= _values(opt)  # a feed may name "fed"
    x = rand((3,))
    assert_close(opt.run(None, {"x": x, "fed": np.zeros(2, np.float32)})[0], x + 1)


def test_node_without_read_outputs_removed_among_live_ones():
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("Split", ["x"], ["s0", "s1"], axis=0, num_outputs=2),
             helper.make_node("Neg", ["s1"], ["z"])]
    m = graph_model(nodes, [("x", FLOAT, [4])], [("y", FLOAT, None), ("z", FLOAT, None)], opset=18)
    x = rand((4,))
    (_, pz), (_, oz), fired = run_both(m, {"x": x}, level=1)
    assert "dead_node_elimination" not in fired  # Split's s1 is read: nothing is dead
    assert_close(oz, pz)
    assert_close(oz, -x[2:])
    nodes[2] = helper.make_node("Neg", ["x"], ["z"])  # now neither of Split's outputs is read
    m = graph_model(nodes, [("x", FLOAT, [4])], [("y", FLOAT, None), ("z", FLOAT, None)], opset=18)
    (py, pz), (oy, oz), fired = run_both(m, {"x": x}, level=1)
    assert fired.get("dead_node_elimination") == 1
    assert_close(oy, py)
    assert_close(oz, pz)
    assert_close(oy, np.maximum(x, 0))
    assert_close(oz, -x)
