"""The ``onnx.backend`` interface over runnx, so ONNX's own test suites can drive it.

>>> import runnx.backend as backend
>>> rep = backend.prepare(model)  # doctest: +SKIP
>>> outputs = rep.run([x])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .session import InferenceSession, SessionOptions

try:  # onnx is a test-time dependency; runnx itself does not need it
    from onnx.backend.base import Backend as _Backend
    from onnx.backend.base import BackendRep as _BackendRep
except ImportError:  # pragma: no cover
    _Backend = object
    _BackendRep = object


class RunnxBackendRep(_BackendRep):
    """A prepared model: ``run(inputs)`` takes a list (graph input order) or a dict."""

    def __init__(self, session: InferenceSession) -> None:
        self._session = session

    def run(self, inputs: Any, **kwargs) -> tuple:
        names = [i.name for i in self._session.get_inputs()]
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feeds = dict(zip(names, inputs))
        return tuple(self._session.run(None, feeds))


class RunnxBackend(_Backend):
    """onnx.backend.base.Backend implemented by runnx (CPU)."""

    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs) -> RunnxBackendRep:
        """Creates a session from an onnx.ModelProto, serialized bytes or a path."""
        if not cls.supports_device(device):
            raise RuntimeError(f"runnx backend does not support device {device}")
        if hasattr(model, "SerializeToString"):
            model = model.SerializeToString()
        options = SessionOptions()
        for key, value in kwargs.items():
            if hasattr(options, key):
                setattr(options, key, value)
        return RunnxBackendRep(InferenceSession(model, options))

    @classmethod
    def run_model(cls, model, inputs: Any, device: str = "CPU", **kwargs) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs: Sequence[np.ndarray], device: str = "CPU", outputs_info=None, **kwargs):
        raise NotImplementedError("runnx runs whole models; wrap the node in a graph")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper().startswith("CPU")


prepare = RunnxBackend.prepare
run_model = RunnxBackend.run_model
run_node = RunnxBackend.run_node
supports_device = RunnxBackend.supports_device
