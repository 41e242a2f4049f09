"""InferenceSession, SessionOptions and RunOptions: onnxruntime's Python API over runnx's core.

>>> import numpy as np, runnx
>>> sess = runnx.InferenceSession("model.onnx")  # doctest: +SKIP
>>> y, = sess.run(None, {"x": np.ones((1, 4), np.float32)})  # doctest: +SKIP
"""

from __future__ import annotations

import enum
import json
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _C
from .io_binding import IOBinding, OrtValue, as_feed
from .providers import CPU, CUDA, get_all_providers, get_available_providers

# ONNX TensorProto element type -> the word in onnxruntime's "tensor(...)" strings.
_TYPE_NAMES = {
    0: "undefined", 1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
    7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64",
    14: "complex64", 15: "complex128", 16: "bfloat16",
}


class GraphOptimizationLevel(enum.IntEnum):
    """Graph rewrite levels, with onnxruntime's names and values."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    """Accepted for compatibility; runnx always runs nodes in order (parallel inside kernels)."""

    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


_ALLOW_SPINNING = "session.intra_op.allow_spinning"


class SessionOptions:
    """Options for :class:`InferenceSession`.

    >>> so = runnx.SessionOptions()
    >>> so.intra_op_num_threads = 2
    >>> so.graph_optimization_level = runnx.GraphOptimizationLevel.ORT_DISABLE_ALL
    """

    def __init__(self) -> None:
        self.intra_op_num_threads = 0  # 0: the cores this process may use
        self.inter_op_num_threads = 0
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.enable_profiling = False
        self.profile_file_prefix = "runnx_profile"
        self.enable_mem_pattern = True
        self.enable_cpu_mem_arena = True
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.optimized_model_filepath = ""
        self._config: dict[str, str] = {}

    def add_session_config_entry(self, key: str, value: str) -> None:
        """Stores a configuration entry, as onnxruntime's. runnx reads
        ``session.intra_op.allow_spinning`` ("1", the default: the pool's threads spin between
        kernels; "0": they sleep as soon as they wait, for hosts shared with other busy work);
        other keys are kept for compatibility."""
        self._config[str(key)] = str(value)

    def get_session_config_entry(self, key: str) -> str:
        """Returns an entry set by :meth:`add_session_config_entry`."""
        return self._config[key]

    def _native(self) -> dict[str, Any]:
        if self.intra_op_num_threads < 0:
            raise _C.InvalidArgument("intra_op_num_threads must be >= 0")
        spinning = self._config.get(_ALLOW_SPINNING, "1")
        if spinning not in ("0", "1"):
            raise _C.InvalidArgument(
                f"session config entry '{_ALLOW_SPINNING}' must be '0' or '1', got '{spinning}'")
        return {
            "intra_op_num_threads": int(self.intra_op_num_threads),
            "graph_optimization_level": int(self.graph_optimization_level),
            "enable_mem_pattern": bool(self.enable_mem_pattern),
            "enable_profiling": bool(self.enable_profiling),
            "allow_spinning": spinning == "1",
        }


class RunOptions:
    """Per-call options (accepted for onnxruntime compatibility).

    >>> ro = runnx.RunOptions(); ro.logid = "request-7"
    """

    def __init__(self) -> None:
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.tag = ""
        self.terminate = False
        self.only_execute_path_to_fetches = False


class NodeArg:
    """A graph input or output: ``name``, ``type`` (``"tensor(float)"``) and ``shape``, whose
    entries are ints, symbolic names (``"batch"``) or None."""

    def __init__(self, name: str, elem_type: int, dims) -> None:
        self.name = name
        self.type = f"tensor({_TYPE_NAMES.get(elem_type, str(elem_type))})"
        self.shape = list(dims) if dims is not None else []

    def __repr__(self) -> str:
        return f"NodeArg(name='{self.name}', type='{self.type}', shape={self.shape})"


class ModelMetadata:
    """What ``get_modelmeta()`` returns: producer, graph name, domain, description, version and
    ``custom_metadata_map`` (the model's metadata_props)."""

    def __init__(self, d: dict) -> None:
        self.producer_name = d["producer_name"]
        self.graph_name = d["graph_name"]
        self.domain = d["domain"]
        self.description = d["description"]
        self.graph_description = d["graph_description"]
        self.version = d["version"]
        self.custom_metadata_map = dict(d["custom_metadata_map"])


def _option_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _provider_requests(providers, provider_options) -> list[tuple[str, dict[str, str]]]:
    """[(name, {option: text})] from onnxruntime's two spellings: ``[(name, options)]`` or
    ``providers=[name], provider_options=[options]``."""
    providers = list(providers or [])
    if provider_options is not None:
        if len(provider_options) != len(providers):
            raise ValueError("provider_options must have one dict per provider")
        if any(isinstance(p, (tuple, list)) for p in providers):
            raise ValueError("give provider options either in providers as (name, dict) or in provider_options")
    out = []
    for k, p in enumerate(providers):
        if isinstance(p, (tuple, list)):
            if len(p) != 2 or not isinstance(p[1], dict):
                raise ValueError(f"a provider tuple must be (name, options dict), got {p!r}")
            name, opts = p
        else:
            name, opts = p, (provider_options[k] if provider_options is not None else {})
        out.append((str(name), {str(key): _option_text(v) for key, v in (opts or {}).items()}))
    return out


class InferenceSession:
    """Loads a model and runs it, with onnxruntime's API.

    >>> sess = runnx.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])  # doctest: +SKIP
    >>> [i.name for i in sess.get_inputs()]  # doctest: +SKIP
    ['x']
    >>> y, = sess.run(None, {"x": np.zeros((1, 4), np.float32)})  # doctest: +SKIP
    """

    def __init__(
        self,
        path_or_bytes: str | bytes | os.PathLike,
        sess_options: SessionOptions | None = None,
        providers: Sequence[str | tuple[str, dict]] | None = None,
        provider_options: Sequence[dict] | None = None,
        **kwargs,
    ) -> None:
        self._sess_options = sess_options or SessionOptions()
        requests = []
        for name, opts in _provider_requests(providers, provider_options):
            if name not in get_all_providers():
                raise ValueError(
                    f"Unknown Provider Type: {name}; known providers: {get_all_providers()}"
                )
            if name not in get_available_providers():
                reason = f" ({_C.cuda.unavailable_reason()})" if name == CUDA else ""
                warnings.warn(
                    f"Specified provider '{name}' is not in available provider names{reason}. "
                    f"Available providers: '{', '.join(get_available_providers())}'; "
                    f"falling back to {CPU}",
                    stacklevel=2,
                )
                continue  # as onnxruntime: the session runs on what is available
            requests.append((name, opts))
        if isinstance(path_or_bytes, (bytearray, memoryview)):
            path_or_bytes = bytes(path_or_bytes)
        elif isinstance(path_or_bytes, os.PathLike):
            path_or_bytes = os.fspath(path_or_bytes)
        elif hasattr(path_or_bytes, "SerializeToString"):  # an onnx.ModelProto
            path_or_bytes = path_or_bytes.SerializeToString()
        if isinstance(path_or_bytes, str) and not os.path.isfile(path_or_bytes):
            raise FileNotFoundError(f"model file not found: {path_or_bytes}")
        self._model_path = path_or_bytes if isinstance(path_or_bytes, str) else None
        self._profiling_start_ns = time.time_ns()
        native = self._sess_options._native()
        if any(name == CUDA for name, _ in requests):
            native["providers"] = requests
        self._sess = _C.Session(path_or_bytes, native)
        self._inputs = [NodeArg(*t) for t in self._sess.inputs()]
        self._outputs = [NodeArg(*t) for t in self._sess.outputs()]
        self._overridable = [NodeArg(*t) for t in self._sess.overridable_initializers()]
        self._input_types = {
            a.name: a.type for a in self._inputs + self._overridable
        }

    # --- metadata -------------------------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        """Graph inputs that are not initializers, in graph order."""
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        """Graph outputs, in graph order."""
        return list(self._outputs)

    def get_overridable_initializers(self) -> list[NodeArg]:
        """Initializers that are also graph inputs: a feed of that name replaces the value."""
        return list(self._overridable)

    def get_modelmeta(self) -> ModelMetadata:
        """The model's producer, graph name, version and custom metadata."""
        return ModelMetadata(self._sess.metadata())

    def get_providers(self) -> list[str]:
        """Providers this session runs on, in priority order."""
        return list(self._sess.providers())

    def get_provider_options(self) -> dict[str, dict]:
        """Options per provider in effect (CUDA: ``device_id``, ``enable_cuda_graph``, ...).

        >>> sess.get_provider_options()["CUDAExecutionProvider"]["device_id"]  # doctest: +SKIP
        '0'
        """
        return {k: dict(v) for k, v in self._sess.provider_options().items()}

    def get_session_options(self) -> SessionOptions:
        """The options the session was created with."""
        return self._sess_options

    def get_profiling_start_time_ns(self) -> int:
        """When profiling started (session creation), in ns since the epoch."""
        return self._profiling_start_ns

    # --- running --------------------------------------------------------------------------
    def run(self, output_names, input_feed: dict[str, Any], run_options: RunOptions | None = None):
        """Runs the model. ``output_names`` None means every output, in graph order; returns a
        list of numpy arrays.

        >>> probs, = sess.run(None, {"input": x})  # doctest: +SKIP
        """
        if run_options is None:
            # The common case, kept lean: a dict of numpy arrays goes straight to C++ (which makes
            # a non-contiguous array contiguous itself); anything else comes back as None.
            outputs = self._sess.run(output_names, input_feed)
            if outputs is not None:
                return outputs
        if not isinstance(input_feed, dict):
            raise _C.InvalidArgument("input_feed must be a dict of input name -> array")
        if run_options is not None and run_options.terminate:
            raise _C.RuntimeFailure("run was terminated by RunOptions.terminate")
        feeds = {}
        on_device = False
        for name, value in input_feed.items():
            if isinstance(value, np.ndarray):
                arr = value if value.flags.c_contiguous else np.ascontiguousarray(value)
            elif hasattr(value, "__cuda_array_interface__") or hasattr(value, "__dlpack__") or isinstance(value, OrtValue):
                arr = as_feed(value, name)  # device arrays stay on the device
                on_device |= isinstance(arr, tuple)
            else:
                arr = np.asarray(value)
                if not arr.flags.c_contiguous:
                    arr = np.ascontiguousarray(arr)
            feeds[name] = arr
        if on_device:
            names = output_names or [o.name for o in self._outputs]
            return self._sess.run_placed(list(names), feeds, ["cpu"] * len(names))
        return self._sess.run(output_names, feeds)

    def io_binding(self) -> IOBinding:
        """A new :class:`IOBinding` for this session.

        >>> io = sess.io_binding(); io.bind_cpu_input("x", x); io.bind_output("y")  # doctest: +SKIP
        >>> sess.run_with_iobinding(io); y, = io.copy_outputs_to_cpu()  # doctest: +SKIP
        """
        return IOBinding(self)

    def run_with_iobinding(self, iobinding: IOBinding, run_options: RunOptions | None = None) -> None:
        """Runs with the inputs and outputs bound in ``iobinding``; read the results with
        ``iobinding.get_outputs()`` or ``iobinding.copy_outputs_to_cpu()``."""
        if run_options is not None and run_options.terminate:
            raise _C.RuntimeFailure("run was terminated by RunOptions.terminate")
        iobinding._run(self._sess)

    def end_profiling(self) -> str:
        """Writes the per-node timings recorded so far as Chrome-trace JSON; returns the file
        name ('' when profiling is off). Open it in chrome://tracing or Perfetto."""
        if not self._sess_options.enable_profiling:
            return ""
        events = []
        for name, op_type, start_us, dur_us, tid in self._sess.take_profile():
            events.append(
                {
                    "name": name or op_type,
                    "cat": "Node",
                    "ph": "X",
                    "ts": start_us,
                    "dur": dur_us,
                    "pid": os.getpid(),
                    "tid": tid,
                    "args": {"op_name": op_type},
                }
            )
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        path = f"{self._sess_options.profile_file_prefix}_{stamp}_{time.time_ns() % 10**6}.json"
        with open(path, "w") as f:
            json.dump(events, f)
        return path

    # --- runnx extras ----------------------------------------------------------------------
    def memory_stats(self) -> dict[str, int]:
        """Arena bytes of the latest plan, bytes left on the heap, in-place nodes, plans cached.

        >>> sess.memory_stats()["arena_bytes"]  # doctest: +SKIP
        1204224
        """
        stats = dict(self._sess.stats())
        stats.update(self._sess.device_stats())  # device_arena_bytes, cuda_graphs, ... on CUDA
        return stats

    def _placement(self) -> list[tuple[str, str, str, str]]:
        """(node name, op_type, "cuda" | "cpu", why not on the device) per executed node."""
        return list(self._sess.placement())

    def _passes_fired(self) -> dict[str, int]:
        """Graph passes that rewrote the model at load, with how many times each fired."""
        return dict(self._sess.passes_fired())


__all__ = [
    "CPU",
    "ExecutionMode",
    "GraphOptimizationLevel",
    "IOBinding",
    "InferenceSession",
    "ModelMetadata",
    "NodeArg",
    "OrtValue",
    "RunOptions",
    "SessionOptions",
]
