"""Session creation: load blocks (huge pages and their fallbacks), kernels and BN folding on
several threads, and the load profile.

Weights folded or packed at creation live in load blocks: with huge pages on (RUNNX_HUGE_PAGES=1;
off by default) those from 2 MiB are mapped 2 MiB-aligned and advised MADV_HUGEPAGE; when the
advice is refused they keep 4 KiB pages, when mapping fails they come from malloc. Whichever way,
the session computes the same numbers.
`RUNNX_LOAD_PROFILE=1` prints one report per creation; phases count self time (a nested phase is
not counted twice) and a failed creation's phases end in its own report, marked failed.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import runnx
from helpers import rand
from onnx import TensorProto, helper, numpy_helper

T = runnx._C._testing
MIB = 1 << 20


@pytest.fixture
def huge_page_mode():
    """Sets the load-block mode for one test and restores the default after it."""
    yield T.set_huge_page_mode
    T.set_huge_page_mode("auto")


def _delta(before, after):
    return {k: after[k] - before[k] for k in before}


@pytest.mark.parametrize(
    "mode, nbytes, counter, aligned_2m",
    [
        ("on", 2 * MIB + 4096 + 12, None, True),  # huge_blocks, or advice_refused without THP
        ("advice_fails", 3 * MIB, "advice_refused", True),
        ("map_fails", 3 * MIB, "malloc_blocks", False),
        ("off", 3 * MIB, "malloc_blocks", False),
        ("on", 2 * MIB - 64, "malloc_blocks", False),  # below the huge-page size
        ("auto", 3 * MIB, "malloc_blocks", False),  # the default: RUNNX_HUGE_PAGES is not 1
    ],
)
def test_load_block_is_usable_whichever_way_it_was_made(huge_page_mode, mode, nbytes, counter, aligned_2m):
    if mode == "auto" and os.environ.get("RUNNX_HUGE_PAGES") == "1":
        pytest.skip("huge pages asked for in the environment")
    huge_page_mode(mode)
    before = T.load_memory_stats()
    probe = T.probe_load_block(nbytes)
    d = _delta(before, T.load_memory_stats())
    assert probe["intact"] and probe["aligned_64"]
    if aligned_2m:
        assert probe["aligned_2m"]
    if counter is None:
        assert d["huge_blocks"] + d["advice_refused"] == 1 and d["malloc_blocks"] == 0
    else:
        assert d[counter] == 1 and sum(d.values()) == 1


def _big_conv_bn(rng, c=256):
    """Conv(c -> c, 3x3) -> BN -> Relu: the folded weight (c*c*9 floats, 2.4 MB) is one load block."""
    w = rand((c, c, 3, 3), low=-0.05, high=0.05, rng=rng)
    bn = [rand((c,), rng=rng), rand((c,), rng=rng), rand((c,), rng=rng), rand((c,), low=0.5, high=2.0, rng=rng)]
    names = ["scale", "shift", "mean", "var"]
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c"] + names, ["b"]),
        helper.make_node("Relu", ["b"], ["y"]),
    ]
    inits = [numpy_helper.from_array(w, "W")] + [numpy_helper.from_array(v, n) for v, n in zip(bn, names)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 5, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 5, 4])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    def reference(x):
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        y = np.zeros((1, c, 5, 4))
        for i in range(3):
            for j in range(3):
                y += np.einsum("mc,bchw->bmhw", w[:, :, i, j], xp[:, :, i:i + 5, j:j + 4])
        s = bn[0] / np.sqrt(bn[3].astype(np.float64) + 1e-5)
        y = (y - bn[2][None, :, None, None]) * s[None, :, None, None] + bn[1][None, :, None, None]
        return np.maximum(y, 0)

    return model, reference


def test_sessions_give_the_same_results_whichever_way_load_blocks_are_made(huge_page_mode):
    rng = np.random.default_rng(30)
    model, reference = _big_conv_bn(rng)
    x = rand((1, 256, 5, 4), rng=rng)
    want = reference(x)
    results = {}
    for mode in ("on", "advice_fails", "map_fails", "off"):
        huge_page_mode(mode)
        before = T.load_memory_stats()
        sess = runnx.InferenceSession(model.SerializeToString())
        d = _delta(before, T.load_memory_stats())
        assert d["huge_blocks"] + d["advice_refused"] >= (1 if mode in ("on", "advice_fails") else 0)
        if mode in ("map_fails", "off"):
            assert d["huge_blocks"] + d["advice_refused"] == 0
        (results[mode],) = sess.run(None, {"x": x})
        np.testing.assert_allclose(results[mode], want, rtol=1e-4, atol=1e-4)
        del sess
    for mode in ("advice_fails", "map_fails", "off"):
        np.testing.assert_array_equal(results[mode], results["on"])


def test_nested_load_phases_are_not_counted_twice():
    d = T.nested_load_phases(3000)
    assert d["inner"] >= 3_000_000  # the inner spin, all of it
    assert d["outer"] >= 6_000_000  # the outer phase's own two spins
    assert d["outer"] + d["inner"] <= d["elapsed_ns"]  # self times add up to at most the whole


_PROFILE_SCRIPT = textwrap.dedent(
    """
    import sys
    import runnx
    bad_path, good_bytes_path = sys.argv[1], sys.argv[2]
    try:
        runnx.InferenceSession(bad_path)
    except runnx.RunnxError as e:
        print("failed as expected:", type(e).__name__, file=sys.stderr)
    else:
        raise SystemExit("the bad model loaded")
    runnx.InferenceSession(open(good_bytes_path, "rb").read())
    """
)


def _reports(stderr):
    """{title line: [phase names]} of each load profile report, in order."""
    reports = []
    for line in stderr.splitlines():
        if line.startswith("runnx load profile: "):
            reports.append((line, []))
        elif reports and line.startswith("  ") and "faults" in line:
            reports[-1][1].append(line.split("faults", 1)[1].strip())
    return reports


def test_a_failed_load_reports_its_phases_and_leaves_none_to_the_next(tmp_path):
    bad = helper.make_model(
        helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]),
        opset_imports=[helper.make_opsetid("", 17)])
    good = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]),
        opset_imports=[helper.make_opsetid("", 17)])
    (tmp_path / "bad.onnx").write_bytes(bad.SerializeToString())
    (tmp_path / "good.onnx").write_bytes(good.SerializeToString())
    env = dict(os.environ, RUNNX_LOAD_PROFILE="1", PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-c", _PROFILE_SCRIPT, str(tmp_path / "bad.onnx"), str(tmp_path / "good.onnx")],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert "failed as expected: UnsupportedOp" in p.stderr
    reports = _reports(p.stderr)
    assert len(reports) == 2, p.stderr
    (bad_title, bad_phases), (good_title, good_phases) = reports
    assert "bad.onnx (failed)" in bad_title
    assert "file map" in bad_phases and "protobuf read" in bad_phases and "supported ops" in bad_phases
    assert "model from bytes" in good_title and "(failed)" not in good_title
    assert "protobuf read" in good_phases and "kernel Relu" in good_phases
    assert "file map" not in good_phases  # the failed load's phases stayed in its own report


# ---- kernels built side by side ----------------------------------------------------------------


def _wide_mlp(rng, failing=()):
    """x -> MatMul(W_k) -> Relu, four times, with 3 MB of weights (enough to build kernels on
    several threads); Dropout nodes with training_mode=true (refused by their constructor) after
    the layers listed in `failing`."""
    sizes = [96, 512, 640, 384, 200]
    nodes, inits, cur = [], [], "x"
    for k in range(4):
        w = rand((sizes[k], sizes[k + 1]), low=-0.1, high=0.1, rng=rng)
        inits.append(numpy_helper.from_array(w, f"W{k}"))
        nodes += [helper.make_node("MatMul", [cur, f"W{k}"], [f"m{k}"]), helper.make_node("Relu", [f"m{k}"], [f"r{k}"])]
        cur = f"r{k}"
        if k in failing:
            nodes.append(helper.make_node("Dropout", [cur, "ratio", "train"], [f"d{k}"], name=f"drop{k}"))
            cur = f"d{k}"
    inits += [numpy_helper.from_array(np.array(0.5, np.float32), "ratio"),
              numpy_helper.from_array(np.array(True), "train")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", sizes[0]])],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, ["b", sizes[-1]])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    weights = [numpy_helper.to_array(t) for t in inits[:4]]

    def reference(x):
        y = x.astype(np.float64)
        for w in weights:
            y = np.maximum(y @ w, 0)
        return y

    return model, reference


def _session(model, threads, level=99):
    so = runnx.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = level
    return runnx.InferenceSession(model.SerializeToString(), so)


def test_kernels_built_on_two_threads_compute_what_one_thread_builds():
    rng = np.random.default_rng(31)
    model, reference = _wide_mlp(rng)
    one, two = _session(model, 1), _session(model, 2)
    assert one._sess.stats()["kernel_build_threads"] == 1
    assert two._sess.stats()["kernel_build_threads"] == 2
    for batch in (1, 7, 1):
        x = rand((batch, 96), rng=rng)
        (a,), (b,) = one.run(None, {"x": x}), two.run(None, {"x": x})
        np.testing.assert_allclose(b, reference(x), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # same packing, only the GEMM's split differs


def test_bn_folded_on_two_threads_matches_one_thread_and_the_reference():
    """Two Conv -> BN -> Relu layers (2.6 MB of folded weights, folded on the session's threads)."""
    rng = np.random.default_rng(34)
    c = 192
    layers = [(rand((c, c, 3, 3), low=-0.05, high=0.05, rng=rng),
               [rand((c,), rng=rng), rand((c,), rng=rng), rand((c,), rng=rng), rand((c,), low=0.5, high=2.0, rng=rng)])
              for _ in range(2)]
    nodes, inits, cur = [], [], "x"
    for k, (w, bn) in enumerate(layers):
        names = [f"{p}{k}" for p in ("scale", "shift", "mean", "var")]
        nodes += [helper.make_node("Conv", [cur, f"W{k}"], [f"c{k}"], pads=[1, 1, 1, 1]),
                  helper.make_node("BatchNormalization", [f"c{k}"] + names, [f"b{k}"]),
                  helper.make_node("Relu", [f"b{k}"], [f"r{k}"])]
        inits += [numpy_helper.from_array(w, f"W{k}")] + [numpy_helper.from_array(v, n) for v, n in zip(bn, names)]
        cur = f"r{k}"
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 3, 4])],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, c, 3, 4])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    x = rand((1, c, 3, 4), rng=rng)
    want = x.astype(np.float64)
    for w, bn in layers:
        xp = np.pad(want, ((0, 0), (0, 0), (1, 1), (1, 1)))
        y = sum(np.einsum("mc,bchw->bmhw", w[:, :, i, j], xp[:, :, i:i + 3, j:j + 4]) for i in range(3) for j in range(3))
        s = bn[0] / np.sqrt(bn[3].astype(np.float64) + 1e-5)
        want = np.maximum((y - bn[2][None, :, None, None]) * s[None, :, None, None] + bn[1][None, :, None, None], 0)
    (one,), (two,) = (_session(model, t).run(None, {"x": x}) for t in (1, 2))
    np.testing.assert_allclose(two, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-6)


def test_kernel_building_starts_no_more_threads_than_cpus():
    rng = np.random.default_rng(34)
    model, reference = _wide_mlp(rng)
    sess = _session(model, 64)
    assert 1 <= sess._sess.stats()["kernel_build_threads"] <= os.cpu_count()
    x = rand((3, 96), rng=rng)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], reference(x), rtol=1e-4, atol=1e-4)


def test_small_models_build_their_kernels_on_the_calling_thread():
    model, _ = _big_conv_bn(np.random.default_rng(32), c=8)
    assert _session(model, 2)._sess.stats()["kernel_build_threads"] == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_a_constructor_error_names_the_first_failing_node(threads):
    rng = np.random.default_rng(33)
    model, _ = _wide_mlp(rng, failing=(1, 3))
    for _ in range(3):  # whichever thread gets there first, the error is the earliest node's
        with pytest.raises(runnx.UnsupportedOp, match=r"Dropout node 'drop1'.*training_mode=true"):
            _session(model, threads, level=0)


# ---- BN folds deferred to their kernel's build -------------------------------------------------
# A folded weight whose source is read by its conv alone is computed just before that conv's
# kernel is built, and freed once every reader packed its own copy (stats: deferred_constants,
# deferred_constants_freed). Whatever path a case takes, the results match the reference, on the
# first run and after the weight's bytes are gone.


def _bn_params(rng, m):
    return [rand((m,), rng=rng), rand((m,), rng=rng), rand((m,), rng=rng), rand((m,), low=0.5, high=2.0, rng=rng)]


def _conv_bn_model(case, rng, wname="W"):
    """x [1, 6, 5, 7] (batch symbolic for "dynamic") -> case's Conv/BN graph -> y."""
    c, m = 6, 10
    nodes, inits = [], {}

    def conv_bn(x, w, out, k, group=1, pads=0):
        names = [f"{p}{k}" for p in ("scale", "shift", "mean", "var")]
        inits.update(zip(names, _bn_params(rng, w.shape[0])))
        nodes.extend([helper.make_node("Conv", [x, wname if k == 0 or case == "shared" else f"W{k}"], [f"c{k}"],
                                       group=group, pads=[pads] * 4),
                      helper.make_node("BatchNormalization", [f"c{k}"] + names, [out])])
        inits[wname if k == 0 or case == "shared" else f"W{k}"] = w

    w = rand((m, c, 1, 1), rng=rng)
    if case in ("single", "dynamic"):
        conv_bn("x", w, "y", 0)
    elif case == "chain":  # Conv -> BN -> BN: the second fold reads the first (an earlier round's)
        conv_bn("x", w, "b0", 0)
        names = ["s_b", "t_b", "m_b", "v_b"]
        inits.update(zip(names, _bn_params(rng, m)))
        nodes.append(helper.make_node("BatchNormalization", ["b0"] + names, ["y"]))
    elif case == "shared":  # one W read by two convs: folded at once, not deferred
        conv_bn("x", w, "b0", 0)
        conv_bn("x", w, "b1", 1)
        nodes.append(helper.make_node("Add", ["b0", "b1"], ["y"]))
    elif case == "depthwise":  # NCHW depthwise keeps reading its weight at run time
        conv_bn("x", rand((c, 1, 3, 3), rng=rng), "y", 0, group=c, pads=1)
    elif case == "stack":  # many folds in one pass: the new initializers move the old ones
        conv_bn("x", rand((c, c, 1, 1), rng=rng), "b0", 0)
        for k in range(1, 12):
            conv_bn(f"b{k - 1}", rand((c, c, 3, 3), low=-0.3, high=0.3, rng=rng), "y" if k == 11 else f"b{k}", k, pads=1)
    batch = "n" if case == "dynamic" else 1
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, 5, 7])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


_DEFERRED = {"single": 1, "dynamic": 1, "chain": 1, "shared": 0, "depthwise": 1, "stack": 12}


@pytest.mark.parametrize("case", sorted(_DEFERRED))
@pytest.mark.parametrize("how", ["file", "bytes"])
@pytest.mark.parametrize("level, threads", [(1, 1), (99, 1), (99, 2)])
def test_deferred_bn_folds_compute_the_reference(tmp_path, case, how, level, threads):
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(len(case) * 7 + level)
    model = _conv_bn_model(case, rng)
    so = runnx.SessionOptions()
    so.graph_optimization_level = level
    so.intra_op_num_threads = threads
    data = model.SerializeToString()
    if how == "file":
        (tmp_path / "m.onnx").write_bytes(data)
        data = str(tmp_path / "m.onnx")
    sess = runnx.InferenceSession(data, so)
    st = sess._sess.stats()
    assert st["deferred_constants"] == _DEFERRED[case]
    assert 0 <= st["deferred_constants_freed"] <= st["deferred_constants"]
    if level == 99 and case in ("single", "chain"):
        assert st["deferred_constants_freed"] == 1  # the channels-last 1x1 packs its weight
    ref = ReferenceEvaluator(model)
    for batch in (1, 1, 3) if case == "dynamic" else (1, 1):
        x = rand((batch, 6, 5, 7), rng=rng)
        (got,) = sess.run(None, {"x": x})
        (want,) = ref.run(None, {"x": x})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_deferred_fold_reads_a_weight_left_misaligned_in_the_file(tmp_path):
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(5)
    for pad in range(8):  # a weight name length that leaves W's bytes off a multiple of 4
        model = _conv_bn_model("single", rng, wname="W" + "_" * pad)
        data = model.SerializeToString()
        w = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name.startswith("W")))
        if data.find(w.tobytes()[:24]) % 4:
            break
    else:
        pytest.fail("could not place the weight misaligned")
    (tmp_path / "m.onnx").write_bytes(data)
    sess = runnx.InferenceSession(str(tmp_path / "m.onnx"))
    assert sess._sess.stats()["deferred_constants"] == 1
    # W folded from the file, not copied first (only small BN vectors may be)
    assert sess._sess.stats()["realigned_weight_bytes"] < w.nbytes
    x = rand((1, 6, 5, 7), rng=rng)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ReferenceEvaluator(model).run(None, {"x": x})[0],
                               rtol=1e-4, atol=1e-4)
