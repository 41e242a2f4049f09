"""IOBinding and OrtValue with host memory (what runs without a GPU), and the errors for device
memory handed to a session that runs on the CPU."""

import numpy as np
import pytest
import runnx
from helpers import make_model


def _add_model():
    return make_model("Add", {"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 3), np.float32)}).SerializeToString()


def _feeds(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal((2, 3)).astype(np.float32) for k in "ab"}


class FakeDeviceArray:
    """Looks like a CuPy array to runnx (the pointer is never read by a CPU session)."""

    def __init__(self, shape=(2, 3), typestr="<f4", strides=None):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (1 << 40, False),
                                         "version": 3, "strides": strides}


class DLPackOnly:
    """A host array seen only through the DLPack protocol."""

    def __init__(self, arr):
        self._arr = arr

    def __dlpack__(self, **kw):
        return self._arr.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self._arr.__dlpack_device__()


def test_cpu_iobinding_round_trip():
    sess = runnx.InferenceSession(_add_model())
    f = _feeds()
    io = sess.io_binding()
    io.bind_cpu_input("a", f["a"])
    io.bind_ortvalue_input("b", runnx.OrtValue.ortvalue_from_numpy(f["b"]))
    io.bind_output("y0")
    sess.run_with_iobinding(io)
    (y,) = io.copy_outputs_to_cpu()
    np.testing.assert_array_equal(y, f["a"] + f["b"])
    (v,) = io.get_outputs()
    assert v.device_name() == "cpu" and v.shape() == [2, 3] and v.data_type() == "tensor(float)"
    np.testing.assert_array_equal(v.numpy(), y)
    # Rebinding an input and running again gives fresh results.
    f2 = _feeds(1)
    io.bind_cpu_input("a", f2["a"])
    sess.run_with_iobinding(io)
    np.testing.assert_array_equal(io.copy_outputs_to_cpu()[0], f2["a"] + f["b"])


def test_unbound_outputs_mean_all_outputs_and_pointer_binding_reads_host_memory():
    sess = runnx.InferenceSession(_add_model())
    f = _feeds(2)
    io = sess.io_binding()
    a = f["a"].copy()
    io.bind_input("a", "cpu", 0, np.float32, a.shape, a.ctypes.data)
    io.bind_input("b", f["b"])  # the array itself
    sess.run_with_iobinding(io)
    np.testing.assert_array_equal(io.copy_outputs_to_cpu()[0], a + f["b"])


def test_dlpack_host_input_is_accepted_in_run_and_binding():
    sess = runnx.InferenceSession(_add_model())
    f = _feeds(3)
    (y,) = sess.run(None, {"a": DLPackOnly(f["a"]), "b": f["b"]})
    np.testing.assert_array_equal(y, f["a"] + f["b"])
    v = runnx.OrtValue.from_dlpack(DLPackOnly(f["b"]))
    assert v.device_name() == "cpu"
    np.testing.assert_array_equal(v.numpy(), f["b"])


def test_missing_input_in_binding_is_named():
    sess = runnx.InferenceSession(_add_model())
    io = sess.io_binding()
    io.bind_cpu_input("a", _feeds()["a"])
    with pytest.raises(runnx.InvalidArgument, match="required input 'b'"):
        sess.run_with_iobinding(io)
    io.clear_binding_inputs()
    with pytest.raises(runnx.InvalidArgument, match="required input 'a'"):
        sess.run_with_iobinding(io)


def test_device_memory_on_a_cpu_session_is_refused_clearly():
    sess = runnx.InferenceSession(_add_model(), providers=["CPUExecutionProvider"])
    f = _feeds()
    with pytest.raises(runnx.InvalidArgument, match="input 'a' is in cuda memory, but this session runs on CPUExecutionProvider only"):
        sess.run(None, {"a": FakeDeviceArray(), "b": f["b"]})
    io = sess.io_binding()
    io.bind_cpu_input("a", f["a"])
    io.bind_cpu_input("b", f["b"])
    io.bind_output("y0", "cuda")
    with pytest.raises(runnx.InvalidArgument, match="bound to cuda memory, but this session runs on CPUExecutionProvider only"):
        sess.run_with_iobinding(io)


def test_device_array_checks():
    from runnx.io_binding import as_feed

    feed = as_feed(FakeDeviceArray((4, 5), "<f2"))
    assert feed == ("cuda", 1 << 40, (4, 5), 10, 0)
    with pytest.raises(runnx.InvalidArgument, match="C-contiguous"):
        as_feed(FakeDeviceArray((4, 5), "<f4", strides=(4, 16)))
    with pytest.raises(runnx.InvalidArgument, match="cannot be bound"):
        as_feed(FakeDeviceArray((2,), "<c8"))
    v = runnx.OrtValue.from_dlpack(FakeDeviceArray((4, 5), "<f4"))
    assert v.device_name() == "cuda" and v.shape() == [4, 5] and v.element_type() == 1
    assert v.__cuda_array_interface__["typestr"] == "<f4"
    with pytest.raises(runnx.InvalidArgument, match="foreign device array"):
        v.numpy()


def test_ortvalue_api():
    x = np.arange(6, dtype=np.int64).reshape(3, 2)
    v = runnx.OrtValue.ortvalue_from_numpy(x)
    assert (v.device_name(), v.shape(), v.element_type(), v.data_type()) == ("cpu", [3, 2], 7, "tensor(int64)")
    assert v.data_ptr() == v.numpy().ctypes.data
    with pytest.raises(AttributeError):
        getattr(v, "__cuda_array_interface__")  # noqa: B009
    if runnx._C.cuda.device_count() == 0:
        with pytest.raises(runnx.InvalidArgument, match="no CUDA device"):
            runnx.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
    with pytest.raises(runnx.InvalidArgument, match="device_type must be"):
        runnx.InferenceSession(_add_model()).io_binding().bind_output("y0", "tpu")
    with pytest.raises(runnx.InvalidArgument, match="buffer_ptr is not supported"):
        runnx.InferenceSession(_add_model()).io_binding().bind_output("y0", "cpu", 0, np.float32, (2, 3), 1234)
