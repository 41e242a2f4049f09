"""Memory at load and on a signature's first run.

Misaligned float32 matrices that only GEMMs read stay in the file: the GEMM packs them with
unaligned loads, so no heap copy is made first (`stats()["realigned_weight_bytes"]` counts the
bytes that were copied). Any other reader gets an aligned copy. The first run of each input-shape
signature runs on a plan made from static shapes (`stats()["static_plans"]`) rather than on the
heap, and must give the same results as later runs.
"""

import numpy as np
import pytest
import runnx
from helpers import rand, session_from
from onnx import TensorProto, helper, numpy_helper

K, N = 48, 80  # 15 KiB: whole pages inside, so releases drop pages


def _mm(a, b):
    return a.astype(np.float64) @ b.astype(np.float64)


def _close(got, want, tol=1e-4):
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _serialize(build, arrays, misaligned=True) -> bytes:
    """build(pad) serialized with the first padding (weight names, and the model's doc string,
    which comes before the graph) that puts the raw bytes of every array in `arrays` at a file
    offset that is not (or is) a multiple of 4."""
    for pad in range(64):
        model = build("_" * (pad % 8))
        model.doc_string = "_" * (pad // 8)
        data = model.SerializeToString()
        offsets = [data.find(a.tobytes()[:64]) for a in arrays]
        assert min(offsets) > 0
        if all((o % 4 != 0) == misaligned for o in offsets):
            return data
    raise AssertionError("could not place the weights at the wanted alignment")


def _model(nodes, inputs, outputs, inits, opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _fin(name, dims, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, dims)


@pytest.mark.parametrize("level", [0, 99])
@pytest.mark.parametrize("how", ["file", "bytes"])
def test_misaligned_gemm_weights_are_packed_from_the_file_without_a_copy(tmp_path, level, how):
    rng = np.random.default_rng(10)
    w1, w2, bias = rand((K, N), rng=rng), rand((N, K), rng=rng), rand((N,), rng=rng)
    w3 = rand((N, K), rng=rng)  # Gemm transB=1: B given as [N, K]

    def build(pad):
        nodes = [
            helper.make_node("MatMul", ["x", "W1" + pad], ["a"]),
            helper.make_node("Add", ["a", "bias"], ["ab"]),  # fused into the GEMM at level 2
            helper.make_node("Relu", ["ab"], ["r"]),
            helper.make_node("MatMul", ["r", "W2" + pad], ["y"]),
            helper.make_node("Gemm", ["x2", "W3" + pad], ["z"], transB=1),
        ]
        return _model(
            nodes, [_fin("x", ["b", K]), _fin("x2", ["c", K])], [_fin("y", ["b", K]), _fin("z", ["c", N])],
            [numpy_helper.from_array(w1, "W1" + pad), numpy_helper.from_array(w2, "W2" + pad),
             numpy_helper.from_array(w3, "W3" + pad), numpy_helper.from_array(bias, "bias")],
        )

    data = _serialize(build, [w1, w2, w3])
    sess = session_from(data, how, tmp_path, level)
    bias_copied = bias.nbytes if data.find(bias.tobytes()) % 4 else 0  # a vector: copied when misaligned
    assert sess._sess.stats()["realigned_weight_bytes"] == bias_copied
    for b, c in ((1, 3), (5, 1), (1, 3)):
        x, x2 = rand((b, K), rng=rng), rand((c, K), rng=rng)
        y, z = sess.run(None, {"x": x, "x2": x2})
        _close(y, _mm(np.maximum(_mm(x, w1) + bias, 0), w2))
        _close(z, _mm(x2, w3.T))


@pytest.mark.parametrize("how", ["file", "bytes"])
def test_misaligned_matrix_read_by_another_op_is_copied_aligned(tmp_path, how):
    rng = np.random.default_rng(11)
    w = rand((K, N), rng=rng)

    def build(pad):
        nodes = [
            helper.make_node("MatMul", ["x", "W" + pad], ["y"]),
            helper.make_node("Mul", ["x2", "W" + pad], ["z"]),
        ]
        return _model(nodes, [_fin("x", ["b", K]), _fin("x2", [K, N])], [_fin("y", ["b", N]), _fin("z", [K, N])],
                      [numpy_helper.from_array(w, "W" + pad)])

    sess = session_from(_serialize(build, [w]), how, tmp_path, 99)
    assert sess._sess.stats()["realigned_weight_bytes"] == w.nbytes
    x, x2 = rand((3, K), rng=rng), rand((K, N), rng=rng)
    y, z = sess.run(None, {"x": x, "x2": x2})
    _close(y, _mm(x, w))
    np.testing.assert_array_equal(z, x2 * w)


@pytest.mark.parametrize("how", ["file", "bytes"])
def test_misaligned_embedding_is_gathered_in_place_and_shared_with_a_gemm(tmp_path, how):
    """Gather copies rows (axis 0) or single elements (axis 1) straight from the misaligned file
    bytes; a Gemm reading the same table as B^T (tied embeddings) packs it from there too."""
    rng = np.random.default_rng(15)
    table = rand((N, K), rng=rng)

    def build(pad):
        t = "E" + pad
        nodes = [
            helper.make_node("Gather", [t, "ids"], ["rows"], axis=0),
            helper.make_node("Gather", [t, "cols"], ["elems"], axis=1),
            helper.make_node("Gemm", ["x", t], ["logits"], transB=1),
        ]
        ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["n"]) for n in ("ids", "cols")]
        return _model(nodes, ints + [_fin("x", ["b", K])],
                      [_fin("rows", ["n", K]), _fin("elems", [N, "n"]), _fin("logits", ["b", N])],
                      [numpy_helper.from_array(table, t)])

    sess = session_from(_serialize(build, [table]), how, tmp_path, 99)
    assert sess._sess.stats()["realigned_weight_bytes"] == 0
    for n in (1, 7, 3):
        ids, cols = rng.integers(0, N, n), rng.integers(0, K, n)
        x = rand((2, K), rng=rng)
        rows, elems, logits = sess.run(None, {"ids": ids, "cols": cols, "x": x})
        np.testing.assert_array_equal(rows, table[ids])
        np.testing.assert_array_equal(elems, table[:, cols])
        _close(logits, _mm(x, table.T))


def test_misaligned_conv_weight_without_bn_is_copied_aligned(tmp_path):
    """A conv weight stays in the file through the passes (BN folding would read it there); the
    session copies it aligned before the Conv kernel reads it. A misaligned vector is copied by
    the reader."""
    rng = np.random.default_rng(12)
    w = rand((4, 3, 3, 3), rng=rng)
    b = rand((4,), rng=rng)

    def build(pad):
        nodes = [helper.make_node("Conv", ["x", "W" + pad, "B" + pad], ["y"], pads=[1, 1, 1, 1])]
        return _model(nodes, [_fin("x", [1, 3, 5, 6])], [_fin("y", [1, 4, 5, 6])],
                      [numpy_helper.from_array(w, "W" + pad), numpy_helper.from_array(b, "B" + pad)])

    sess = session_from(_serialize(build, [w, b]), "file", tmp_path, 99)
    assert sess._sess.stats()["realigned_weight_bytes"] == w.nbytes + b.nbytes
    x = rand((1, 3, 5, 6), rng=rng)
    (y,) = sess.run(None, {"x": x})
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((1, 4, 5, 6))
    for i in range(3):
        for j in range(3):
            want += np.einsum("mc,bchw->bmhw", w[:, :, i, j], xp[:, :, i:i + 5, j:j + 6])
    _close(y, (want + b[None, :, None, None]).astype(np.float64))


def _conv_ref(x, w, pad):
    """Stride-1 2-D convolution in float64 with `pad` zeros on each side."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("mc,bchw->bmhw", w[:, :, i, j], x[:, :, i:i + oh, j:j + ow])
    return y


def _bn_ref(y, p, eps=1e-5):
    s = p["scale"] / np.sqrt(p["var"].astype(np.float64) + eps)
    return (y - p["mean"][None, :, None, None]) * s[None, :, None, None] + p["shift"][None, :, None, None]


@pytest.mark.parametrize("level", [0, 1, 99])
@pytest.mark.parametrize("how", ["file", "bytes"])
def test_misaligned_conv_weights_are_bn_folded_from_the_file_without_a_copy(tmp_path, level, how):
    """Conv -> BN -> Relu -> Conv (no BN): at level >= 1 BN folding reads the first weight from the
    file and only the second (read by its Conv kernel) is copied aligned; level 0 copies both."""
    rng = np.random.default_rng(13)
    w1, w2 = rand((7, 3, 3, 3), rng=rng), rand((5, 7, 1, 1), rng=rng)
    bn = {"scale": rand((7,), rng=rng), "shift": rand((7,), rng=rng), "mean": rand((7,), rng=rng),
          "var": rand((7,), low=0.2, high=2.0, rng=rng)}

    def build(pad):
        nodes = [
            helper.make_node("Conv", ["x", "W1" + pad], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["c1", "scale", "shift", "mean", "var"], ["b1"]),
            helper.make_node("Relu", ["b1"], ["r1"]),
            helper.make_node("Conv", ["r1", "W2" + pad], ["y"]),
        ]
        inits = [numpy_helper.from_array(w1, "W1" + pad), numpy_helper.from_array(w2, "W2" + pad)]
        inits += [numpy_helper.from_array(v, k) for k, v in bn.items()]
        return _model(nodes, [_fin("x", ["b", 3, 6, 5])], [_fin("y", ["b", 5, 6, 5])], inits)

    data = _serialize(build, [w1, w2])
    sess = session_from(data, how, tmp_path, level)
    vectors = sum(v.nbytes for v in bn.values() if data.find(v.tobytes()) % 4)  # copied by the reader
    copied = w2.nbytes + (w1.nbytes if level == 0 else 0)
    assert sess._sess.stats()["realigned_weight_bytes"] == vectors + copied
    if level:
        assert sess._passes_fired().get("conv_bn_folding") == 1
    for b in (1, 2, 1):
        x = rand((b, 3, 6, 5), rng=rng)
        (y,) = sess.run(None, {"x": x})
        _close(y, _conv_ref(np.maximum(_bn_ref(_conv_ref(x, w1, 1), bn), 0), w2, 0))


def test_aligned_weights_are_never_copied(tmp_path):
    rng = np.random.default_rng(14)
    w = rand((K, N), rng=rng)

    def build(pad):
        nodes = [helper.make_node("Mul", ["x2", "W" + pad], ["z"])]
        return _model(nodes, [_fin("x2", [K, N])], [_fin("z", [K, N])], [numpy_helper.from_array(w, "W" + pad)])

    sess = session_from(_serialize(build, [w], misaligned=False), "file", tmp_path, 99)
    assert sess._sess.stats()["realigned_weight_bytes"] == 0
    x2 = rand((K, N), rng=rng)
    np.testing.assert_array_equal(sess.run(None, {"x2": x2})[0], x2 * w)


# ---- the first run of a signature -----------------------------------------------------------------


def _cnn(rng):
    """Conv -> Relu -> Conv + residual -> Flatten (a view) -> MatMul -> Softmax, batch symbolic."""
    w1, w2 = rand((6, 3, 3, 3), rng=rng), rand((6, 6, 1, 1), rng=rng)
    fc = rand((6 * 7 * 5, 10), rng=rng)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"]),
        helper.make_node("Add", ["c2", "r1"], ["s"]),
        helper.make_node("Flatten", ["s"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["l"]),
        helper.make_node("Softmax", ["l"], ["y"], axis=-1),
    ]
    model = _model(nodes, [_fin("x", ["batch", 3, 7, 5])], [_fin("y", ["batch", 10])],
                   [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (fc, "fc"))])

    def reference(x):
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        c1 = np.zeros((x.shape[0], 6, 7, 5))
        for i in range(3):
            for j in range(3):
                c1 += np.einsum("mc,bchw->bmhw", w1[:, :, i, j], xp[:, :, i:i + 7, j:j + 5])
        r1 = np.maximum(c1, 0)
        s = np.einsum("mc,bchw->bmhw", w2[:, :, 0, 0], r1) + r1
        logits = s.reshape(x.shape[0], -1) @ fc
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return model, reference


@pytest.mark.parametrize("level", [0, 99])
def test_first_run_of_each_batch_size_runs_on_a_static_plan_and_matches(level):
    rng = np.random.default_rng(20)
    model, reference = _cnn(rng)
    so = runnx.SessionOptions()
    so.graph_optimization_level = level
    so.intra_op_num_threads = 2
    sess = runnx.InferenceSession(model.SerializeToString(), so)
    seen = []
    for batch in (1, 4, 1, 3, 4, 3):
        x = rand((batch, 3, 7, 5), rng=rng)
        (y,) = sess.run(None, {"x": x})
        _close(y, reference(x))
        if batch not in seen:
            seen.append(batch)
        st = sess._sess.stats()
        assert st["static_plans"] == len(seen)  # every first run had its plan before it started
        assert st["plans"] == len(seen)
        assert st["static_plans_kept"] == len(seen)  # and it foresaw Flatten's view
        assert st["arena_bytes"] > 0


@pytest.mark.parametrize("level", [0, 99])
def test_static_plan_foresees_every_view_op_and_is_kept(level):
    """Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout outputs share their input's
    bytes: the static plan gives them no slot, the first run sees exactly that, the plan is kept."""
    rng = np.random.default_rng(23)
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, 4, -1])
    axes0, axes1 = (helper.make_tensor(n, TensorProto.INT64, [1], [a]) for n, a in (("ax0", 1), ("ax1", 2)))
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),                    # [b, 4, 6]
        helper.make_node("Reshape", ["r", "shape"], ["rs"]),       # [b, 4, 6]
        helper.make_node("Unsqueeze", ["rs", "ax1"], ["u"]),       # [b, 4, 1, 6]
        helper.make_node("Sigmoid", ["u"], ["s"]),
        helper.make_node("Squeeze", ["s", "ax1"], ["q"]),          # [b, 4, 6]
        helper.make_node("Identity", ["q"], ["i"]),
        helper.make_node("Dropout", ["i"], ["d", "mask"]),         # only d is a view
        helper.make_node("Not", ["mask"], ["nm"]),
        helper.make_node("Flatten", ["d"], ["f"], axis=1),         # [b, 24]
        helper.make_node("Neg", ["f"], ["y"]),
        helper.make_node("Unsqueeze", ["y", "ax0"], ["y2"]),       # a graph output that is a view
    ]
    model = _model(nodes, [_fin("x", ["b", 4, 6])], [_fin("y", ["b", 24]), _fin("y2", ["b", 1, 24]),
                                                     _fin("nm", ["b", 4, 6], TensorProto.BOOL)],
                   [shape, axes0, axes1], opset=17)
    so = runnx.SessionOptions()
    so.graph_optimization_level = level
    sess = runnx.InferenceSession(model.SerializeToString(), so)
    batches = (2, 5, 2, 1)
    for n, batch in enumerate(batches, 1):
        x = rand((batch, 4, 6), rng=rng)
        y, y2, nm = sess.run(None, {"x": x})
        assert not nm.any()  # inference: the mask is all true
        want = -(1 / (1 + np.exp(-np.maximum(x, 0).astype(np.float64)))).reshape(batch, 24)
        _close(y, want, tol=1e-6)
        _close(y2, want[:, None, :], tol=1e-6)
        st = sess._sess.stats()
        assert st["static_plans"] == st["plans"] == st["static_plans_kept"] == len(set(batches[:n]))


def test_first_run_with_data_dependent_shapes_still_matches():
    """NonZero's output size is known only at run time: those values stay on the heap."""
    rng = np.random.default_rng(21)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("NonZero", ["r"], ["nz"]),
        helper.make_node("Transpose", ["nz"], ["idx"]),
        helper.make_node("GatherND", ["r", "idx"], ["vals"]),
        helper.make_node("Mul", ["vals", "vals"], ["y"]),
        helper.make_node("Sigmoid", ["x"], ["s"]),
    ]
    model = _model(nodes, [_fin("x", ["n", 6])], [_fin("y", None), _fin("s", ["n", 6])], [])
    sess = runnx.InferenceSession(model.SerializeToString())
    for n in (5, 2, 5):
        x = rand((n, 6), rng=rng)
        y, s = sess.run(None, {"x": x})
        r = np.maximum(x, 0)
        np.testing.assert_allclose(y, r[r != 0] ** 2, rtol=1e-6)
        np.testing.assert_allclose(s, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-5, atol=1e-6)


def test_without_mem_pattern_no_plan_is_made():
    rng = np.random.default_rng(22)
    model, reference = _cnn(rng)
    so = runnx.SessionOptions()
    so.enable_mem_pattern = False
    sess = runnx.InferenceSession(model.SerializeToString(), so)
    for batch in (2, 2):
        x = rand((batch, 3, 7, 5), rng=rng)
        _close(sess.run(None, {"x": x})[0], reference(x))
    st = sess._sess.stats()
    assert st["static_plans"] == 0 and st["plans"] == 0
