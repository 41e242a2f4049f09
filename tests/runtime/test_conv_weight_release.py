"""Convolutions whose input shape (all but the batch) is fixed at load pack the weights of the one
GEMM path they will take (transposed or packed) at load and give the original back; Winograd keeps
the original and transforms on first use.

Released heap bytes read back as zeros, so a conv that wrongly read its original afterwards, or a
co-reader that lost bytes it still needs, gives wrong numbers here. Each case runs twice and at two
batch sizes (no path depends on the batch), against onnx.reference.
"""

import numpy as np
import pytest
import runnx
from helpers import rand, run_reference
from onnx import TensorProto, helper, numpy_helper

# (input C, H, W; output M; kernel; stride, pads): one per path the NCHW Conv kernel takes. The
# weights span several pages: only whole pages are given back.
CASES = {
    "winograd": (32, 17, 19, 41, 3, 1, 1),  # 3x3 s1 with >= 16 tiles
    "transposed": (128, 7, 7, 67, 1, 1, 0),  # 1x1 on <= 64 output pixels
    "gemm_1x1": (97, 11, 9, 53, 1, 1, 0),
    "im2col": (13, 13, 10, 41, 5, 2, 2),
    "gemm_3x3_small": (32, 5, 6, 41, 3, 1, 1),  # 3x3 s1 with too few tiles for Winograd
}


def _close(got, want):
    """float32 sums of up to ~1300 products (Winograd's transforms add a little): error relative
    to the output's scale."""
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=5e-5 * float(np.abs(want).max()) + 1e-5)


def _model(c, h, w, m, k, s, p, weight, misaligned_pad, extra_reader):
    wname = "W" + "_" * misaligned_pad
    nodes = [helper.make_node("Conv", ["x", wname, "b"], ["y"], strides=[s, s], pads=[p] * 4)]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_reader:  # a second reader that needs the original bytes
        nodes.append(helper.make_node("ReduceSum", [wname], ["wsum"], keepdims=0))
        outputs.append(helper.make_tensor_value_info("wsum", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c, h, w])], outputs,
        [numpy_helper.from_array(weight, wname),
         numpy_helper.from_array(np.linspace(-1, 1, m).astype(np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("extra_reader", [False, True])
@pytest.mark.parametrize("misaligned_pad", [0, 1, 2, 3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_conv_prepared_at_load_matches_reference(case, misaligned_pad, extra_reader, tmp_path):
    c, h, w, m, k, s, p = CASES[case]
    rng = np.random.default_rng(3)
    weight = rand((m, c, k, k), rng=rng)
    model = _model(c, h, w, m, k, s, p, weight, misaligned_pad, extra_reader)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    for source in (str(path), model.SerializeToString()):
        sess = runnx.InferenceSession(source)
        for batch in (1, 3, 1):
            x = rand((batch, c, h, w), rng=rng)
            got = sess.run(None, {"x": x})
            want = run_reference(model, {"x": x})
            _close(got[0], want[0])
            if extra_reader:
                np.testing.assert_allclose(got[1], weight.sum(), rtol=1e-5, atol=1e-4)


def test_one_weight_read_by_convs_taking_different_paths(tmp_path):
    """Each conv prepares its own form; the bytes go only after both have, and both stay right."""
    rng = np.random.default_rng(4)
    weight = rand((41, 32, 3, 3), rng=rng)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["big", "W"], ["y1"], pads=[1] * 4),  # Winograd
         helper.make_node("Conv", ["small", "W"], ["y2"], pads=[1] * 4)],  # packed GEMM
        "two", [helper.make_tensor_value_info("big", TensorProto.FLOAT, [2, 32, 20, 20]),
                helper.make_tensor_value_info("small", TensorProto.FLOAT, [2, 32, 4, 5])],
        [helper.make_tensor_value_info("y1", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = runnx.InferenceSession(model.SerializeToString())
    feeds = {"big": rand((2, 32, 20, 20), rng=rng), "small": rand((2, 32, 4, 5), rng=rng)}
    for _ in range(2):
        for got, want in zip(sess.run(None, feeds), run_reference(model, feeds)):
            _close(got, want)
