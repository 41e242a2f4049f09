"""runnx: a small, fast ONNX inference runtime with onnxruntime's Python API.

>>> import numpy as np, runnx
>>> sess = runnx.InferenceSession("model.onnx")  # doctest: +SKIP
>>> outputs = sess.run(None, {"x": np.zeros((1, 4), np.float32)})  # doctest: +SKIP
"""

import pkgutil

# Developer builds put _C in <build>/py/runnx; this lets `import runnx` find it there too.
__path__ = pkgutil.extend_path(__path__, __name__)

from . import quantize  # runnx.quantize.to_fp16 (needs onnx only when called)
from .batcher import Batcher, InferResult
from .errors import (
    BatcherClosed,
    DeadlineExceeded,
    InvalidArgument,
    InvalidModel,
    QueueFull,
    ResourceExhausted,
    RunnxError,
    RuntimeFailure,
    UnsupportedOp,
)
from .io_binding import IOBinding, OrtValue
from .providers import get_all_providers, get_available_providers, get_device
from .session import (
    ExecutionMode,
    GraphOptimizationLevel,
    InferenceSession,
    ModelMetadata,
    NodeArg,
    RunOptions,
    SessionOptions,
)

__version__ = "0.1.0"

__all__ = [
    "Batcher",
    "BatcherClosed",
    "DeadlineExceeded",
    "ExecutionMode",
    "GraphOptimizationLevel",
    "IOBinding",
    "InferResult",
    "InferenceSession",
    "InvalidArgument",
    "InvalidModel",
    "ModelMetadata",
    "NodeArg",
    "OrtValue",
    "QueueFull",
    "ResourceExhausted",
    "RunOptions",
    "RunnxError",
    "RuntimeFailure",
    "SessionOptions",
    "UnsupportedOp",
    "__version__",
    "get_all_providers",
    "get_available_providers",
    "get_device",
    "quantize",
]
