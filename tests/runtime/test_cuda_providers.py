"""The CUDA provider seen from Python without a GPU: the providers list, onnxruntime's warning and
CPU fallback, provider options, and the errors a CUDA session gives when no device answers."""

import numpy as np
import pytest
import runnx
from helpers import make_model
from onnx import TensorProto, helper, numpy_helper

NO_DEVICE = runnx._C.cuda.device_count() == 0
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def _reshape_model():
    shape = numpy_helper.from_array(np.array([3, 2], np.int64), "shape")
    g = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def test_available_providers_follow_the_device_count():
    avail = runnx.get_available_providers()
    assert avail[-1] == CPU
    assert (CUDA in avail) == (runnx._C.cuda.device_count() > 0)
    assert runnx.get_all_providers() == [CUDA, CPU]
    assert runnx.get_device() == ("GPU" if CUDA in avail else "CPU")


@pytest.mark.skipif(not NO_DEVICE, reason="needs a machine without a CUDA device")
def test_cuda_without_device_warns_and_falls_back_to_cpu():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with pytest.warns(UserWarning, match="CUDAExecutionProvider.*not in available provider names.*falling back"):
        sess = runnx.InferenceSession(_reshape_model(), providers=[CUDA, CPU])
    assert sess.get_providers() == [CPU]
    assert sess.get_provider_options() == {CPU: {}}
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_array_equal(y, x.reshape(3, 2))


@pytest.mark.skipif(not NO_DEVICE, reason="needs a machine without a CUDA device")
def test_cuda_options_without_device_warn_once_and_are_dropped():
    with pytest.warns(UserWarning) as rec:
        sess = runnx.InferenceSession(_reshape_model(), providers=[(CUDA, {"device_id": 0}), CPU])
    assert len(rec) == 1
    assert sess.get_providers() == [CPU]


def test_cpu_only_session_reports_cpu():
    sess = runnx.InferenceSession(_reshape_model(), providers=[CPU])
    assert sess.get_providers() == [CPU]
    assert sess._placement() == [("r", "Reshape", "cpu", "")]


def test_unknown_provider_and_malformed_options_are_value_errors():
    with pytest.raises(ValueError, match="Unknown Provider Type: TensorrtExecutionProvider"):
        runnx.InferenceSession(_reshape_model(), providers=["TensorrtExecutionProvider"])
    with pytest.raises(ValueError, match="one dict per provider"):
        runnx.InferenceSession(_reshape_model(), providers=[CUDA, CPU], provider_options=[{}])
    with pytest.raises(ValueError, match="options dict"):
        runnx.InferenceSession(_reshape_model(), providers=[(CUDA, "device_id=0")])


@pytest.mark.skipif(not NO_DEVICE or not runnx._C.cuda.built, reason="needs a CUDA build without a device")
def test_native_cuda_session_without_device_names_the_reason():
    opts = {"providers": [(CUDA, {}), (CPU, {})]}
    with pytest.raises(runnx.InvalidArgument, match=r"CUDA device_id 0 does not exist \(0 device\(s\) answer: "):
        runnx._C.Session(_reshape_model(), opts)


@pytest.mark.skipif(not runnx._C.cuda.built, reason="needs a CUDA build")
def test_native_cuda_session_checks_options_before_the_device():
    bad = {"providers": [(CUDA, {"devcie_id": "0"}), (CPU, {})]}
    with pytest.raises(runnx.InvalidArgument, match="unknown CUDAExecutionProvider option 'devcie_id'"):
        runnx._C.Session(_reshape_model(), bad)
    bad = {"providers": [(CUDA, {"device_id": "gpu0"}), (CPU, {})]}
    with pytest.raises(runnx.InvalidArgument, match="device_id='gpu0' is not an integer"):
        runnx._C.Session(_reshape_model(), bad)


def test_native_unknown_provider_is_refused():
    with pytest.raises(runnx.InvalidArgument, match="unknown execution provider 'ROCMExecutionProvider'"):
        runnx._C.Session(_reshape_model(), {"providers": [("ROCMExecutionProvider", {})]})


@pytest.mark.skipif(not runnx._C.cuda.built, reason="a CPU-only build refuses CUDAExecutionProvider outright")
def test_a_model_with_no_device_node_needs_no_device():
    # Nothing to place on CUDA (NonZero has no CUDA kernel): the session is a plain CPU session.
    m = make_model("NonZero", {"x": np.array([0, 1, 2], np.float32)})
    sess = runnx._C.Session(m.SerializeToString(), {"providers": [(CUDA, {}), (CPU, {})]})
    assert sess.providers() == [CPU]
    (y,) = sess.run(None, {"x": np.array([0, 1, 2], np.float32)})
    np.testing.assert_array_equal(y, [[1, 2]])
