"""The pages of a model file of at most 32 MiB: mapped in at open (up to 2 MiB) or in whole by the
session (on a thread of its own while the graph passes run, when it has several; joined whatever
happens), and those of
packed weights dropped together once the kernels are built, merging ranges less than a page
apart. Bytes between those ranges that a kernel still reads in place (a small weight of a Mul)
are clean file pages: dropped with the rest, they fault back when read, so results stay exact."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import runnx
from helpers import rand, threads
from onnx import TensorProto, helper, numpy_helper


def _mapped_rss_kib(path):
    """Resident KiB of this process's mappings of `path` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if "-" in line.split(" ", 1)[0]:
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def _model(big, small1, tiny, small2):
    """Three MatMuls that pack their weights (one large, two small) and a Mul reading `tiny` in
    place; initializers in that order, so `tiny` lies between the two small packed weights."""
    k = big.shape[0]
    nodes = [
        helper.make_node("MatMul", ["x", "big"], ["y0"]),
        helper.make_node("MatMul", ["x1", "small1"], ["y1"]),
        helper.make_node("Mul", ["x2", "tiny"], ["y2"]),
        helper.make_node("MatMul", ["x1", "small2"], ["y3"]),
    ]
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", k]),
         helper.make_tensor_value_info("x1", TensorProto.FLOAT, ["b", small1.shape[0]]),
         helper.make_tensor_value_info("x2", TensorProto.FLOAT, list(tiny.shape))],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None) for i in range(4)],
        [numpy_helper.from_array(big, "big"), numpy_helper.from_array(small1, "small1"),
         numpy_helper.from_array(tiny, "tiny"), numpy_helper.from_array(small2, "small2")],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("big_shape", [(768, 768), (96, 80)])  # 2.25 MiB (built on threads), 30 KiB
def test_packed_weights_drop_their_pages_and_in_place_readers_still_compute(tmp_path, n_threads, big_shape):
    rng = np.random.default_rng(7)
    big, small1, tiny, small2 = rand(big_shape, rng=rng), rand((64, 72), rng=rng), rand((3, 5), rng=rng), rand((64, 40), rng=rng)
    data = _model(big, small1, tiny, small2).SerializeToString()
    assert data.find(tiny.tobytes()) - (data.find(small1.tobytes()) + small1.nbytes) < 4096
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    sess = runnx.InferenceSession(str(path), threads(n_threads))
    # The first and last page (graph framing) stay; dropped range by range, the page(s) holding
    # `tiny` would stay too (12-16 KiB).
    assert _mapped_rss_kib(path) <= 8, _mapped_rss_kib(path)
    x, x1, x2 = rand((3, big.shape[0]), rng=rng), rand((2, 64), rng=rng), rand((3, 5), rng=rng)
    y0, y1, y2, y3 = sess.run(None, {"x": x, "x1": x1, "x2": x2})
    np.testing.assert_array_equal(y2, x2 * tiny)  # re-read from the file after its page was dropped
    f64 = np.float64
    np.testing.assert_allclose(y0, x.astype(f64) @ big.astype(f64), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y1, x1.astype(f64) @ small1.astype(f64), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y3, x1.astype(f64) @ small2.astype(f64), rtol=1e-4, atol=1e-4)
    if n_threads == 2 and big.nbytes >= 2 << 20:
        assert sess._sess.stats()["kernel_build_threads"] == 2


_POPULATE_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import runnx
    good, bad, n_threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    so = runnx.SessionOptions()
    so.intra_op_num_threads = n_threads
    before = len(os.listdir("/proc/self/task"))
    try:
        runnx.InferenceSession(bad, so)
    except runnx.RunnxError:
        pass
    else:
        raise SystemExit("the bad model loaded")
    sess = runnx.InferenceSession(good, so)
    assert len(os.listdir("/proc/self/task")) == before, "a creation left a thread behind"
    x = np.load(sys.argv[4])
    np.save(sys.argv[5], sess.run(None, {"x": x})[0])
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_small_files_are_mapped_whole_and_no_thread_outlives_a_creation(tmp_path, n_threads):
    rng = np.random.default_rng(8)
    w = rand((768, 704), rng=rng)  # a 2.06 MiB file: with 2 threads, mapped on a thread of its own
    good = helper.make_model(
        helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 768])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 704])],
            [numpy_helper.from_array(w, "w")]),
        opset_imports=[helper.make_opsetid("", 17)])
    bad = helper.make_model(  # fails in the session, after the mapping thread started
        helper.make_graph(
            [helper.make_node("NoSuchOp", ["x", "w"], ["y"])], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 768])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(w, "w")]),
        opset_imports=[helper.make_opsetid("", 17)])
    paths = [tmp_path / "good.onnx", tmp_path / "bad.onnx"]
    for p, m in zip(paths, (good, bad)):
        p.write_bytes(m.SerializeToString())
    x = rand((5, 768), rng=rng)
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, RUNNX_LOAD_PROFILE="1", PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        [sys.executable, "-c", _POPULATE_SCRIPT, *map(str, paths), str(n_threads), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy")], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    # Both creations (the failed one too) mapped the file in, each once.
    assert done.stderr.count("file populate") == 2, done.stderr
    f64 = np.float64
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), x.astype(f64) @ w.astype(f64), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("w_size", [48_000, 600_000])  # 94 KiB (gathered), 1.14 MiB (a large drop)
def test_weights_the_reader_copied_out_stay_dropped_after_the_file_is_mapped_in(tmp_path, n_threads, w_size):
    """A 1-D float16 weight at an odd offset is copied to the heap as the file is read and its
    pages dropped; a 2.1 MiB MatMul weight makes the file one the session maps in whole
    afterwards (over 2 MiB), which must not bring the dropped pages back."""
    rng = np.random.default_rng(10)
    w = rng.standard_normal(w_size).astype(np.float16)
    big = rand((768, 720), rng=rng)
    for pad in range(4):  # the node's name moves the weight's bytes
        model = helper.make_model(
            helper.make_graph(
                [helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT, name="cast" + "_" * pad),
                 helper.make_node("Add", ["x", "wf"], ["y"]),
                 helper.make_node("MatMul", ["x2", "big"], ["y2"])], "g",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [w.size]),
                 helper.make_tensor_value_info("x2", TensorProto.FLOAT, [3, 768])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [w.size]),
                 helper.make_tensor_value_info("y2", TensorProto.FLOAT, [3, 720])],
                [numpy_helper.from_array(w, "w"), numpy_helper.from_array(big, "big")]),
            opset_imports=[helper.make_opsetid("", 17)])
        data = model.SerializeToString()
        if data.find(w.tobytes()) % 2 == 1:
            break
    else:
        raise AssertionError("could not place the weight at an odd offset")
    assert len(data) > 2 << 20
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    sess = runnx.InferenceSession(str(path), threads(n_threads))
    # Both weights' pages are gone (the packed MatMul weight's too): the framing pages at most.
    assert _mapped_rss_kib(path) <= 16, _mapped_rss_kib(path)
    x = rng.standard_normal(w.size).astype(np.float32)
    x2 = rand((3, 768), rng=rng)
    y, y2 = sess.run(None, {"x": x, "x2": x2})
    np.testing.assert_array_equal(y, x + w.astype(np.float32))
    np.testing.assert_allclose(y2, x2.astype(np.float64) @ big.astype(np.float64), rtol=1e-4, atol=1e-4)
