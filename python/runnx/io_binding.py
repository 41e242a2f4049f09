"""Device I/O with onnxruntime's names: ``OrtValue`` and ``IOBinding``.

Inputs may be numpy arrays (host) or device arrays: anything with ``__cuda_array_interface__``
(CuPy, PyTorch, Numba) or a DLPack producer; CuPy itself is never imported. Outputs bound to
``"cuda"`` stay on the device as :class:`OrtValue` objects that expose
``__cuda_array_interface__``, so ``cupy.asarray(value)`` reads them without a copy.

>>> io = sess.io_binding()  # doctest: +SKIP
>>> io.bind_cpu_input("x", x)  # doctest: +SKIP
>>> io.bind_output("y", "cuda")  # doctest: +SKIP
>>> sess.run_with_iobinding(io)  # doctest: +SKIP
>>> y = io.copy_outputs_to_cpu()[0]  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from . import _C

# numpy dtype name <-> ONNX element type, for the dtypes a device feed may have.
_ONNX_TYPES = {
    "float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7,
    "bool": 9, "float16": 10, "float64": 11, "uint32": 12, "uint64": 13,
}
_DLPACK_CPU, _DLPACK_CUDA = 1, 2


def _device_type(device_type: str) -> str:
    d = str(device_type).lower()
    if d in ("cpu", "cuda"):
        return d
    if d == "gpu":
        return "cuda"
    raise _C.InvalidArgument(f"device_type must be 'cpu' or 'cuda', got {device_type!r}")


def _element_type(dtype) -> int:
    name = np.dtype(dtype).name
    if name not in _ONNX_TYPES:
        raise _C.InvalidArgument(f"dtype {name} cannot be bound to a device input")
    return _ONNX_TYPES[name]


def _from_cuda_array_interface(obj) -> tuple:
    cai = obj.__cuda_array_interface__
    shape = tuple(int(d) for d in cai["shape"])
    dtype = np.dtype(cai["typestr"])
    strides = cai.get("strides")
    if strides is not None:
        expected, step = [], dtype.itemsize
        for d in reversed(shape):
            expected.append(step)
            step *= max(d, 1)
        if tuple(strides) != tuple(reversed(expected)) and int(np.prod(shape)) > 1:
            raise _C.InvalidArgument("device arrays must be C-contiguous (copy it first, e.g. cupy.ascontiguousarray)")
    ptr = int(cai["data"][0])
    device_id = _pointer_device(obj, ptr)
    return ("cuda", ptr, shape, _element_type(dtype), device_id)


def _pointer_device(obj, ptr: int) -> int:
    dev = getattr(obj, "device", None)
    for attr in ("id", "index"):
        v = getattr(dev, attr, None)
        if isinstance(v, int):
            return v
    if hasattr(obj, "__dlpack_device__"):
        kind, index = obj.__dlpack_device__()
        if int(kind) == _DLPACK_CUDA:
            return int(index)
    return 0


def as_feed(value: Any, name: str = "") -> Any:
    """A run() feed: a numpy array for host data, a device tuple for device arrays.

    >>> as_feed(np.zeros(3, np.float32)).dtype  # doctest: +SKIP
    dtype('float32')
    """
    if isinstance(value, OrtValue):
        return value._feed()
    if isinstance(value, np.ndarray):
        return value if value.flags.c_contiguous else np.ascontiguousarray(value)
    if hasattr(value, "__cuda_array_interface__"):
        return _from_cuda_array_interface(value)
    if hasattr(value, "__dlpack_device__") and hasattr(value, "__dlpack__"):
        kind, _ = value.__dlpack_device__()
        if int(kind) == _DLPACK_CPU:
            return np.ascontiguousarray(np.from_dlpack(value))
        raise _C.InvalidArgument(
            f"input '{name}': a DLPack device array without __cuda_array_interface__ "
            f"(device type {int(kind)}) cannot be bound; pass a CuPy/PyTorch array or host data"
        )
    arr = np.asarray(value)
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


class OrtValue:
    """A tensor on the host or on a CUDA device (onnxruntime's ``OrtValue``).

    >>> v = OrtValue.ortvalue_from_numpy(np.ones((2, 3), np.float32))
    >>> v.device_name(), v.shape()
    ('cpu', [2, 3])
    """

    def __init__(self, host: np.ndarray | None = None, device: Any = None, keepalive: Any = None):
        self._host = host
        self._device = device  # _C.DeviceValue, or a ("cuda", ptr, shape, type, id) tuple
        self._keepalive = keepalive

    @staticmethod
    def ortvalue_from_numpy(array, device_type: str = "cpu", device_id: int = 0) -> OrtValue:
        """Wraps a numpy array (``"cpu"``) or copies it to CUDA device ``device_id`` (``"cuda"``)."""
        array = np.ascontiguousarray(array)
        if _device_type(device_type) == "cpu":
            return OrtValue(host=array)
        if _C.cuda.device_count() == 0:
            raise _C.InvalidArgument(
                f"OrtValue.ortvalue_from_numpy(..., 'cuda'): no CUDA device ({_C.cuda.unavailable_reason()})"
            )
        return OrtValue(device=_C.cuda.to_device(array, int(device_id)))

    @staticmethod
    def from_dlpack(obj) -> OrtValue:
        """Wraps a device array (``__cuda_array_interface__``) or a host DLPack array."""
        feed = as_feed(obj)
        if isinstance(feed, tuple):
            return OrtValue(device=feed, keepalive=obj)
        return OrtValue(host=feed)

    def _feed(self):
        return self._host if self._host is not None else self._device_tuple()

    def _device_tuple(self) -> tuple:
        d = self._device
        if isinstance(d, tuple):
            return d
        return ("cuda", d.data_ptr, tuple(d.shape), d.element_type, d.device_id)

    def device_name(self) -> str:
        return "cpu" if self._host is not None else "cuda"

    def is_tensor(self) -> bool:
        return True

    def shape(self) -> list[int]:
        return list(self._host.shape) if self._host is not None else list(self._device_tuple()[2])

    def data_type(self) -> str:
        return f"tensor({_type_word(self.element_type())})"

    def element_type(self) -> int:
        return _element_type(self._host.dtype) if self._host is not None else self._device_tuple()[3]

    def data_ptr(self) -> int:
        return self._host.ctypes.data if self._host is not None else self._device_tuple()[1]

    def numpy(self) -> np.ndarray:
        """The values as a numpy array (a device value is copied to the host)."""
        if self._host is not None:
            return self._host
        if isinstance(self._device, tuple):
            raise _C.InvalidArgument("this OrtValue wraps a foreign device array: read it with its own library")
        return _C.cuda.to_host(self._device)

    @property
    def __cuda_array_interface__(self) -> dict:
        if self._host is not None:
            raise AttributeError("a host OrtValue has no __cuda_array_interface__")
        _, ptr, shape, etype, _ = self._device_tuple()
        typestr = np.dtype(_numpy_name(etype)).str
        return {"shape": tuple(shape), "typestr": typestr, "data": (ptr, False), "version": 3, "strides": None}

    def __repr__(self) -> str:
        return f"OrtValue({self.data_type()}, shape={self.shape()}, device={self.device_name()})"


def _numpy_name(element_type: int) -> str:
    for k, v in _ONNX_TYPES.items():
        if v == element_type:
            return k
    raise _C.InvalidArgument(f"element type {element_type} has no numpy dtype")


def _type_word(element_type: int) -> str:
    words = {1: "float", 10: "float16", 11: "double"}
    return words.get(element_type, _numpy_name(element_type))


class IOBinding:
    """Inputs and outputs bound ahead of a run (onnxruntime's ``IOBinding``); make one with
    ``InferenceSession.io_binding()`` and run it with ``run_with_iobinding``."""

    def __init__(self, session) -> None:
        self._session = session
        self._inputs: dict[str, Any] = {}
        self._keep: dict[str, Any] = {}
        self._outputs: dict[str, str] = {}
        self._results: list[OrtValue] = []

    # --- inputs ---------------------------------------------------------------------------
    def bind_cpu_input(self, name: str, arr_on_cpu) -> None:
        """Binds a host array (copied to the device inside the run when a device node reads it)."""
        self._inputs[name] = as_feed(np.asarray(arr_on_cpu), name)
        self._keep[name] = arr_on_cpu

    def bind_input(self, name: str, device_type="cpu", device_id: int = 0, element_type=None, shape=None,
                   buffer_ptr: int | None = None) -> None:
        """Binds memory by address, as onnxruntime: ``bind_input(name, "cuda", 0, np.float32,
        shape, ptr)``. runnx also takes the array itself: ``bind_input(name, cupy_array)``."""
        if not isinstance(device_type, str):  # an array (numpy, CuPy, DLPack)
            self._inputs[name] = as_feed(device_type, name)
            self._keep[name] = device_type
            return
        if buffer_ptr is None or shape is None or element_type is None:
            raise _C.InvalidArgument("bind_input needs element_type, shape and buffer_ptr (or pass the array)")
        shape = tuple(int(d) for d in shape)
        if _device_type(device_type) == "cpu":
            dtype = np.dtype(element_type)
            n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            buf = (np.ctypeslib.as_array((ctypes.c_uint8 * n).from_address(int(buffer_ptr)))
                   if n else np.empty(0, np.uint8))
            self._inputs[name] = buf.view(dtype).reshape(shape)
        else:
            self._inputs[name] = ("cuda", int(buffer_ptr), shape, _element_type(element_type), int(device_id))

    def bind_ortvalue_input(self, name: str, ortvalue: OrtValue) -> None:
        self._inputs[name] = ortvalue._feed()
        self._keep[name] = ortvalue

    def clear_binding_inputs(self) -> None:
        self._inputs.clear()
        self._keep.clear()

    # --- outputs --------------------------------------------------------------------------
    def bind_output(self, name: str, device_type: str = "cpu", device_id: int = 0, element_type=None,
                    shape=None, buffer_ptr: int | None = None) -> None:
        """Asks for output ``name`` on ``device_type``; runnx allocates it (a preallocated
        ``buffer_ptr`` is not supported: the run's result is returned in a fresh buffer)."""
        if buffer_ptr is not None:
            raise _C.InvalidArgument(
                "bind_output with buffer_ptr is not supported; runnx allocates outputs (read them with get_outputs)"
            )
        self._outputs[name] = _device_type(device_type)

    def bind_ortvalue_output(self, name: str, ortvalue: OrtValue) -> None:
        raise _C.InvalidArgument("bind_ortvalue_output is not supported; use bind_output(name, device_type)")

    def clear_binding_outputs(self) -> None:
        self._outputs.clear()
        self._results = []

    def synchronize_inputs(self) -> None:
        """Nothing to wait for: runnx synchronises inside run_with_iobinding."""

    def synchronize_outputs(self) -> None:
        """Nothing to wait for: outputs are complete when run_with_iobinding returns."""

    # --- results --------------------------------------------------------------------------
    def get_outputs(self) -> list[OrtValue]:
        """The outputs of the last run, in binding order, as OrtValues."""
        return list(self._results)

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        """The outputs of the last run as numpy arrays (device outputs are copied)."""
        return [v.numpy() for v in self._results]

    def _run(self, native) -> None:
        names = list(self._outputs) or [o.name for o in self._session.get_outputs()]
        devices = [self._outputs.get(n, "cpu") for n in names]
        results = native.run_placed(names, dict(self._inputs), devices)
        self._results = [
            OrtValue(host=r) if isinstance(r, np.ndarray) else OrtValue(device=r) for r in results
        ]
