"""Exception classes raised by runnx.

Every runnx error derives from :class:`RunnxError` (a ``RuntimeError``, as onnxruntime's are).

>>> import runnx
>>> try:
...     runnx.InferenceSession(b"not a model")
... except runnx.InvalidModel as e:
...     print("bad model:", e)  # doctest: +SKIP
"""

from ._C import (
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

__all__ = [
    "BatcherClosed",
    "DeadlineExceeded",
    "InvalidArgument",
    "InvalidModel",
    "QueueFull",
    "ResourceExhausted",
    "RunnxError",
    "RuntimeFailure",
    "UnsupportedOp",
]
