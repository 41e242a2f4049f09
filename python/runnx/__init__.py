"""runnx: a small, fast ONNX inference runtime with onnxruntime's Python API.

>>> import numpy as np, runnx
>>> sess = runnx.InferenceSession("model.onnx")  # doctest: +SKIP
>>> outputs = sess.run(None, {"x": np.zeros((1, 4), np.float32)})  # doctest: +SKIP
"""

import pkgutil

# Developer builds put _C in <build>/py/runnx; this lets `import runnx` find it there too.
__path__ = pkgutil.extend_path(__path__, __name__)

from .errors import (  # noqa: E402
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
from .providers import get_all_providers, get_available_providers, get_device  # noqa: E402
from .session import (  # noqa: E402
    ExecutionMode,
    GraphOptimizationLevel,
    InferenceSession,
    ModelMetadata,
    NodeArg,
    RunOptions,
    SessionOptions,
)

from .batcher import Batcher, InferResult  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "InferenceSession",
    "SessionOptions",
    "RunOptions",
    "GraphOptimizationLevel",
    "ExecutionMode",
    "NodeArg",
    "ModelMetadata",
    "get_available_providers",
    "get_all_providers",
    "get_device",
    "RunnxError",
    "InvalidModel",
    "UnsupportedOp",
    "InvalidArgument",
    "ResourceExhausted",
    "RuntimeFailure",
    "QueueFull",
    "DeadlineExceeded",
    "BatcherClosed",
    "Batcher",
    "InferResult",
    "__version__",
]
