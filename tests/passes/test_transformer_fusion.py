"""layernorm_fusion, attention_fusion and attention_layout (head Transposes folded into the
attention): they fire on the exported patterns (and BERT), leave what they must, and level 99
computes what level 0 does on random inputs."""

import os
import sys

import numpy as np
import pytest
from onnx import helper

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from pass_helpers import FLOAT, graph_model, layernorm_inits, layernorm_nodes, run_both, session

from bench.models import zoo

f32 = np.float32
MODELS = os.path.join(os.path.dirname(__file__), "..", "models")


def _close(a, b, tol=2e-5):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(2, 3, 37), (1, 1), (5, 768), (4, 9)])
@pytest.mark.parametrize("square,opset,swap", [("pow", 17, False), ("mul", 17, True), ("pow", 18, False)])
def test_layernorm_fused(shape, square, opset, swap):
    rng = np.random.default_rng(shape[-1])
    m = graph_model(layernorm_nodes("x", "y", square, opset, swap), [("x", FLOAT, list(shape))],
                    [("y", FLOAT, None)], layernorm_inits(shape[-1], rng), opset=opset)
    x = (rng.standard_normal(shape) * 3 + 1).astype(f32)
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert fired.get("layernorm_fusion") == 1, fired
    _close(opt, plain, 1e-4)


def test_layernorm_not_fused_when_reduced_elsewhere_or_old_opset():
    rng = np.random.default_rng(0)
    nodes = layernorm_nodes("x", "y", opset=17)
    nodes[0] = helper.make_node("ReduceMean", ["x"], ["m"], axes=[1])  # not the last axis
    m = graph_model(nodes, [("x", FLOAT, [2, 3, 4])], [("y", FLOAT, None)], layernorm_inits(4, rng))
    x = rng.standard_normal((2, 3, 4)).astype(f32)
    (plain,), (opt,), fired = run_both(m, {"x": x})
    assert "layernorm_fusion" not in fired
    _close(opt, plain)
    # The centred value is also a graph output.
    m = graph_model(layernorm_nodes("x", "y"), [("x", FLOAT, [2, 4])], [("y", FLOAT, None), ("d", FLOAT, None)],
                    layernorm_inits(4, rng))
    assert "layernorm_fusion" not in session(m, 99)._passes_fired()
    # Opset 16 has no LayerNormalization.
    m = graph_model(layernorm_nodes("x", "y"), [("x", FLOAT, [2, 4])], [("y", FLOAT, None)], layernorm_inits(4, rng),
                    opset=16)
    assert "layernorm_fusion" not in session(m, 99)._passes_fired()


def _attention_model(q_shape, kt_shape, v_shape, mask_shape, scale_op="Div", mask_first=False, opset=17):
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node(scale_op, ["s", "c"], ["ss"])]
    last = "ss"
    inputs = [("q", FLOAT, list(q_shape)), ("kt", FLOAT, list(kt_shape)), ("v", FLOAT, list(v_shape))]
    if mask_shape is not None:
        nodes.append(helper.make_node("Add", ["mask", "ss"] if mask_first else ["ss", "mask"], ["sm"]))
        inputs.append(("mask", FLOAT, list(mask_shape)))
        last = "sm"
    nodes += [helper.make_node("Softmax", [last], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["y"])]
    c = np.array(8.0 if scale_op == "Div" else 0.125, f32)
    return graph_model(nodes, inputs, [("y", FLOAT, None)], {"c": c}, opset=opset)


CASES = [  # q, kt, v, mask
    ((1, 2, 5, 8), (1, 2, 8, 5), (1, 2, 5, 8), (1, 1, 1, 5)),       # BERT's [B,1,1,S] mask
    ((2, 3, 33, 16), (2, 3, 16, 40), (2, 3, 40, 7), (2, 1, 33, 40)),  # S != Sk, rows past a block
    ((3, 70, 4), (3, 4, 70), (3, 70, 4), None),                      # rank 3, no mask, 3 row blocks
    ((1, 1, 1, 3), (1, 1, 3, 1), (1, 1, 1, 2), (1,)),                 # size-1 everything
    ((2, 4, 9, 5), (1, 4, 5, 9), (2, 1, 9, 5), (9, 1)),               # broadcast batch, per-row mask
]


@pytest.mark.parametrize("q,kt,v,mask", CASES)
@pytest.mark.parametrize("scale_op,mask_first", [("Div", False), ("Mul", True)])
def test_attention_fused(q, kt, v, mask, scale_op, mask_first):
    rng = np.random.default_rng(len(q) * 10 + q[-1])
    m = _attention_model(q, kt, v, mask, scale_op, mask_first)
    feeds = {"q": rng.standard_normal(q).astype(f32) * 2, "kt": rng.standard_normal(kt).astype(f32) * 2,
             "v": rng.standard_normal(v).astype(f32)}
    if mask is not None:
        feeds["mask"] = np.where(rng.random(mask) < 0.3, -10000.0, 0.0).astype(f32)
    (plain,), (opt,), fired = run_both(m, feeds)
    assert fired.get("attention_fusion") == 1, fired
    _close(opt, plain, 1e-5)


def test_attention_fully_masked_row_and_extreme_scores():
    # -inf everywhere in one row gives NaN in both graphs; huge scores do not overflow.
    m = _attention_model((1, 1, 2, 4), (1, 1, 4, 3), (1, 1, 3, 2), (1, 1, 2, 3))
    q = np.array([[[[1, 2, 3, 4], [100, 0, -100, 50]]]], f32)
    feeds = {"q": q, "kt": np.ones((1, 1, 4, 3), f32) * np.array([1, -2, 3], f32), "v": np.arange(6, dtype=f32).reshape(1, 1, 3, 2),
             "mask": np.array([[[[-np.inf] * 3, [0, 0, 0]]]], f32)}
    (plain,), (opt,), fired = run_both(m, feeds)
    assert fired.get("attention_fusion") == 1
    assert np.isnan(opt[0, 0, 0]).all() and np.isnan(plain[0, 0, 0]).all()
    _close(opt[0, 0, 1], plain[0, 0, 1])


def test_attention_not_fused_when_probabilities_escape_or_softmax_axis_differs():
    m = _attention_model((1, 2, 4, 3), (1, 2, 3, 4), (1, 2, 4, 3), None)
    m.graph.output.append(m.graph.output[0].__class__(name="p"))
    assert "attention_fusion" not in session(m, 99)._passes_fired()
    m = _attention_model((1, 2, 4, 3), (1, 2, 3, 4), (1, 2, 4, 3), None)
    m.graph.node[2].attribute[0].i = 1  # Softmax over another axis
    rng = np.random.default_rng(2)
    feeds = {k: rng.standard_normal(s).astype(f32) for k, s in (("q", (1, 2, 4, 3)), ("kt", (1, 2, 3, 4)),
                                                                  ("v", (1, 2, 4, 3)))}
    (plain,), (opt,), fired = run_both(m, feeds)
    assert "attention_fusion" not in fired
    _close(opt, plain)


def test_bert_fusions_fire_and_match():
    path = os.path.join(MODELS, "bert_tiny.onnx")
    sess = session(path, 99)
    fired = sess._passes_fired()
    # 2 layers: 2 GELU, 5 LayerNorms (embeddings + 2 per layer), 2 attentions.
    assert fired.get("gelu_fusion") == 2 and fired.get("layernorm_fusion") == 5 and fired.get("attention_fusion") == 2, fired
    # Both attentions take their heads interleaved: no Transpose is left in the graph.
    assert fired.get("attention_layout") == 2, fired
    ops = [op for _, op, _, _, _, _ in sess._sess.kernel_choices()]
    assert "Transpose" not in ops and ops.count("ScaledDotProductAttention") == 2, ops
    for batch in (1, 3):
        feeds = zoo.sample_inputs("bert", batch=batch, scale="tiny", seed=batch)
        for a, b in zip(sess.run(None, feeds), session(path, 0).run(None, feeds)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


def _mha_model(b, s, h, d, dv, sk=None, mask_shape=None, k_perm=(0, 2, 3, 1), y_read_twice=False):
    """Multi-head attention as exporters write it: per-head Reshape + Transpose of the Q, K and V
    projections (K straight to K^T), attention, Transpose back and merge the heads."""
    sk = sk or s
    nodes = [helper.make_node("Reshape", ["xq", "sq"], ["q4"]), helper.make_node("Transpose", ["q4"], ["q"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["xk", "sk"], ["k4"]), helper.make_node("Transpose", ["k4"], ["kt"], perm=list(k_perm)),
             helper.make_node("Reshape", ["xv", "sv"], ["v4"]), helper.make_node("Transpose", ["v4"], ["v"], perm=[0, 2, 1, 3]),
             helper.make_node("MatMul", ["q", "kt"], ["sc"]), helper.make_node("Mul", ["sc", "c"], ["ss"])]
    inputs = [("xq", FLOAT, [b, s, h * d]), ("xk", FLOAT, [b, sk, h * d]), ("xv", FLOAT, [b, sk, h * dv])]
    last = "ss"
    if mask_shape is not None:
        nodes.append(helper.make_node("Add", ["ss", "mask"], ["sm"]))
        inputs.append(("mask", FLOAT, list(mask_shape)))
        last = "sm"
    nodes += [helper.make_node("Softmax", [last], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["a"]),
              helper.make_node("Transpose", ["a"], ["at"], perm=[0, 2, 1, 3]), helper.make_node("Reshape", ["at", "so"], ["y"])]
    outputs = [("y", FLOAT, None)]
    if y_read_twice:
        nodes.append(helper.make_node("Neg", ["a"], ["a_neg"]))
        outputs.append(("a_neg", FLOAT, None))
    inits = {"sq": np.array([b, s, h, d]), "sk": np.array([b, sk, h, d]), "sv": np.array([b, sk, h, dv]),
             "so": np.array([b, s, h * dv]), "c": np.array(1 / np.sqrt(d), f32)}
    return graph_model(nodes, inputs, outputs, inits)


def _mha_feeds(m, rng):
    feeds = {}
    for vi in m.graph.input:
        shape = [x.dim_value for x in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = (np.where(rng.random(shape) < 0.3, -10000.0, 0.0) if vi.name == "mask"
                          else rng.standard_normal(shape) * 2).astype(f32)
    return feeds


MHA_CASES = [  # b, s, h, d, dv, sk, mask
    (1, 16, 4, 8, 8, None, (1, 1, 1, 16)),     # BERT's [B,1,1,S] mask
    (3, 7, 2, 5, 3, 11, (3, 1, 7, 11)),        # odd everything, S != Sk, full mask
    (2, 1, 3, 4, 4, None, None),               # seq 1, no mask
    (1, 70, 1, 16, 16, None, (70, 70)),        # one head, several row blocks
]


@pytest.mark.parametrize("b,s,h,d,dv,sk,mask", MHA_CASES)
def test_attention_layout_folds_head_transposes(b, s, h, d, dv, sk, mask):
    m = _mha_model(b, s, h, d, dv, sk, mask)
    feeds = _mha_feeds(m, np.random.default_rng(b * 100 + s))
    (plain,), (opt,), fired = run_both(m, feeds)
    assert fired.get("attention_fusion") == 1 and fired.get("attention_layout") == 1, fired
    ops = [op for _, op, _, _, _, _ in session(m, 99)._sess.kernel_choices()]
    assert "Transpose" not in ops, ops
    # A layout pass: level 2 (what a CUDA session's graph equals) keeps the Transposes.
    assert "attention_layout" not in session(m, 2)._passes_fired()
    _close(opt, plain, 1e-5)


def test_attention_layout_fully_masked_row():
    m = _mha_model(2, 5, 3, 4, 4, None, (2, 1, 5, 5))
    feeds = _mha_feeds(m, np.random.default_rng(9))
    feeds["mask"][1, 0, 3] = -np.inf
    (plain,), (opt,), fired = run_both(m, feeds)
    assert fired.get("attention_layout") == 1, fired
    assert np.isnan(opt[1, 3]).all() and np.isnan(plain[1, 3]).all()
    opt[1, 3] = plain[1, 3] = 0
    _close(opt, plain, 1e-5)


@pytest.mark.parametrize("case", ["k_not_transposed_so", "y_read_elsewhere"])
def test_attention_layout_left_alone(case):
    # K^T made by another perm, or the head-major result read by another node: the Transposes stay.
    kw = {"k_perm": (0, 2, 1, 3)} if case == "k_not_transposed_so" else {"y_read_twice": True}
    # D = S = 6: K^T made with Q's perm still has a valid shape (the graph is just another one).
    m = _mha_model(1, 6, 2, 6, 4, None, (1, 1, 1, 6), **kw)
    feeds = _mha_feeds(m, np.random.default_rng(3))
    plain, opt, fired = run_both(m, feeds)
    assert fired.get("attention_fusion") == 1 and "attention_layout" not in fired, fired
    for a, b in zip(opt, plain):
        _close(a, b, 1e-5)


@pytest.mark.parametrize("level", [0, 1, 2, 99])
@pytest.mark.parametrize("threads", [1, 2])
def test_bert_tiny_every_level_matches_onnxruntime(level, threads):
    import onnxruntime as ort

    path = os.path.join(MODELS, "bert_tiny.onnx")
    sess = session(path, level, threads)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        feeds = zoo.sample_inputs("bert", batch=batch, scale="tiny", seed=10 + batch)
        for _ in range(2):  # the second run reuses the plan and the output buffers
            for a, e in zip(sess.run(None, feeds), ref.run(None, feeds)):
                np.testing.assert_allclose(a, e, rtol=1e-4, atol=2e-5)
